"""softmax and log_softmax along one axis.

Math, per row x ∈ R^n along ``axis`` (g = dL/dy):
    m = max_i x_i                         (subtracted first: exp never overflows)
    softmax:      y_i = exp(x_i − m) / Σ_j exp(x_j − m)
                  dx_i = y_i (g_i − Σ_j g_j y_j)
    log_softmax:  y_i = x_i − m − log Σ_j exp(x_j − m)
                  dx_i = g_i − exp(y_i) Σ_j g_j
Both caches hold only the output y.

Fast path: the forward uses NumPy for the row max/subtract/exp (np.exp is a SIMD loop; Numba
would call the scalar libm exp per element, ~15 ns each here without Intel SVML) and a Numba
kernel, parallel over rows, for the normalisation; the backward is pure arithmetic and runs
as one fused Numba pass per row. A non-last ``axis`` is moved last (one copy) so kernels
always see contiguous rows.
"""
from __future__ import annotations

import numpy as np
from numba import prange

from ..autograd import Function, Tensor
from ._numba import SUMS, njit_pair

# fastmath SUMS (see _numba.py): vectorised row sums, fixed order, inf/NaN propagate.


# ----------------------------------------------------------------------------- reference
def softmax_forward_ref(x, axis=-1):
    x = np.asarray(x, dtype=np.float64)
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    y = e / e.sum(axis=axis, keepdims=True)
    return y, (y, axis)


def softmax_backward_ref(dout, cache):
    y, axis = cache
    g = np.asarray(dout, dtype=np.float64)
    return y * (g - (g * y).sum(axis=axis, keepdims=True))


def log_softmax_forward_ref(x, axis=-1):
    x = np.asarray(x, dtype=np.float64)
    z = x - x.max(axis=axis, keepdims=True)
    y = z - np.log(np.exp(z).sum(axis=axis, keepdims=True))
    return y, (y, axis)


def log_softmax_backward_ref(dout, cache):
    y, axis = cache
    g = np.asarray(dout, dtype=np.float64)
    return g - np.exp(y) * g.sum(axis=axis, keepdims=True)


# ----------------------------------------------------------------------------- Numba kernels
@njit_pair(fastmath=SUMS)
def _normalise_rows(e):  # e (N, n) = exp(x - max), normalised in place to softmax
    N, n = e.shape
    for r in prange(N):
        s = 0.0
        for i in range(n):
            s += e[r, i]
        inv = e.dtype.type(1.0 / s)
        for i in range(n):
            e[r, i] *= inv


@njit_pair(fastmath=SUMS)
def _log_normalise_rows(z, e):  # z (N, n) = x - max, e = exp(z); z becomes z - log Σ e
    N, n = z.shape
    for r in prange(N):
        s = 0.0
        for i in range(n):
            s += e[r, i]
        ls = z.dtype.type(np.log(s))
        for i in range(n):
            z[r, i] -= ls


@njit_pair(fastmath=SUMS)
def _softmax_backward_rows(g, y, dx):  # (N, n): dx = y (g - Σ g y)
    N, n = y.shape
    for r in prange(N):
        s = 0.0
        for i in range(n):
            s += g[r, i] * y[r, i]
        sc = y.dtype.type(s)
        for i in range(n):
            dx[r, i] = y[r, i] * (g[r, i] - sc)


@njit_pair(fastmath=SUMS)
def _log_softmax_backward_rows(g, p, dx):  # (N, n), p = exp(y): dx = g - p Σ g
    N, n = p.shape
    for r in prange(N):
        s = 0.0
        for i in range(n):
            s += g[r, i]
        sc = p.dtype.type(s)
        for i in range(n):
            dx[r, i] = g[r, i] - p[r, i] * sc


# ----------------------------------------------------------------------------- fast CPU path
def _rows(x, axis):
    """Contiguous (N, n) rows with ``axis`` last, plus how to undo it."""
    axis = axis % x.ndim
    xm = np.moveaxis(x, axis, -1) if axis != x.ndim - 1 else x
    xm = np.ascontiguousarray(xm)
    return xm.reshape(-1, xm.shape[-1]), xm.shape, axis


def _unrows(r, mshape, axis, ndim):
    out = r.reshape(mshape)
    return np.moveaxis(out, -1, axis) if axis != ndim - 1 else out


def softmax_forward(x, axis=-1):
    x2, mshape, ax = _rows(x, axis)
    e = x2 - x2.max(axis=1, keepdims=True)  # (N, n) fresh buffer, then in place
    np.exp(e, out=e)
    _normalise_rows.pick(e.size)(e)
    return _unrows(e, mshape, ax, x.ndim), (e, mshape, ax, x.ndim)


def softmax_backward(dout, cache):
    y, mshape, ax, ndim = cache
    g, _, _ = _rows(np.asarray(dout, dtype=y.dtype), ax)
    dx = np.empty_like(y)
    _softmax_backward_rows.pick(g.size)(g, y, dx)
    return _unrows(dx, mshape, ax, ndim)


def log_softmax_forward(x, axis=-1):
    x2, mshape, ax = _rows(x, axis)
    z = x2 - x2.max(axis=1, keepdims=True)  # (N, n)
    e = np.exp(z)
    _log_normalise_rows.pick(z.size)(z, e)
    return _unrows(z, mshape, ax, x.ndim), (z, mshape, ax, x.ndim)


def log_softmax_backward(dout, cache):
    y, mshape, ax, ndim = cache
    g, _, _ = _rows(np.asarray(dout, dtype=y.dtype), ax)
    p = np.exp(y)
    dx = np.empty_like(y)
    _log_softmax_backward_rows.pick(g.size)(g, p, dx)
    return _unrows(dx, mshape, ax, ndim)


# ---- numba.cuda kernel: ops/softmax_cuda.py (its class is registered for device "cuda") ----


# ----------------------------------------------------------------------------- autograd
class SoftmaxFunction(Function):
    @staticmethod
    def forward(ctx, x, axis=-1):
        return softmax_forward(x, axis)

    @staticmethod
    def backward(ctx, grad):
        return (softmax_backward(grad, ctx.cache),)


class LogSoftmaxFunction(Function):
    @staticmethod
    def forward(ctx, x, axis=-1):
        return log_softmax_forward(x, axis)

    @staticmethod
    def backward(ctx, grad):
        return (log_softmax_backward(grad, ctx.cache),)


def _check_axis(x, axis, name):
    if x.data.ndim == 0 or not -x.data.ndim <= axis < x.data.ndim:
        raise ValueError(f"{name}: axis {axis} is out of range for an input of shape {x.data.shape}")


def softmax(x, axis=-1) -> Tensor:
    """exp(x) / Σ exp(x) along ``axis``."""
    x = x if isinstance(x, Tensor) else Tensor(x)
    _check_axis(x, axis, "softmax")
    return SoftmaxFunction.apply(x, axis=axis)


def log_softmax(x, axis=-1) -> Tensor:
    """x − log Σ exp(x) along ``axis`` (stable)."""
    x = x if isinstance(x, Tensor) else Tensor(x)
    _check_axis(x, axis, "log_softmax")
    return LogSoftmaxFunction.apply(x, axis=axis)
