"""Data and tensor parallelism over MPI on this machine, and the alpha-beta projection to 8/64/512 ranks.

    python benchmarks/dist.py                       # 2 ranks, shape S, the table chapters/ch9.md (Q3) quotes
    python benchmarks/dist.py --shape M --json out.json
    python benchmarks/dist.py --ranks 2 --max-kib 65536

It launches ``mpiexec -n RANKS python -m scratchgpt.dist.measure`` (one thread per rank), which on
the same machine measures: a 1-process training run (the others asleep) and the data-parallel run
of the same model and batches (tokens/s, allreduce time and bytes per step, equivalence); an
allreduce overlapped with backward vs started after it
(alternate steps of the same run); an allreduce sweep fitted to the alpha-beta model of ring allreduce; greedy decoding split over the
ranks (tensor parallel). From those, ``scratchgpt.dist.cost_model`` projects step time and
efficiency of data parallelism for GPT-2 124M over a stated network (100 Gb/s, 5 us per message)
at 8, 64 and 512 ranks. Prints the report and the JSON (``--json`` writes it too).

On a 2-core machine shared with other work the two ranks compete for cores with everything else:
say so next to any number you quote (the report prints the load average).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scratchgpt.dist.launch import one_thread_env, run_ranks  # noqa: E402
from scratchgpt.dist.measure import SHAPES, report_lines, summary  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ranks", type=int, default=2)
    ap.add_argument("--shape", choices=sorted(SHAPES), default="S")
    ap.add_argument("--max-kib", type=int, default=16384, help="largest allreduce message of the sweep (KiB)")
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--steps", type=int, default=0, help="timed training steps (default: the shape's)")
    ap.add_argument("--bucket-mb", type=float, default=1.0, help="gradient bucket size (MB); several buckets are "
                    "needed for the allreduce to overlap with backward")
    ap.add_argument("--timeout", type=float, default=900)
    ap.add_argument("--json", default=None, help="also write the results here")
    args = ap.parse_args(argv)
    root = str(Path(__file__).resolve().parents[1])
    env = one_thread_env({"PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])})
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        proc = run_ranks(args.ranks, ["-m", "scratchgpt.dist.measure", "--out", str(out), "--shape", args.shape,
                                      "--max-kib", str(args.max_kib), "--repeats", str(args.repeats),
                                      "--bucket-mb", str(args.bucket_mb), "--steps", str(args.steps)],
                         timeout=args.timeout, env=env, cwd=root)
        if proc.returncode != 0:
            print(proc.stderr[-3000:], file=sys.stderr)
            return proc.returncode
        res = json.loads(out.read_text())
    res["summary"] = summary(res)
    res["load_average_before"] = load
    res["load_average_after"] = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"(1-minute load average {load:.1f} before, {res['load_average_after']:.1f} after, on "
          f"{os.cpu_count()} cores)")
    print("\n".join(report_lines(res, res["summary"])))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
