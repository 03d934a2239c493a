"""Who may call, and how often: API keys and a per-key rate limit.

Keys come from ``--api-key`` flags and the ``SCRATCHGPT_API_KEYS`` environment variable
(comma-separated; an environment variable keeps them out of ``ps`` output). The check compares
the presented key with *every* configured key using ``hmac.compare_digest``, so neither the
position of the first differing byte nor which key matched leaks through timing.

The rate limit is a token bucket per key (per client address when no keys are configured):
``rate`` requests per minute on average, bursts up to ``burst``. An empty bucket answers 429
with ``Retry-After`` = whole seconds until the next token.
"""
from __future__ import annotations

import hmac
import math
import os
import threading
import time

from .errors import APIError

ENV_KEYS = "SCRATCHGPT_API_KEYS"


def keys_from(flags, environ=os.environ) -> list[str]:
    keys = list(flags or [])
    keys += [k.strip() for k in environ.get(ENV_KEYS, "").split(",") if k.strip()]
    return list(dict.fromkeys(keys))


class KeyCheck:
    def __init__(self, keys):
        self._keys = [k.encode("utf-8") for k in keys]

    @property
    def required(self) -> bool:
        return bool(self._keys)

    def check(self, authorization: str | None) -> str:
        """The caller's identity (the key) or a 401. ``authorization`` is the raw header value."""
        if not self._keys:
            return ""
        if not authorization:
            raise APIError(401, "Missing API key: send 'Authorization: Bearer <key>'", code="invalid_api_key")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise APIError(401, "Malformed Authorization header: expected 'Bearer <key>'", code="invalid_api_key")
        given = token.strip().encode("utf-8", "surrogateescape")
        ok = False
        for key in self._keys:             # no early exit: the time does not depend on which key
            ok |= hmac.compare_digest(given, key)
        if not ok:
            raise APIError(401, "Incorrect API key provided", code="invalid_api_key")
        return token.strip()


class RateLimiter:
    """Token bucket per identity. ``rate`` <= 0 switches it off."""

    def __init__(self, rate_per_minute: float, burst: int | None = None, clock=time.monotonic):
        self.rate = rate_per_minute / 60.0
        self.burst = float(burst if burst is not None else max(1, math.ceil(rate_per_minute / 6)))
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}    # identity -> (tokens, last time)
        self._lock = threading.Lock()

    def acquire(self, identity: str) -> None:
        if self.rate <= 0:
            return
        now = self.clock()
        with self._lock:
            tokens, last = self._buckets.get(identity, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens < 1.0:
                self._buckets[identity] = (tokens, now)
                wait = max(1, math.ceil((1.0 - tokens) / self.rate))
                raise APIError(429, f"Rate limit reached: {self.rate * 60:g} requests per minute; "
                                    f"retry in {wait} s", code="rate_limit_exceeded",
                               headers={"Retry-After": str(wait)})
            self._buckets[identity] = (tokens - 1.0, now)
            if len(self._buckets) > 10000:    # forget idle identities so memory stays bounded
                full = [k for k, (t, at) in self._buckets.items() if t + (now - at) * self.rate >= self.burst]
                for k in full:
                    del self._buckets[k]
