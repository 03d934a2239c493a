"""OpenAI-compatible HTTP server and web chat page for a scratchgpt model (tutorial §3.2.5, §6).

    from scratchgpt.serve import require_serve_extra, create_app
    app = create_app(ServerState(...))      # see app.py; `scratchgpt serve MODEL_DIR` builds it for you

Pieces, one job each:
  errors.py       APIError -> OpenAI's {"error": {message, type, param, code}} body + status
  protocol.py     JSON body -> validated ChatRequest / CompletionRequest (400s, never 422)
  access.py       API keys (constant-time Bearer check), per-key rate limit
  engine_loop.py  the one thread that owns the Engine: join between decode steps, cancel, shutdown
  sse.py          OpenAI chunk objects and server-sent-event framing
  metrics.py      Prometheus counters, gauges and histograms on a per-app registry
  app.py          FastAPI routes gluing the above; static/index.html is the chat page

FastAPI, uvicorn and prometheus-client are the optional ``serve`` extra: importing
``scratchgpt`` never needs them, and ``require_serve_extra()`` turns a missing one into a
one-line error naming the extra.
"""
from __future__ import annotations

import importlib

from ..errors import ScratchGPTError

SERVE_MODULES = {"fastapi": "fastapi", "uvicorn": "uvicorn", "prometheus_client": "prometheus-client"}


class MissingExtraError(ScratchGPTError, ImportError):
    """An optional dependency group is not installed."""


def _importable(module: str) -> bool:
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


def require_serve_extra() -> None:
    missing = [pkg for mod, pkg in SERVE_MODULES.items() if not _importable(mod)]
    if missing:
        raise MissingExtraError(f"serving needs the 'serve' extra ({', '.join(missing)} not installed): "
                                "pip install 'scratchgpt[serve]'")
