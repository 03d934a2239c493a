"""``scratchgpt demo``: the whole pipeline on the bundled data, on a laptop CPU, offline."""
from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("demo", help="prepare data, train a tokenizer, pretrain, fine-tune, evaluate, chat",
                       description="Run the whole pipeline on the bundled customer-service data: about "
                                   "10 minutes on 2 CPU cores (--quick: under a minute). Writes everything "
                                   "under --out, including eval.json.")
    p.add_argument("--out", default="runs/demo", help="run directory (default runs/demo)")
    p.add_argument("--quick", action="store_true", help="tiny model and few steps: the pipeline in < 1 minute")
    p.add_argument("--seed", type=int, default=1337, help="seed for model init, batches and dropout")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (logs only)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..train.demo import run_demo
    run_demo(args.out, quick=args.quick, progress=not args.no_progress, seed=args.seed)
    return 0
