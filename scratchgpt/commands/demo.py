"""``scratchgpt demo``: the whole pipeline on the bundled data, on a laptop CPU, offline."""
from __future__ import annotations

from pathlib import Path

from ._flags import add_device, add_progress, add_threads, apply_device


def register(sub) -> None:
    from ..train.demo import DEMO_RESULT_LINE
    p = sub.add_parser("demo", help="prepare data, train a tokenizer, pretrain, fine-tune, evaluate, chat",
                       description="Run the whole pipeline on the bundled customer-service data and write "
                                   f"everything under --out, including eval.json. {DEMO_RESULT_LINE} "
                                   "--quick runs the same stages with a tiny, deliberately untrained model "
                                   "in under a minute (its replies are gibberish).")
    p.add_argument("--out", default="runs/demo", metavar="DIR", help="run directory (default runs/demo)")
    p.add_argument("--quick", action="store_true",
                   help="tiny model and few steps: checks the pipeline in < 1 minute, does not train a usable model")
    p.add_argument("--seed", type=int, default=1337, metavar="N", help="seed for model init, batches and dropout")
    add_threads(p, default="auto", extra_help="The demo's model is small: on 2 cores two threads make a "
                                              "training step faster on a quiet machine and 3-4x slower when "
                                              "another job runs, so by default the training steps time both "
                                              "and keep the faster (the log and eval.json say which ran)")
    add_device(p)
    add_progress(p)
    p.set_defaults(func=run)


def run(args) -> int:
    device = apply_device(args)
    from ..errors import ConfigError
    from ..train.demo import run_demo
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {args.out}: exists and is not a directory; pass a directory (default runs/demo)")
    run_demo(out, quick=args.quick, progress=args.progress, seed=args.seed, device=device)
    return 0
