"""``scratchgpt plot RUN_DIR``: draw a run's training curves as SVG (no matplotlib needed)."""
from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("plot", help="draw the loss / lr / grad-norm curves of a run as SVG",
                       description="Read RUN_DIR/metrics.jsonl and write RUN_DIR/curves.svg (or --out).")
    p.add_argument("run_dir", metavar="RUN_DIR", help="run directory (with metrics.jsonl) or a metrics.jsonl file")
    p.add_argument("--out", default=None, metavar="FILE", help="output SVG path (default RUN_DIR/curves.svg)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..train.plot import plot_run
    out = plot_run(args.run_dir, args.out)
    print(f"wrote {out}")
    return 0
