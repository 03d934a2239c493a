"""``scratchgpt demo``: the whole pipeline on the bundled data, on a laptop CPU, offline."""
from __future__ import annotations

import os
import sys

THREAD_VARS = ("NUMBA_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def register(sub) -> None:
    p = sub.add_parser("demo", help="prepare data, train a tokenizer, pretrain, fine-tune, evaluate, chat",
                       description="Run the whole pipeline on the bundled customer-service data: about "
                                   "10 minutes on 2 CPU cores (--quick: under a minute). Writes everything "
                                   "under --out, including eval.json.")
    p.add_argument("--out", default="runs/demo", help="run directory (default runs/demo)")
    p.add_argument("--quick", action="store_true", help="tiny model and few steps: the pipeline in < 1 minute")
    p.add_argument("--seed", type=int, default=1337, help="seed for model init, batches and dropout")
    p.add_argument("--threads", default="1",
                   help="threads for Numba kernels and BLAS (default 1; 'keep' leaves the environment as is). "
                        "The demo's model is small: measured on 2 cores, one thread per process was 4x faster "
                        "than two when anything else was running, because waiting threads spin")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (logs only)")
    p.set_defaults(func=run)


def _reexec_with_threads(args) -> None:
    """Thread counts are read when NumPy/Numba load, so set them and restart this command once."""
    want = str(args.threads)
    if want == "keep" or os.environ.get("SCRATCHGPT_DEMO_THREADS") == want:
        return
    if not want.isdigit() or int(want) < 1:
        from ..errors import ConfigError
        raise ConfigError(f"--threads expects a positive integer or 'keep', got {want!r}")
    if all(os.environ.get(v) == want for v in THREAD_VARS[:2]):
        return
    env = {**os.environ, "SCRATCHGPT_DEMO_THREADS": want, **{v: want for v in THREAD_VARS}}
    argv = [sys.executable, "-m", "scratchgpt.cli", "demo", "--out", str(args.out), "--seed", str(args.seed),
            "--threads", want] + (["--quick"] if args.quick else []) + (["--no-progress"] if args.no_progress else [])
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, argv, env)


def run(args) -> int:
    _reexec_with_threads(args)
    from ..train.demo import run_demo
    run_demo(args.out, quick=args.quick, progress=not args.no_progress, seed=args.seed)
    return 0
