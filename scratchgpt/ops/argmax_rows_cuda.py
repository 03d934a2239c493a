"""Greedy picks on the GPU: argmax_rows.py's math, one block of ROW_THREADS threads per row.

Thread t walks j = t, t + 32, ... keeping its best (value, index) — a strictly larger value
replaces it, so the first index wins within a thread — and a flag for a NaN or +inf. The 32
candidates meet in a shared-memory tree: the larger value wins, the smaller index on equal
values (so the block's answer is the row's first maximal index, like NumPy's argmax).
Thread 0 writes the index, or -1 for a row whose maximum is not finite or that holds a NaN.
"""
from __future__ import annotations

import math

import numpy as np

from ..cuda_arrays import ROW_THREADS, cuda, launch, require_device

NEG_INF = np.float32(-np.inf)


@cuda.jit
def _argmax_rows_cuda(x, out):           # x (B, V) float32; out (B,) int64; grid B, block ROW_THREADS
    bv = cuda.shared.array(ROW_THREADS, dtype=np.float32)
    bi = cuda.shared.array(ROW_THREADS, dtype=np.int64)
    bb = cuda.shared.array(ROW_THREADS, dtype=np.int32)
    b = cuda.blockIdx.x
    t = cuda.threadIdx.x
    best = NEG_INF
    idx = np.int64(-1)
    bad = np.int32(0)
    if b < x.shape[0]:
        for j in range(t, x.shape[1], ROW_THREADS):
            v = x[b, j]
            if math.isnan(v) or math.isinf(v) and v > 0:
                bad = np.int32(1)
            elif v > best or idx < 0:
                best = v
                idx = j
    bv[t] = best
    bi[t] = idx
    bb[t] = bad
    cuda.syncthreads()
    step = ROW_THREADS // 2
    while step > 0:
        if t < step:
            ov = bv[t + step]
            oi = bi[t + step]
            if oi >= 0 and (bi[t] < 0 or ov > bv[t] or (ov == bv[t] and oi < bi[t])):
                bv[t] = ov
                bi[t] = oi
            bb[t] = max(bb[t], bb[t + step])
        cuda.syncthreads()
        step //= 2
    if t == 0 and b < x.shape[0]:
        if bb[0] != 0 or bi[0] < 0 or math.isinf(bv[0]):
            out[b] = -1
        else:
            out[b] = bi[0]


def argmax_rows_cuda(logits, out=None):
    """logits (B, V) device array -> (B,) int64 device array (``argmax_rows_ref``'s answer)."""
    require_device(logits, out, where="argmax_rows_cuda")
    B = logits.shape[0]
    if out is None:
        out = cuda.device_array(B, dtype=np.int64)
    if B:
        launch(_argmax_rows_cuda, B, ROW_THREADS, logits, out)
    return out
