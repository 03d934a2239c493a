"""``scratchgpt serve MODEL_DIR``: an OpenAI-compatible API and a web chat page for a model."""
from __future__ import annotations

import os

from ._flags import add_device, add_threads, apply_device


def register(sub) -> None:
    p = sub.add_parser("serve", help="OpenAI-compatible HTTP API + web chat page for a model",
                       description="Serve MODEL_DIR (e.g. runs/demo/sft/model, or a GPT-2 checkpoint "
                                   "directory) with continuous batching: POST /v1/chat/completions, "
                                   "/v1/completions, GET /v1/models, /health, /metrics, and a chat page at /. "
                                   "Needs the 'serve' extra: pip install 'scratchgpt[serve]'.")
    p.add_argument("model_dir", metavar="MODEL_DIR",
                   help="model directory to serve (config.json, model.safetensors, tokenizer.json)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; anything else "
                                                       "needs an API key)")
    p.add_argument("--port", type=int, default=8000, help="TCP port (default 8000)")
    p.add_argument("--api-key", dest="api_key", action="append", default=[], metavar="KEY",
                   help="accept this Bearer key (repeatable; also read from SCRATCHGPT_API_KEYS, comma-separated)")
    p.add_argument("--model-name", default=None,
                   help="the model id clients send (default: from MODEL_DIR, e.g. demo/sft)")
    p.add_argument("--max-batch-size", type=int, default=32,
                   help="sequences decoded together (default 32; 1 = one request at a time)")
    p.add_argument("--max-queue", type=int, default=64,
                   help="requests allowed to wait for a slot; more get 503 (default 64)")
    p.add_argument("--rate-limit", type=float, default=0.0,
                   help="requests per minute per API key (per client address without keys); 0 = off (default)")
    p.add_argument("--max-body-bytes", type=int, default=1 << 20,
                   help="largest request body accepted, else 413 (default 1 MiB)")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds one request may take (default 600)")
    add_threads(p, default="1", extra_help="The engine thread does the model's work; one BLAS thread "
                                           "leaves the other core to the HTTP side")
    add_device(p)
    p.add_argument("--access-log", action="store_true",
                   help="log every HTTP request")
    p.set_defaults(func=run)


def _check(args) -> None:
    from ..errors import ConfigError
    if not os.path.isdir(args.model_dir):
        raise ConfigError(f"MODEL_DIR {args.model_dir!r} is not a directory (run `scratchgpt demo` first, "
                          "then serve runs/demo/sft/model)")
    for name, lo in (("port", 0), ("max_batch_size", 1), ("max_queue", 0), ("max_body_bytes", 1)):
        if getattr(args, name) < lo:
            raise ConfigError(f"--{name.replace('_', '-')} must be >= {lo}, got {getattr(args, name)}")
    if args.port > 65535:
        raise ConfigError(f"--port must be <= 65535, got {args.port}")
    if args.timeout <= 0 or args.rate_limit < 0:
        raise ConfigError("--timeout must be > 0 and --rate-limit >= 0")


def run(args) -> int:
    device = apply_device(args)
    from ..serve import require_serve_extra
    require_serve_extra()
    _check(args)
    from ..serve.access import keys_from
    from ..serve.app import ServeSettings
    from ..serve.server import default_model_name, serve
    settings = ServeSettings(model_name=args.model_name or default_model_name(args.model_dir),
                             api_keys=keys_from(args.api_key), rate_limit=args.rate_limit,
                             max_body_bytes=args.max_body_bytes, max_queue=args.max_queue,
                             request_timeout=args.timeout)
    serve(args.model_dir, host=args.host, port=args.port, settings=settings,
          max_batch_size=args.max_batch_size, access_log=args.access_log, device=device)
    return 0
