"""Forward+backward time of the fused ops at the GPT training shapes, ours vs PyTorch eager.

Each implementation runs in its own process (alternating NumPy and torch in one process slows
torch down), with 2 threads:

    python benchmarks/fused_ops.py ours [threads=2] [wall|cpu]   # scratchgpt attention + CE
    python benchmarks/fused_ops.py torch [threads=2] [wall|cpu]  # torch sdpa / composition / F.cross_entropy

Shapes: config S (B=12, T=64, C=128, NH=4, V=65), config M (B=8, T=256, C=384, NH=6, V=4096).
Prints min and median wall time in ms over repeats after warm-up.
"""
from __future__ import annotations

import math
import os
import sys
import time

# argv: ours|torch [threads] [wall|cpu]. On a busy shared machine 2-thread wall times are
# dominated by waiting (spinning OpenMP/BLAS threads); 1 thread + process CPU time is robust.
THREADS = int(sys.argv[2]) if len(sys.argv) > 2 else 2
CLOCK = time.process_time if (len(sys.argv) > 3 and sys.argv[3] == "cpu") else time.perf_counter
os.environ["NUMBA_NUM_THREADS"] = str(THREADS)
os.environ["OPENBLAS_NUM_THREADS"] = str(THREADS)
os.environ["OMP_NUM_THREADS"] = str(THREADS)

import numpy as np  # noqa: E402

CONFIGS = {"S": dict(B=12, T=64, C=128, NH=4, V=65), "M": dict(B=8, T=256, C=384, NH=6, V=4096)}


def timeit(fn, reps):
    for _ in range(3):
        fn()
    ts = []
    for _ in range(reps):
        t0 = CLOCK()
        fn()
        ts.append(CLOCK() - t0)
    return min(ts) * 1e3, float(np.median(ts)) * 1e3


def inputs(cfg):
    rng = np.random.default_rng(0)
    B, T, C, V = cfg["B"], cfg["T"], cfg["C"], cfg["V"]
    return (rng.standard_normal((B, T, 3 * C)).astype(np.float32),
            rng.standard_normal((B, T, C)).astype(np.float32),
            rng.standard_normal((B * T, V)).astype(np.float32),
            rng.integers(0, V, B * T))


def ours():
    from scratchgpt.ops.attention import causal_self_attention_backward, causal_self_attention_forward
    from scratchgpt.ops.cross_entropy_op import cross_entropy_backward, cross_entropy_forward
    for name, cfg in CONFIGS.items():
        qkv, dout, logits, targets = inputs(cfg)
        reps = 50 if name == "S" else 20

        def attn():
            _, cache = causal_self_attention_forward(qkv, cfg["NH"])
            causal_self_attention_backward(dout, cache)

        def ce():
            _, cache = cross_entropy_forward(logits, targets)
            cross_entropy_backward(np.float32(1.0), cache)
        for label, fn in (("attention fwd+bwd  ", attn), ("cross_entropy      ", ce)):
            mn, med = timeit(fn, reps)
            print(f"{name} ours  {label} min {mn:7.2f} ms  median {med:7.2f} ms")


def torch_ref():
    import torch
    torch.set_num_threads(THREADS)
    F = torch.nn.functional
    for name, cfg in CONFIGS.items():
        qkv, dout, logits, targets = inputs(cfg)
        B, T, C, NH, V = cfg["B"], cfg["T"], cfg["C"], cfg["NH"], cfg["V"]
        HS = C // NH
        reps = 50 if name == "S" else 20
        x = torch.tensor(qkv, requires_grad=True)
        g = torch.tensor(dout)
        mask = torch.ones(T, T, dtype=torch.bool).tril()

        def split():
            q, k, v = x.split(C, dim=2)
            return [t.view(B, T, NH, HS).transpose(1, 2) for t in (q, k, v)]

        def sdpa():
            q, k, v = split()
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(B, T, C)
            x.grad = None
            y.backward(g)

        def composed():
            q, k, v = split()
            att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(HS))
            att = att.masked_fill(~mask, float("-inf")).softmax(-1)
            y = (att @ v).transpose(1, 2).reshape(B, T, C)
            x.grad = None
            y.backward(g)

        z = torch.tensor(logits, requires_grad=True)
        t = torch.tensor(targets)

        def ce():
            loss = F.cross_entropy(z, t, ignore_index=-100)
            z.grad = None
            loss.backward()
        for label, fn in (("attention sdpa     ", sdpa), ("attention composed ", composed), ("cross_entropy      ", ce)):
            mn, med = timeit(fn, reps)
            print(f"{name} torch {label} min {mn:7.2f} ms  median {med:7.2f} ms")


if __name__ == "__main__":
    which = sys.argv[1] if len(sys.argv) > 1 else "ours"
    print(f"threads={THREADS} clock={CLOCK.__name__}")
    ours() if which == "ours" else torch_ref()
