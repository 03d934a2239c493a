"""Design benchmark for causal self-attention on CPU (forward+backward, float32).

(a) the library's fast path: batched BLAS (np.matmul) for q k^T, P v and the backward products,
    with a fused Numba causal softmax / softmax-backward in between;
(b) one fully fused Numba kernel, parallel over B*NH (prange), computing dot products in loops.

Run each config in its own process: python benchmarks/attention_design.py S|M [torch]
(torch: sdpa and the explicit composition, for comparison).
"""
from __future__ import annotations

import math
import os
import sys
import time

import numpy as np
from numba import njit, prange

CONFIGS = {"S": (12, 64, 128, 4), "M": (8, 256, 384, 6)}


@njit(parallel=True, cache=True, fastmath=True)
def fused_forward(qkv, NH, att, out):
    B, T, C3 = qkv.shape
    C = C3 // 3
    HS = C // NH
    scale = np.float32(1.0 / math.sqrt(HS))
    for bh in prange(B * NH):
        b = bh // NH
        h = bh - b * NH
        qo = h * HS
        ko = C + h * HS
        vo = 2 * C + h * HS
        for i in range(T):
            m = np.float32(-np.inf)
            for j in range(i + 1):
                s = np.float32(0.0)
                for d in range(HS):
                    s += qkv[b, i, qo + d] * qkv[b, j, ko + d]
                s *= scale
                att[b, h, i, j] = s
                if s > m:
                    m = s
            tot = np.float32(0.0)
            for j in range(i + 1):
                e = np.exp(att[b, h, i, j] - m)
                att[b, h, i, j] = e
                tot += e
            inv = 1 / tot
            for d in range(HS):
                out[b, i, h * HS + d] = 0
            for j in range(i + 1):
                pij = att[b, h, i, j] * inv
                att[b, h, i, j] = pij
                for d in range(HS):
                    out[b, i, h * HS + d] += pij * qkv[b, j, vo + d]


@njit(parallel=True, cache=True, fastmath=True)
def fused_backward(dout, qkv, att, NH, dqkv):
    B, T, C3 = qkv.shape
    C = C3 // 3
    HS = C // NH
    scale = np.float32(1.0 / math.sqrt(HS))
    for bh in prange(B * NH):
        b = bh // NH
        h = bh - b * NH
        qo = h * HS
        ko = C + h * HS
        vo = 2 * C + h * HS
        for i in range(T):
            for d in range(HS):
                dqkv[b, i, qo + d] = 0
                dqkv[b, i, ko + d] = 0
                dqkv[b, i, vo + d] = 0
        dp = np.empty(T, dtype=np.float32)
        for i in range(T):
            dot = np.float32(0.0)
            for j in range(i + 1):
                s = np.float32(0.0)
                for d in range(HS):
                    s += dout[b, i, qo + d] * qkv[b, j, vo + d]
                dp[j] = s
                dot += s * att[b, h, i, j]
            for j in range(i + 1):
                pij = att[b, h, i, j]
                ds = pij * (dp[j] - dot) * scale
                for d in range(HS):
                    dqkv[b, i, qo + d] += ds * qkv[b, j, ko + d]
                    dqkv[b, j, ko + d] += ds * qkv[b, i, qo + d]
                    dqkv[b, j, vo + d] += pij * dout[b, i, qo + d]


# BENCH_CLOCK=cpu: process CPU time (use with NUMBA_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 on a
# busy shared machine, where 2-thread wall times mostly measure waiting).
CLOCK = time.process_time if os.environ.get("BENCH_CLOCK") == "cpu" else time.perf_counter


def bench(fn, reps):
    """min over repeats after two warm-up calls, in ms."""
    fn()
    fn()
    ts = []
    for _ in range(reps):
        t0 = CLOCK()
        fn()
        ts.append(CLOCK() - t0)
    return float(np.min(ts)) * 1e3


def main():
    cfg = sys.argv[1]
    B, T, C, NH = CONFIGS[cfg]
    rng = np.random.default_rng(0)
    qkv = rng.standard_normal((B, T, 3 * C)).astype(np.float32)
    dout = rng.standard_normal((B, T, C)).astype(np.float32)
    reps = 50 if cfg == "S" else 15
    if len(sys.argv) > 2 and sys.argv[2] == "torch":
        import torch
        torch.set_num_threads(2)
        x = torch.tensor(qkv, requires_grad=True)
        g = torch.tensor(dout)

        def step():
            q, k, v = x.split(C, dim=2)
            q = q.view(B, T, NH, C // NH).transpose(1, 2)
            k = k.view(B, T, NH, C // NH).transpose(1, 2)
            v = v.view(B, T, NH, C // NH).transpose(1, 2)
            y = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
            y = y.transpose(1, 2).contiguous().view(B, T, C)
            x.grad = None
            y.backward(g)

        def step_eager():  # the explicit composition, as nanoGPT's non-flash path does it
            q, k, v = x.split(C, dim=2)
            q = q.view(B, T, NH, C // NH).transpose(1, 2)
            k = k.view(B, T, NH, C // NH).transpose(1, 2)
            v = v.view(B, T, NH, C // NH).transpose(1, 2)
            att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(C // NH))
            mask = torch.ones(T, T, dtype=torch.bool).tril()
            att = att.masked_fill(~mask, float("-inf")).softmax(-1)
            y = (att @ v).transpose(1, 2).contiguous().view(B, T, C)
            x.grad = None
            y.backward(g)
        print(f"{cfg} torch sdpa fwd+bwd {bench(step, reps):.3f} ms")
        print(f"{cfg} torch eager-composition fwd+bwd {bench(step_eager, reps):.3f} ms")
        return
    from scratchgpt.ops.attention import causal_self_attention_backward, causal_self_attention_forward

    def a():
        out, cache = causal_self_attention_forward(qkv, NH)
        causal_self_attention_backward(dout, cache)

    att = np.empty((B, NH, T, T), np.float32)
    out = np.empty((B, T, C), np.float32)
    dqkv = np.empty_like(qkv)

    def b():
        fused_forward(qkv, NH, att, out)
        fused_backward(dout, qkv, att, NH, dqkv)
    # check (b) against (a) once
    o1, c1 = causal_self_attention_forward(qkv, NH)
    d1 = causal_self_attention_backward(dout, c1)
    b()
    print(f"{cfg} max|a-b| out {np.abs(o1 - out).max():.2e} dqkv {np.abs(d1 - dqkv).max():.2e}")
    print(f"{cfg} (a) BLAS+fused softmax fwd+bwd {bench(a, reps):.3f} ms")
    print(f"{cfg} (b) fully fused numba  fwd+bwd {bench(b, reps):.3f} ms")


if __name__ == "__main__":
    main()
