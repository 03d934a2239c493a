"""The chapter's compression table: the float32 demo model against every compressed variant.

    python benchmarks/compression_table.py --base runs/demo/sft/model --data runs/demo/data/customer_service \
        --work runs/quant [--recover-steps 200] [--limit N] [--out FILE]

Writes each variant with the real commands (`scratchgpt quantize` / `scratchgpt prune`, so the
table measures exactly what users get) into --work, then measures every row once with
``scratchgpt.infer.report.model_row`` (columns: see that module) and prints the markdown table.
The float32 row is measured once, not once per method as `--report` does.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

VARIANTS = [
    ("int8 g32", ["quantize", "--bits", "8"]),
    ("int8 g64", ["quantize", "--bits", "8", "--group-size", "64"]),
    ("int4 g32", ["quantize", "--bits", "4"]),
    ("int4 g32, float32 lm_head", ["quantize", "--bits", "4", "--keep-lm-head"]),
    ("magnitude 50% (global)", ["prune", "--method", "magnitude", "--sparsity", "0.5"]),
    ("heads 50%", ["prune", "--method", "heads", "--sparsity", "0.5"]),
    ("neurons 50%", ["prune", "--method", "neurons", "--sparsity", "0.5"]),
]
RECOVERED = [("magnitude 50% + {n} steps", ["prune", "--method", "magnitude", "--sparsity", "0.5"]),
             ("heads 50% + {n} steps", ["prune", "--method", "heads", "--sparsity", "0.5"]),
             ("neurons 50% + {n} steps", ["prune", "--method", "neurons", "--sparsity", "0.5"])]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--recover-steps", type=int, default=0)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--only", default=None, help="comma-separated row names to (re)measure")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    from scratchgpt.cli import main as cli
    from scratchgpt.infer import load_for_inference
    from scratchgpt.infer.report import format_table, model_row
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    variants = list(VARIANTS)
    if args.recover_steps:
        variants += [(name.format(n=args.recover_steps), cmd + ["--recover-steps", str(args.recover_steps),
                                                               "--data", args.data]) for name, cmd in RECOVERED]
    if args.only:
        keep = set(args.only.split(","))
        variants = [v for v in variants if v[0] in keep]
    rows = []
    t0 = time.time()
    model, tok = load_for_inference(args.base)
    rows.append(model_row("float32", args.base, model, model, tok, args.data, args.limit))
    print(format_table(rows), flush=True)
    for name, cmd in variants:
        out = work / name.replace(" ", "_").replace("%", "").replace(",", "").replace("+", "plus")
        argv = [cmd[0], args.base, *cmd[1:], "--out", str(out), "--overwrite", "--no-progress"]
        if cmd[0] == "prune" and "--data" not in cmd:         # activation importance, as users get it
            argv += ["--data", args.data]
        if cli(argv) != 0:
            raise SystemExit(f"scratchgpt {' '.join(argv)} failed")
        m, _ = load_for_inference(out)
        rows.append(model_row(name, out, m, m, tok, args.data, args.limit))
        rows[-1]["command"] = "scratchgpt " + " ".join(argv)
        print(format_table(rows[-1:]).splitlines()[-1], flush=True)
    res = {"base": str(Path(args.base).resolve()), "data": str(Path(args.data).resolve()), "limit": args.limit,
           "load_avg": os.getloadavg(), "seconds": round(time.time() - t0), "rows": rows}
    if args.out:
        Path(args.out).write_text(json.dumps(res, indent=2))
    print(format_table(rows))
    print(f"1-min load average at the end: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
