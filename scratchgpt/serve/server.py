"""Load a model directory, build the app, run uvicorn: what ``scratchgpt serve`` does.

Binding rule: without an API key the server is reachable only from this machine. Asking for
another host without a key gets 127.0.0.1 anyway, and the start-up message says so — an open
port that runs a model for anyone is never the silent default.
"""
from __future__ import annotations

import contextlib
import signal
import sys
import threading
import time
from pathlib import Path

from . import require_serve_extra

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def is_loopback(host: str) -> bool:
    return host in LOOPBACK or host.startswith("127.")


def default_model_name(model_dir) -> str:
    """runs/demo/sft/model -> "demo/sft": the run and stage say more than the folder "model"."""
    parts = [p for p in Path(model_dir).resolve().parts[1:]]
    if parts and parts[-1] == "model":
        parts = parts[:-1]
    return "/".join(parts[-2:]) or "scratchgpt"


def build_engine(model_dir, max_batch_size: int, device: str = "cpu"):
    from ..infer import Engine, load_for_inference
    model, tok = load_for_inference(model_dir)
    engine = Engine(model, tok, max_batch_size=max_batch_size, device=device)
    _serial_builds_on_one_thread(engine)
    return engine, tok


def _serial_builds_on_one_thread(engine) -> None:
    """With one Numba thread (``--threads 1``) pin the decode steps to the serial kernel builds.

    A parallel build on one thread runs the same code plus a parallel region's setup per kernel
    call, so it cannot win; but the engine's BuildChooser (infer/build_choice.py) starts every
    row count R in parallel mode and probes serial per R, and continuous batching visits every
    R from 1 to the batch size. Measured in-process, one thread, busy machine (load ~8): a
    32-sequence decode step 2.69-2.71 ms pinned serial vs 3.9-10.9 ms under the chooser (median
    of the first 40 steps). Same bits either way (the chooser's own guarantee)."""
    runner = getattr(engine, "runner", None)
    if runner is None or not hasattr(runner, "chooser"):
        return                                   # e.g. the CUDA engine: no CPU kernel builds
    import numba
    if numba.get_num_threads() == 1:
        from ..infer.build_choice import BuildChooser
        runner.chooser = BuildChooser("serial")


def warm_up(engine) -> None:
    """A full batch of tiny generations (one with a longer prompt), so Numba compiles (or loads
    from its cache) every kernel build a busy server uses — the prefill and decode kernels, and
    the parallel builds that only large batches pick — now: the first users (or the first burst
    of them) would otherwise wait seconds for it."""
    from ..infer import GenerationRequest, SamplingParams
    params = SamplingParams(max_new_tokens=2, temperature=0.0, ignore_eos=True)
    long = [t % engine.weights.vocab_size for t in range(min(engine.block_size - 1, 64))]
    for i in range(engine.max_batch_size):
        prompt = long if i == 0 else [0, 1, 2][: 2 + i % 2]
        engine.add(GenerationRequest(prompt_ids=prompt, params=params, id=f"warm-up-{i}"))
    while engine.has_work():
        engine.step()
    # The biggest step a busy server runs: every other slot decoding while long prompts fill a
    # whole prefill step (engine.max_prefill_rows rows). Kernels pick their serial or parallel
    # build by size (ops/_numba.py), and the tiny batch above never crosses into the large
    # builds; without this the first burst of long prompts stalled ~1.2 s compiling them
    # (measured: benchmarks/serve.py with a fresh NUMBA_CACHE_DIR, p99 TTFT 1.4-1.7 s -> see ch6).
    full = [t % engine.weights.vocab_size for t in range(engine.block_size - 1)]
    n_long = min(engine.max_batch_size, -(-engine.max_prefill_rows // len(full)))
    decoding = SamplingParams(max_new_tokens=4, temperature=0.0, ignore_eos=True)
    for i in range(engine.max_batch_size - n_long):
        engine.add(GenerationRequest(prompt_ids=[0, 1], params=decoding, id=f"warm-up-decode-{i}"))
    engine.step()                                # their prefill; they decode in the next step
    for i in range(n_long):
        engine.add(GenerationRequest(prompt_ids=full, params=params, id=f"warm-up-long-{i}"))
    while engine.has_work():
        engine.step()


def serve(model_dir, host="127.0.0.1", port=8000, settings=None, max_batch_size=32,
          shutdown_grace=10.0, access_log=False, log=print, device: str = "cpu") -> None:
    require_serve_extra()
    import uvicorn

    from .app import create_app
    if not settings.api_keys and not is_loopback(host):
        log(f"no API key configured: listening on 127.0.0.1 only, not {host} "
            "(pass --api-key KEY or set SCRATCHGPT_API_KEYS to serve other machines)")
        host = "127.0.0.1"
    engine, tok = build_engine(model_dir, max_batch_size, device)
    t0 = time.perf_counter()
    warm_up(engine)
    log(f"warmed up in {time.perf_counter() - t0:.1f}s (kernels compiled before the first request, not during it)")
    app = create_app(engine, tok, settings)
    shown = f"[{host}]" if ":" in host else host
    auth = (f"{len(settings.api_keys)} API key(s) required" if settings.api_keys
            else "no API key (localhost only)")
    log(f"serving {model_dir} as model '{settings.model_name}' on http://{shown}:{port}  "
        f"(web chat at /, OpenAI API at /v1, metrics at /metrics; {auth}; "
        f"batch {max_batch_size}, queue {settings.max_queue}). Ctrl+C stops.")
    sys.stdout.flush()
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=access_log,
                            timeout_graceful_shutdown=shutdown_grace, lifespan="on")

    def interrupted(signum, frame):
        raise KeyboardInterrupt
    # uvicorn catches SIGINT/SIGTERM, shuts down gracefully (in-flight streams get shutdown_grace
    # seconds, then are cancelled), and re-raises the signal; a stop asked for is a clean exit.
    signal.signal(signal.SIGTERM, interrupted)
    try:
        uvicorn.Server(config).run()
    except KeyboardInterrupt:
        pass
    served = sum(s.value for m in app.state.metrics.requests.collect() for s in m.samples
                 if s.name.endswith("_total"))
    log(f"server stopped cleanly ({served:.0f} HTTP requests answered)")


@contextlib.contextmanager
def background_server(app, host: str = "127.0.0.1", port: int = 0, timeout: float = 60.0, grace: float = 2.0):
    """Run ``app`` with uvicorn in a background thread; yields the base URL (``port=0``: a free
    port). On exit the server shuts down gracefully (in-flight streams get ``grace`` seconds).
    Used by chapter 6, the benchmark and the tests; ``app.state.uvicorn_server`` is the server."""
    require_serve_extra()
    import uvicorn
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on",
                                           timeout_graceful_shutdown=grace))
    app.state.uvicorn_server = server
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"the server did not start on {host}:{port}")
        time.sleep(0.02)
    bound = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://{host}:{bound}"
    finally:
        server.should_exit = True
        thread.join(grace + 15)
        if thread.is_alive():
            raise RuntimeError("the server did not shut down")
