"""Smear: mix each position's vector with the previous position's, through a learned gate.

A cheap previous-token path (GPT option ``smear``). Copying a value from earlier in the text
is done by an induction circuit: a head whose key at position j carries the token *before* j,
so "the token that followed the current one last time" can be found and copied. In a plain
GPT the key must first learn that previous-token feature with another attention head, and that
takes long to appear. The smear gate hands it over at the embedding: after it, x[t] already
holds a gated copy of x[t-1], so the first attention layer can match on it.

Math, x (B, T, C), w (C,), b (1,) (g = dL/dy):
    s[b, t] = x[b, t] · w + b[0]                       (B, T)     t ≥ 1
    a[b, t] = σ(s[b, t]) = 1 / (1 + exp(-s[b, t]))
    y[b, 0] = x[b, 0]
    y[b, t] = x[b, t] + a[b, t] · x[b, t-1]            (B, T, C)  t ≥ 1
Backward, for t ≥ 1:
    ds[b, t]  = (g[b, t] · x[b, t-1]) · a (1 - a)
    dx[b, t] += g[b, t] + ds[b, t] · w
    dx[b, t-1] += a[b, t] · g[b, t]
    dw = Σ_{b, t≥1} ds[b, t] x[b, t];   db = Σ_{b, t≥1} ds[b, t]
and dx[b, t] = g[b, t] for the identity part at every t.

Causal: y[t] reads x[t] and x[t-1] only. At generation time with a KV cache, the new token's
smear needs the previous token's embedding (the last token of the context), nothing more.

Fast path: vectorised NumPy in float32 (the op is O(B·T·C), next to nothing beside the matmuls;
a Numba kernel would not pay for its compile time).
"""
from __future__ import annotations

import numpy as np

from ..autograd import Function, Tensor
from ..errors import DataError


def _check(x, w, b):
    if x.ndim != 3 or w.shape != (x.shape[-1],) or b.shape != (1,):
        raise DataError(f"smear expects x (B, T, C), w (C,), b (1,); got {x.shape}, {w.shape}, {b.shape}")


# ----------------------------------------------------------------------------- reference
def smear_forward_ref(x, w, b):
    x = np.asarray(x, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    _check(x, w, b)
    B, T, C = x.shape
    y = x.copy()
    a = np.zeros((B, T))
    for bi in range(B):
        for t in range(1, T):
            a[bi, t] = 1.0 / (1.0 + np.exp(-(float(x[bi, t] @ w) + float(b[0]))))
            y[bi, t] = x[bi, t] + a[bi, t] * x[bi, t - 1]
    return y, (x, w, a)


def smear_backward_ref(dout, cache):
    x, w, a = cache
    g = np.asarray(dout, dtype=np.float64)
    B, T, C = x.shape
    dx = g.copy()
    dw = np.zeros(C)
    db = np.zeros(1)
    for bi in range(B):
        for t in range(1, T):
            ds = float(g[bi, t] @ x[bi, t - 1]) * a[bi, t] * (1.0 - a[bi, t])
            dx[bi, t] += ds * w
            dx[bi, t - 1] += a[bi, t] * g[bi, t]
            dw += ds * x[bi, t]
            db[0] += ds
    return dx, dw, db


# ----------------------------------------------------------------------------- fast path (NumPy)
def smear_forward(x, w, b):
    _check(x, w, b)
    s = x[:, 1:] @ w + b[0]                                   # (B, T-1)
    a = (1.0 / (1.0 + np.exp(-s))).astype(x.dtype)           # (B, T-1)
    y = x.copy()
    y[:, 1:] += a[..., None] * x[:, :-1]                      # (B, T-1, C)
    return y, (x, w, a)


def smear_backward(dout, cache):
    x, w, a = cache
    ds = np.einsum("btc,btc->bt", dout[:, 1:], x[:, :-1]) * a * (1.0 - a)   # (B, T-1)
    dx = dout.copy()
    dx[:, 1:] += ds[..., None] * w
    dx[:, :-1] += a[..., None] * dout[:, 1:]
    dw = np.einsum("bt,btc->c", ds, x[:, 1:]).astype(w.dtype)
    db = np.array([ds.sum()], dtype=w.dtype)
    return dx, dw, db


# ---- numba.cuda kernel ----
# in smear_cuda.py (training and the engine's row form)


class SmearFunction(Function):
    @staticmethod
    def forward(ctx, x, w, b):
        return smear_forward(x, w, b)

    @staticmethod
    def backward(ctx, grad):
        dx, dw, db = smear_backward(grad, ctx.cache)
        nx, nw, nb = ctx.needs_input_grad
        return (dx if nx else None), (dw if nw else None), (db if nb else None)


def smear(x, w, b) -> Tensor:
    """y[t] = x[t] + σ(x[t]·w + b) · x[t-1] for t ≥ 1, y[0] = x[0]; x (B, T, C)."""
    return SmearFunction.apply(*(a if isinstance(a, Tensor) else Tensor(a) for a in (x, w, b)))
