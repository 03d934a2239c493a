"""Reductions: sum and mean over some axes.

Math (x of shape S, reduced over the axis set A, N = prod of S over A; g = dL/dy):
    sum:  y = Σ_{i∈A} x_i          dx = g broadcast back to S
    mean: y = (1/N) Σ_{i∈A} x_i    dx = g / N broadcast back to S
With keepdims=False the reduced axes are first re-inserted as size-1 axes of g, then g is
broadcast. axis=None reduces everything (A = all axes, y a 0-d array).

Fast path: NumPy's reductions (pairwise summation, SIMD). A Numba loop would sum in a worse
order (less accurate) at the same memory-bound speed, so there is no Numba kernel here.
The backward materialises the broadcast gradient into a fresh contiguous array: a
zero-stride read-only view would force every downstream kernel onto the slow strided path.
"""
from __future__ import annotations

import numpy as np

from ..autograd import Function, Tensor


def _norm_axes(axis, ndim):
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, (int, np.integer)):
        axis = (int(axis),)
    out = []
    for a in axis:
        a = int(a)
        if not -ndim <= a < max(ndim, 1):
            raise ValueError(f"axis {a} is out of range for an input with {ndim} dims")
        out.append(a % ndim if ndim else 0)
    return tuple(sorted(set(out)))


def _expand(grad, axes, keepdims):
    return grad if keepdims else np.expand_dims(grad, axes) if axes else grad


def _count(shape, axes):
    n = 1
    for a in axes:
        n *= shape[a]
    return n


# ----------------------------------------------------------------------------- reference
def sum_forward_ref(x, axis=None, keepdims=False):
    x = np.asarray(x, dtype=np.float64)
    axes = _norm_axes(axis, x.ndim)
    return np.sum(x, axis=axes, keepdims=keepdims), (x.shape, axes, keepdims)


def sum_backward_ref(dout, cache):
    shape, axes, keepdims = cache
    g = _expand(np.asarray(dout, dtype=np.float64), axes, keepdims)
    return np.broadcast_to(g, shape).copy()


def mean_forward_ref(x, axis=None, keepdims=False):
    x = np.asarray(x, dtype=np.float64)
    axes = _norm_axes(axis, x.ndim)
    return np.mean(x, axis=axes, keepdims=keepdims), (x.shape, axes, keepdims)


def mean_backward_ref(dout, cache):
    shape, axes, keepdims = cache
    g = _expand(np.asarray(dout, dtype=np.float64), axes, keepdims) / _count(shape, axes)
    return np.broadcast_to(g, shape).copy()


# ----------------------------------------------------------------------------- fast CPU path
def sum_forward(x, axis=None, keepdims=False):
    axes = _norm_axes(axis, x.ndim)
    out = np.sum(x, axis=axes, keepdims=keepdims)
    return np.asarray(out, dtype=x.dtype), (x.shape, axes, keepdims)


def sum_backward(dout, cache):
    shape, axes, keepdims = cache
    dx = np.empty(shape, dtype=dout.dtype)
    dx[...] = _expand(dout, axes, keepdims)
    return dx


def mean_forward(x, axis=None, keepdims=False):
    axes = _norm_axes(axis, x.ndim)
    out = np.mean(x, axis=axes, keepdims=keepdims)
    return np.asarray(out, dtype=x.dtype), (x.shape, axes, keepdims)


def mean_backward(dout, cache):
    shape, axes, keepdims = cache
    n = _count(shape, axes)
    dx = np.empty(shape, dtype=dout.dtype)
    dx[...] = _expand(dout, axes, keepdims) * dout.dtype.type(1.0 / n)
    return dx


# ---- numba.cuda kernel: ops/reductions_cuda.py (its class is registered for device "cuda") ----


# ----------------------------------------------------------------------------- autograd
class SumFunction(Function):
    @staticmethod
    def forward(ctx, x, axis=None, keepdims=False):
        return sum_forward(x, axis, keepdims)

    @staticmethod
    def backward(ctx, grad):
        return (sum_backward(grad, ctx.cache),)


class MeanFunction(Function):
    @staticmethod
    def forward(ctx, x, axis=None, keepdims=False):
        return mean_forward(x, axis, keepdims)

    @staticmethod
    def backward(ctx, grad):
        return (mean_backward(grad, ctx.cache),)


def sum(x, axis=None, keepdims=False) -> Tensor:  # noqa: A001 - mirrors numpy's name
    """Sum over ``axis`` (int, tuple or None = all)."""
    return SumFunction.apply(x if isinstance(x, Tensor) else Tensor(x), axis=axis, keepdims=keepdims)


def mean(x, axis=None, keepdims=False) -> Tensor:
    """Mean over ``axis`` (int, tuple or None = all)."""
    return MeanFunction.apply(x if isinstance(x, Tensor) else Tensor(x), axis=axis, keepdims=keepdims)
