"""Prometheus metrics, one registry per app (two servers in one process never share counters).

Names follow vLLM's where they mean the same thing, with a ``scratchgpt_`` prefix. Latencies are
measured on the server side of the HTTP connection: time to first token from the moment the
request body was accepted, inter-token latency between consecutive pieces of one stream.
"""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import CONTENT_TYPE_LATEST  # noqa: F401  (re-exported for app.py)

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class ServerMetrics:
    def __init__(self):
        r = self.registry = CollectorRegistry()
        self.requests = Counter("scratchgpt_requests", "HTTP requests answered, by endpoint and status",
                                ["endpoint", "status"], registry=r)
        self.prompt_tokens = Counter("scratchgpt_prompt_tokens", "Prompt tokens processed", registry=r)
        self.generation_tokens = Counter("scratchgpt_generation_tokens", "Tokens generated", registry=r)
        self.running = Gauge("scratchgpt_requests_running", "Requests holding an engine slot", registry=r)
        self.waiting = Gauge("scratchgpt_requests_waiting", "Requests waiting for a slot", registry=r)
        self.ttft = Histogram("scratchgpt_time_to_first_token_seconds", "Time to first token",
                              buckets=LATENCY_BUCKETS, registry=r)
        self.itl = Histogram("scratchgpt_inter_token_latency_seconds", "Time between streamed pieces",
                             buckets=LATENCY_BUCKETS, registry=r)
        self.e2e = Histogram("scratchgpt_e2e_request_latency_seconds", "Request latency, body to last byte",
                             buckets=LATENCY_BUCKETS, registry=r)

    def set_load(self, running: int, waiting: int) -> None:
        self.running.set(running)
        self.waiting.set(waiting)

    def render(self) -> bytes:
        return generate_latest(self.registry)
