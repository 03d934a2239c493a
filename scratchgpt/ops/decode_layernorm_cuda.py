"""LayerNorm rows for generation on the GPU, optionally fused with the residual add before it
(decode_layernorm.py's math and references, no autograd):

    layernorm_rows:      h = (x - mean(x)) / sqrt(var(x) + eps) * w + b        per row of x (R, C)
    add_layernorm_rows:  x <- x + d (in place, the residual stream), then h = layernorm(x)

Threads: one block per row; its threads stride over the row (thread t owns elements t, t + T,
...: the same elements in all three passes, so ``out`` may be ``d`` — the final LayerNorm
writes over its input) and meet in ``sum_lanes`` for the sum and then the squared deviations
(two passes: no cancellation in var). Threads per row: 128 on a GPU, 1 under the simulator
(whose barriers are Python thread rendezvous); the tests run both.
"""
from __future__ import annotations

import math

import numpy as np

from ..backend import simulator_enabled
from ..cuda_arrays import cuda, launch, require_device
from .decode_matmul_cuda import MAX_THREADS, sum_lanes


def row_threads(threads=None) -> int:
    if threads is not None:
        t = int(threads)
        if t < 1 or t & (t - 1) or t > MAX_THREADS:
            raise ValueError(f"threads per row: a power of 2 <= {MAX_THREADS}, got {threads}")
        return t
    return 1 if simulator_enabled() else MAX_THREADS


@cuda.jit
def _add_ln_rows_cuda(x, d, add, w, b, eps, out):   # x, d, out (R, C); w, b (C,); grid R
    buf = cuda.shared.array(MAX_THREADS, dtype=np.float32)
    r = cuda.blockIdx.x
    t = cuda.threadIdx.x
    T = cuda.blockDim.x
    C = x.shape[1]
    s = np.float32(0.0)
    for i in range(t, C, T):
        v = x[r, i]
        if add:
            v += d[r, i]
            x[r, i] = v
        s += v
    mean = sum_lanes(buf, s) / np.float32(C)
    q = np.float32(0.0)
    for i in range(t, C, T):
        u = x[r, i] - mean
        q += u * u
    var = sum_lanes(buf, q) / np.float32(C)
    rs = np.float32(1.0) / math.sqrt(var + eps)
    for i in range(t, C, T):
        out[r, i] = (x[r, i] - mean) * rs * w[i] + b[i]


def _run(x, d, w, b, eps, out, threads):
    require_device(x, d, w, b, out, where="layernorm_rows_cuda")
    if out is None:
        out = cuda.device_array(x.shape, dtype=x.dtype)
    if x.shape[0]:
        launch(_add_ln_rows_cuda, x.shape[0], row_threads(threads), x, x if d is None else d, d is not None,
               w, b, np.float32(eps), out)
    return out


def layernorm_rows_cuda(x, w, b, eps=1e-5, out=None, threads=None):
    """h = layernorm(x) row by row; x (R, C) float32 device array. Returns ``out`` (R, C)."""
    return _run(x, None, w, b, eps, out, threads)


def add_layernorm_rows_cuda(x, d, w, b, eps=1e-5, out=None, threads=None):
    """x += d in place, then out = layernorm(x) row by row (``out`` may be ``d``)."""
    return _run(x, d, w, b, eps, out, threads)
