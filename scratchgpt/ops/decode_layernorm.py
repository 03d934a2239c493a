"""LayerNorm for generation, optionally fused with the residual add before it (no autograd).

Math, per row of x (R, C), with w, b (C,):
    layernorm_rows:        h = (x - mean(x)) / sqrt(var(x) + eps) * w + b
    add_layernorm_rows:    x <- x + d   (in place: the residual stream),  then h = layernorm(x)

Why fused: in a decode step both are tiny (R rows of C) and memory-trivial, so what they cost
is the per-call overhead and the extra pass over x; one kernel does the add, the statistics
and the output in two passes over each row while it sits in L1. Statistics in float64, as in
the training LayerNorm (ops/layernorm.py), so the two agree to float32 rounding.
"""
from __future__ import annotations

import numpy as np
from numba import prange

from ._numba import SUMS, njit_pair


# ----------------------------------------------------------------------------- reference
def layernorm_rows_ref(x, w, b, eps=1e-5):
    x = np.asarray(x, dtype=np.float64)
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * np.asarray(w, np.float64) + np.asarray(b, np.float64)


def add_layernorm_rows_ref(x, d, w, b, eps=1e-5):
    """Returns (x + d, layernorm(x + d)) in float64."""
    s = np.asarray(x, dtype=np.float64) + np.asarray(d, dtype=np.float64)
    return s, layernorm_rows_ref(s, w, b, eps)


# ----------------------------------------------------------------------------- Numba kernels
_FM = SUMS  # reassoc: vectorised sums (several partial sums); contract: FMA


@njit_pair(fastmath=_FM)
def _add_ln_kernel(x, d, add, w, b, eps, out):  # x, d, out (R, C); w, b (C,)
    R, C = x.shape
    for r in prange(R):
        s = 0.0
        if add:
            for i in range(C):
                v = x[r, i] + d[r, i]
                x[r, i] = v
                s += v
        else:
            for i in range(C):
                s += x[r, i]
        m = s / C
        var = 0.0
        for i in range(C):
            t = x[r, i] - m
            var += t * t
        rs = 1.0 / np.sqrt(var / C + eps)
        mc = x.dtype.type(m)
        rc = x.dtype.type(rs)
        for i in range(C):
            out[r, i] = (x[r, i] - mc) * rc * w[i] + b[i]


def layernorm_rows(x, w, b, eps, out):
    """out = layernorm(x) row-wise; x, out (R, C) float32."""
    _add_ln_kernel.pick(x.size)(x, x, False, w, b, float(eps), out)
    return out


def add_layernorm_rows(x, d, w, b, eps, out):
    """x += d (in place), then out = layernorm(x); all (R, C) float32."""
    _add_ln_kernel.pick(x.size)(x, d, True, w, b, float(eps), out)
    return out
