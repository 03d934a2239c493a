"""Time ``sample`` (Cython) against ``sample_ref`` (NumPy) at V = 50,257 (GPT-2) and 256,000.

    python benchmarks/sampler.py [--reps 7] [--n 20]

Two logit shapes: "flat" (standard normal x 3: a hard case for top-p, whose nucleus then holds
thousands of tokens) and "zipf" (log-probabilities of a Zipf(1.1) law over a shuffled vocabulary,
closer to a trained LM: the nucleus is small). Each figure is the best of --reps batches of --n
calls, in process CPU time, so that other processes on a shared machine inflate it less; it is
still a single-thread number and cache contention shows through.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from scratchgpt.sampling import distribution_ref, sample, sample_ref

SETTINGS = [
    ("greedy", {"temperature": 0.0}),
    ("temperature 0.8", {"temperature": 0.8}),
    ("top_k 50", {"temperature": 0.8, "top_k": 50}),
    ("top_p 0.9", {"temperature": 0.8, "top_p": 0.9}),
    ("top_k 50 + top_p 0.9", {"top_k": 50, "top_p": 0.9}),
    ("min_p 0.05", {"min_p": 0.05}),
    ("all + penalties", {"temperature": 0.8, "top_k": 50, "top_p": 0.95, "min_p": 0.02,
                         "repetition_penalty": 1.2, "frequency_penalty": 0.1, "presence_penalty": 0.1}),
]


def logits(kind: str, V: int) -> np.ndarray:
    rng = np.random.default_rng(V)
    if kind == "flat":
        return (rng.standard_normal(V) * 3).astype(np.float32)
    ranks = rng.permutation(V) + 1
    return (-1.1 * np.log(ranks)).astype(np.float32)  # log p up to a constant


def best_ms(fn, z, kw, n: int, reps: int) -> float:
    gen = np.random.default_rng(0)
    fn(z, rng=gen, **kw)  # warm-up: workspace allocation, first-call costs
    best = float("inf")
    for _ in range(reps):
        t0 = time.process_time()
        for _ in range(n):
            fn(z, rng=gen, **kw)
        best = min(best, (time.process_time() - t0) / n * 1e3)
    return best


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--n", type=int, default=20)
    args = ap.parse_args(argv)
    print(f"{'V':>7s} {'logits':6s} {'setting':22s} {'kept':>7s} {'cython ms':>10s} {'ref ms':>9s} {'speedup':>8s}")
    for V in (50257, 256000):
        hist = np.random.default_rng(1).integers(0, V, 256)
        for kind in ("flat", "zipf"):
            z = logits(kind, V)
            for name, kw in SETTINGS:
                if "penalty" in name or "penalties" in name:
                    kw = {**kw, "history": hist}
                kept = distribution_ref(z, **kw)[0].size
                a = best_ms(sample, z, kw, args.n, args.reps)
                b = best_ms(sample_ref, z, kw, args.n, args.reps)
                print(f"{V:7d} {kind:6s} {name:22s} {kept:7d} {a:10.3f} {b:9.3f} {b / a:7.1f}x", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
