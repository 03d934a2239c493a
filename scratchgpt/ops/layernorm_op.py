"""Layer normalisation over the last dim (GPT-2's pre-LN blocks and final ln_f).

Math, per row x ∈ R^C (rows = every leading index), w, b ∈ R^C, eps > 0:
    μ = (1/C) Σ_i x_i          σ² = (1/C) Σ_i (x_i − μ)²          r = 1/sqrt(σ² + eps)
    n_i = (x_i − μ) r          y_i = w_i n_i + b_i
Backward (g = dL/dy), with d_i = g_i w_i:
    dx_i = r (d_i − mean(d) − n_i mean(d ⊙ n))
    dw   = Σ_rows g ⊙ n         db = Σ_rows g
The forward caches only (x, w, μ, r) — two numbers per row — and the backward recomputes n
on the fly; this is the llm.c layout, it keeps the cache at the size of x.

Fast path: Numba. Forward is one kernel, parallel over rows: a two-pass mean/variance with
float64 accumulators (exact enough to match the float64 reference in float32 tolerances),
then the normalise-scale-shift pass. Backward is one fused pass over rows computing dx and
the per-chunk partial dw/db, reduced afterwards: the rows are cut into a FIXED number of
chunks (not the thread count), so the summation order — and the result — is the same on any
machine.
"""
from __future__ import annotations

import numpy as np
from numba import prange

from ..autograd import Function, Tensor
from ._numba import SUMS, njit_pair

# fastmath SUMS (see _numba.py): vectorised row sums, fixed order, inf/NaN propagate.
_N_CHUNKS = 16  # fixed partial-sum count for dw/db: deterministic whatever the thread count


# ----------------------------------------------------------------------------- reference
def layernorm_forward_ref(x, w, b, eps=1e-5):
    x = np.asarray(x, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    rstd = 1.0 / np.sqrt(var + eps)
    norm = (x - mean) * rstd
    y = norm * w
    if b is not None:
        y = y + np.asarray(b, dtype=np.float64)
    return y, (x, w, mean[..., 0], rstd[..., 0], b is not None)


def layernorm_backward_ref(dout, cache):
    x, w, mean, rstd, has_b = cache
    g = np.asarray(dout, dtype=np.float64)
    norm = (x - mean[..., None]) * rstd[..., None]
    d = g * w
    dx = rstd[..., None] * (d - d.mean(axis=-1, keepdims=True) - norm * (d * norm).mean(axis=-1, keepdims=True))
    lead = tuple(range(x.ndim - 1))
    dw = (g * norm).sum(axis=lead)
    db = g.sum(axis=lead) if has_b else None
    return dx, dw, db


# ----------------------------------------------------------------------------- Numba kernels
@njit_pair(fastmath=SUMS)
def _ln_forward_kernel(x, w, b, eps, out, mean, rstd):  # x, out (N, C); w, b (C,); mean, rstd (N,)
    N, C = x.shape
    for n in prange(N):
        s = 0.0  # float64 accumulators whatever the input dtype
        for i in range(C):
            s += x[n, i]
        m = s / C
        v = 0.0
        for i in range(C):
            d = x[n, i] - m
            v += d * d
        r = 1.0 / np.sqrt(v / C + eps)
        mean[n] = m
        rstd[n] = r
        mc = x.dtype.type(m)
        rc = x.dtype.type(r)
        for i in range(C):
            out[n, i] = (x[n, i] - mc) * rc * w[i] + b[i]


@njit_pair(fastmath=SUMS)
def _ln_backward_kernel(dout, x, w, mean, rstd, dx, dw_part, db_part):
    # dout, x, dx (N, C); w (C,); mean, rstd (N,); dw_part, db_part (K, C) zeroed
    N, C = x.shape
    K = dw_part.shape[0]
    rows_per = (N + K - 1) // K
    for k in prange(K):
        n0 = k * rows_per
        n1 = min(n0 + rows_per, N)
        for n in range(n0, n1):
            m = mean[n]
            r = rstd[n]
            # pass 1: the two row means the dx formula needs
            sd = 0.0
            sdn = 0.0
            for i in range(C):
                nrm = (x[n, i] - m) * r
                d = dout[n, i] * w[i]
                sd += d
                sdn += d * nrm
            sd /= C
            sdn /= C
            # pass 2: dx and this chunk's dw/db partial sums
            for i in range(C):
                nrm = (x[n, i] - m) * r
                g = dout[n, i]
                dx[n, i] = r * (g * w[i] - sd - nrm * sdn)
                dw_part[k, i] += g * nrm
                db_part[k, i] += g


# ----------------------------------------------------------------------------- fast CPU path
def layernorm_forward(x, w, b, eps=1e-5):
    C = x.shape[-1]
    if w.shape != (C,):
        raise ValueError(f"layernorm: weight must have shape ({C},) for input (..., {C}), got {w.shape}")
    if b is not None and b.shape != (C,):
        raise ValueError(f"layernorm: bias must have shape ({C},) for input (..., {C}), got {b.shape}")
    dt = x.dtype
    x2 = np.ascontiguousarray(x).reshape(-1, C)  # (N, C)
    N = x2.shape[0]
    out = np.empty_like(x2)
    mean = np.empty(N, dtype=dt)  # (N,)
    rstd = np.empty(N, dtype=dt)  # (N,)
    bb = b if b is not None else np.zeros(C, dtype=dt)
    _ln_forward_kernel.pick(x2.size)(x2, w.astype(dt, copy=False), bb.astype(dt, copy=False), float(eps), out, mean, rstd)
    return out.reshape(x.shape), (x2, w, mean, rstd, b is not None, x.shape)


def layernorm_backward(dout, cache):
    x2, w, mean, rstd, has_b, xshape = cache
    N, C = x2.shape
    dt = x2.dtype
    g = np.ascontiguousarray(dout, dtype=dt).reshape(N, C)
    dx = np.empty_like(x2)
    K = max(1, min(_N_CHUNKS, N))
    dw_part = np.zeros((K, C), dtype=dt)
    db_part = np.zeros((K, C), dtype=dt)
    _ln_backward_kernel.pick(g.size)(g, x2, w.astype(dt, copy=False), mean, rstd, dx, dw_part, db_part)
    dw = dw_part.sum(axis=0)
    db = db_part.sum(axis=0) if has_b else None
    return dx.reshape(xshape), dw.astype(w.dtype, copy=False), db


# ---- numba.cuda kernel: ops/layernorm_cuda.py (its class is registered for device "cuda") ----


# ----------------------------------------------------------------------------- autograd
class LayerNormFunction(Function):
    @staticmethod
    def forward(ctx, x, w, b, eps=1e-5):
        return layernorm_forward(x, w, b, eps)

    @staticmethod
    def backward(ctx, grad):
        dx, dw, db = layernorm_backward(grad, ctx.cache)
        nx, nw, nb = ctx.needs_input_grad
        return (dx if nx else None), (dw if nw else None), (db if nb else None)


def layernorm(x, w, b=None, eps=1e-5) -> Tensor:
    """Normalise ``x`` over its last dim, then scale by ``w`` and shift by ``b`` (may be None)."""
    x = x if isinstance(x, Tensor) else Tensor(x)
    w = w if isinstance(w, Tensor) else Tensor(w)
    b = None if b is None else (b if isinstance(b, Tensor) else Tensor(b))
    return LayerNormFunction.apply(x, w, b, eps=eps)
