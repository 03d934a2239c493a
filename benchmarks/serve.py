"""Serving benchmark: one-at-a-time serving vs continuous batching, measured per stream on the client.

    python benchmarks/serve.py                                  # runs/demo/sft/model, 1/8/32 streams
    python benchmarks/serve.py --model DIR --requests 96 --concurrency 1,8,32 --output-tokens 32
    python benchmarks/serve.py --rate 20                        # Poisson arrivals at 20 req/s instead

Like vLLM's serving benchmark: a fixed number of streaming chat requests at a given concurrency
(or Poisson arrival rate) against a real ``scratchgpt serve`` process (started here as a
subprocess on a free loopback port, so client and server do not share one GIL). Per request the
client records time to first token (TTFT), inter-token latency between streamed pieces (ITL),
time per output token after the first (TPOT = (end - first) / (tokens - 1)) and failures;
``ignore_eos`` makes every request generate exactly ``--output-tokens`` so both modes do the
same work. Modes: ``sequential`` = ``--max-batch-size 1`` (requests queue and run one at a time),
``batched`` = ``--max-batch-size 32`` (continuous batching).

Prompts are the held-out customer-service questions (short, like real chat turns). A second
run, ``--ttft-prompt-tokens 200`` (default), measures TTFT for 200-token prompts at the highest
concurrency; the demo model's context is only 128 tokens, so that run serves a model of the
demo's shape with a 256-token context and random weights (speed depends on the shape, not on
the weights). Prints JSON (``--json FILE`` to save it) and a table.
"""
from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    def __init__(self, model_dir, batch: int, threads: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [sys.executable, "-m", "scratchgpt", "serve", str(model_dir), "--port", str(self.port),
               "--max-batch-size", str(batch), "--max-queue", "1000", "--model-name", "bench",
               "--threads", threads]
        env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
        self.proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def wait_ready(self, timeout=120):
        import httpx
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("server exited: " + self.proc.stdout.read())
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise RuntimeError("server did not start")

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


async def one_request(client, url, messages, output_tokens):
    body = {"model": "bench", "messages": messages, "max_tokens": output_tokens, "temperature": 0,
            "ignore_eos": True, "stream": True, "stream_options": {"include_usage": True}}
    t0 = time.perf_counter()
    stamps, usage, done = [], None, False
    try:
        async with client.stream("POST", url + "/v1/chat/completions", json=body) as r:
            if r.status_code != 200:
                return {"ok": False, "error": f"HTTP {r.status_code}"}
            async for line in r.aiter_lines():
                if not line.startswith("data: "):
                    continue
                if line == "data: [DONE]":
                    done = True
                    break
                ev = json.loads(line[6:])
                if "error" in ev:
                    return {"ok": False, "error": ev["error"]["message"]}
                usage = ev.get("usage") or usage
                if ev["choices"] and ev["choices"][0]["delta"].get("content"):
                    stamps.append(time.perf_counter())
    except Exception as e:  # noqa: BLE001 - every failure counts, whatever it is
        return {"ok": False, "error": f"{type(e).__name__}: {e}"}
    end = time.perf_counter()
    if not done or not stamps or usage is None:
        return {"ok": False, "error": "incomplete stream"}
    n = usage["completion_tokens"]
    return {"ok": True, "ttft": stamps[0] - t0, "e2e": end - t0, "tokens": n,
            "prompt_tokens": usage["prompt_tokens"], "itl": list(np.diff(stamps)),
            "tpot": (end - stamps[0]) / max(1, n - 1)}


async def run_load(url, prompts, n_requests, concurrency, output_tokens, rate=None, seed=0):
    import httpx
    rng = random.Random(seed)
    results = []
    limits = httpx.Limits(max_connections=concurrency + 8, max_keepalive_connections=concurrency + 8)
    async with httpx.AsyncClient(timeout=600, limits=limits) as client:
        t0 = time.perf_counter()
        if rate:                                   # Poisson arrivals, no cap on concurrency
            tasks = []
            for i in range(n_requests):
                tasks.append(asyncio.create_task(one_request(client, url, prompts[i % len(prompts)], output_tokens)))
                await asyncio.sleep(rng.expovariate(rate))
            results = await asyncio.gather(*tasks)
        else:
            queue = list(range(n_requests))

            async def worker():
                while queue:
                    i = queue.pop()
                    results.append(await one_request(client, url, prompts[i % len(prompts)], output_tokens))
            await asyncio.gather(*[worker() for _ in range(concurrency)])
        wall = time.perf_counter() - t0
    return results, wall


def pct(xs, q):
    return float(np.percentile(xs, q)) * 1000 if len(xs) else float("nan")


def summarize(results, wall):
    ok = [r for r in results if r["ok"]]
    itl = [x for r in ok for x in r["itl"]]
    return {"requests": len(results), "failures": len(results) - len(ok),
            "errors": sorted({r["error"] for r in results if not r["ok"]})[:3],
            "wall_s": round(wall, 3), "req_per_s": round(len(ok) / wall, 3),
            "output_tok_per_s": round(sum(r["tokens"] for r in ok) / wall, 1),
            "mean_prompt_tokens": round(float(np.mean([r["prompt_tokens"] for r in ok])), 1) if ok else None,
            "ttft_ms_p50": round(pct([r["ttft"] for r in ok], 50), 1),
            "ttft_ms_p99": round(pct([r["ttft"] for r in ok], 99), 1),
            "tpot_ms_p50": round(pct([r["tpot"] for r in ok], 50), 2),
            "tpot_ms_p99": round(pct([r["tpot"] for r in ok], 99), 2),
            "itl_ms_p50": round(pct(itl, 50), 2), "itl_ms_p99": round(pct(itl, 99), 2)}


def chat_prompts(n=64):
    from scratchgpt.datasets import customer_service_file
    with open(customer_service_file("test"), encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r["turn"] == "0"]
    return [[{"role": "user", "content": r["context"]}] for r in rows[:n]]


def long_prompts(tok, n_tokens, n=16):
    """Chat prompts of exactly ``n_tokens`` tokens (template included), from the bundled text."""
    from scratchgpt.tokenizer.chat_template import render_chat
    from scratchgpt.datasets import customer_service_file
    text = customer_service_file("train").read_text(encoding="utf-8")
    out = []
    for i in range(n):
        lo, hi = 0, 4 * n_tokens
        start = 997 * i
        while lo < hi:                             # longest slice whose prompt fits n_tokens
            mid = (lo + hi + 1) // 2
            msgs = [{"role": "user", "content": text[start:start + mid]}]
            if len(render_chat(tok, msgs, add_generation_prompt=True)[0]) <= n_tokens:
                lo = mid
            else:
                hi = mid - 1
        out.append([{"role": "user", "content": text[start:start + lo]}])
    return out


def long_context_twin(model_dir, block_size, out_dir):
    """The model's shape with a longer context and random weights (for the 200-token TTFT run)."""
    from dataclasses import replace
    from scratchgpt.infer import load_for_inference
    from scratchgpt.models import GPT
    model, tok = load_for_inference(model_dir)
    cfg = replace(model.config, block_size=block_size)
    GPT(cfg, seed=0).save(out_dir)
    tok.save(Path(out_dir) / "tokenizer.json")
    return tok


def machine_load():
    try:
        return os.getloadavg()
    except OSError:
        return None


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="runs/demo/sft/model")
    ap.add_argument("--requests", type=int, default=64)
    ap.add_argument("--concurrency", default="1,8,32")
    ap.add_argument("--rate", type=float, default=None, help="Poisson arrival rate (req/s) instead of concurrency")
    ap.add_argument("--output-tokens", type=int, default=32)
    ap.add_argument("--modes", default="sequential,batched")
    ap.add_argument("--ttft-prompt-tokens", type=int, default=200, help="0 skips the long-prompt run")
    ap.add_argument("--threads", default="1")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    levels = [int(c) for c in args.concurrency.split(",")]
    prompts = chat_prompts()
    report = {"model": args.model, "requests": args.requests, "output_tokens": args.output_tokens,
              "threads": args.threads, "cpus": os.cpu_count(), "loadavg_before": machine_load(), "runs": []}
    for mode in args.modes.split(","):
        server = ServerProcess(args.model, 1 if mode == "sequential" else 32, args.threads)
        try:
            server.wait_ready()
            asyncio.run(run_load(server.url, prompts, 4, 2, 4))          # warm-up (JIT, caches)
            for c in ([None] if args.rate else levels):
                results, wall = asyncio.run(run_load(server.url, prompts, args.requests, c or 32,
                                                     args.output_tokens, rate=args.rate))
                row = {"mode": mode, "concurrency": c, "rate": args.rate, **summarize(results, wall)}
                report["runs"].append(row)
                print(json.dumps(row), flush=True)
        finally:
            server.stop()
    if args.ttft_prompt_tokens:
        with tempfile.TemporaryDirectory() as tmp:
            block = max(256, args.ttft_prompt_tokens + args.output_tokens)
            tok = long_context_twin(args.model, block, tmp)
            long = long_prompts(tok, args.ttft_prompt_tokens)
            server = ServerProcess(tmp, 32, args.threads)
            try:
                server.wait_ready()
                asyncio.run(run_load(server.url, long, 4, 2, 4))
                c = max(levels)
                results, wall = asyncio.run(run_load(server.url, long, args.requests, c, args.output_tokens))
                row = {"mode": f"batched, {args.ttft_prompt_tokens}-token prompts (random weights, "
                               f"block {block})", "concurrency": c, **summarize(results, wall)}
                report["runs"].append(row)
                print(json.dumps(row), flush=True)
            finally:
                server.stop()
    report["loadavg_after"] = machine_load()
    by = {(r["mode"], r["concurrency"]): r for r in report["runs"]}
    seq, bat = by.get(("sequential", max(levels))), by.get(("batched", max(levels)))
    if seq and bat:
        report["batched_over_sequential_tok_s"] = round(bat["output_tok_per_s"] / seq["output_tok_per_s"], 2)
    print("\n" + json.dumps(report, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    print(f"\n{'mode':<58} {'conc':>4} {'req/s':>7} {'tok/s':>7} {'TTFT p50/p99 ms':>17} "
          f"{'TPOT p50/p99 ms':>16} {'ITL p50/p99 ms':>15} {'fail':>4}")
    for r in report["runs"]:
        conc = str(r["concurrency"]) if r.get("concurrency") else f"{r['rate']:g}/s"
        print(f"{r['mode']:<58} {conc:>4} {r['req_per_s']:>7.2f} {r['output_tok_per_s']:>7.1f} "
              f"{r['ttft_ms_p50']:>8.0f}/{r['ttft_ms_p99']:<8.0f} {r['tpot_ms_p50']:>7.1f}/{r['tpot_ms_p99']:<8.1f} "
              f"{r['itl_ms_p50']:>7.1f}/{r['itl_ms_p99']:<7.1f} {r['failures']:>4}")
    if "batched_over_sequential_tok_s" in report:
        print(f"batched / sequential output tok/s at {max(levels)} streams: "
              f"{report['batched_over_sequential_tok_s']}x; load average before/after: "
              f"{report['loadavg_before']} / {report['loadavg_after']}")


if __name__ == "__main__":
    main()
