"""Views and shape ops: reshape, transpose, getitem (indexing/slicing), concat.

Math (no arithmetic, only moving elements; g = dL/dy):
    reshape(x, s):      y = x laid out as s          dx = g reshaped to x.shape
    transpose(x, p):    y[i_p0, i_p1, ...] = x[i]     dx = transpose(g, argsort(p))
    getitem(x, k):      y = x[k]                     dx = zeros(x.shape); dx[k] += g
                        (with repeated advanced indices the contributions add: scatter-add)
    concat([x1..xn],a): y = [x1 | ... | xn] along a  dxi = the matching slice of g

Fast path: NumPy. reshape/transpose/basic slicing are metadata-only views (no copy, O(1));
a kernel could only be slower. getitem's backward uses a plain slice assignment for basic
indices (one strided copy) and ``np.add.at`` only when advanced indices may repeat.
"""
from __future__ import annotations

import numpy as np

from ..autograd import Function, Tensor


def _is_basic_index(index) -> bool:
    """True when ``x[index]`` selects each element at most once (ints, slices, ..., None)."""
    items = index if isinstance(index, tuple) else (index,)
    for it in items:
        if it is None or it is Ellipsis or isinstance(it, (slice, int, np.integer)):
            continue
        return False
    return True


def _unwrap_index(index):
    if isinstance(index, Tensor):
        return index.data
    if isinstance(index, tuple):
        return tuple(i.data if isinstance(i, Tensor) else i for i in index)
    return index


# ----------------------------------------------------------------------------- reference
def reshape_forward_ref(x, shape):
    x = np.asarray(x, dtype=np.float64)
    return x.reshape(shape), x.shape


def reshape_backward_ref(dout, cache):
    return np.asarray(dout, dtype=np.float64).reshape(cache)


def transpose_forward_ref(x, axes=None):
    x = np.asarray(x, dtype=np.float64)
    axes = tuple(range(x.ndim))[::-1] if axes is None else tuple(axes)
    return np.transpose(x, axes), axes


def transpose_backward_ref(dout, cache):
    return np.transpose(np.asarray(dout, dtype=np.float64), np.argsort(cache))


def getitem_forward_ref(x, index):
    x = np.asarray(x, dtype=np.float64)
    return x[index], (x.shape, index)


def getitem_backward_ref(dout, cache):
    shape, index = cache
    dx = np.zeros(shape, dtype=np.float64)
    np.add.at(dx, index, np.asarray(dout, dtype=np.float64))  # the definition: scatter-add
    return dx


def concat_forward_ref(xs, axis=0):
    xs = [np.asarray(x, dtype=np.float64) for x in xs]
    return np.concatenate(xs, axis=axis), ([x.shape[axis] for x in xs], axis)


def concat_backward_ref(dout, cache):
    sizes, axis = cache
    return tuple(np.split(np.asarray(dout, dtype=np.float64), np.cumsum(sizes)[:-1], axis=axis))


# ----------------------------------------------------------------------------- fast CPU path
def reshape_forward(x, shape):
    return x.reshape(shape), x.shape


def reshape_backward(dout, cache):
    return dout.reshape(cache)


def transpose_forward(x, axes=None):
    axes = tuple(range(x.ndim))[::-1] if axes is None else tuple(int(a) for a in axes)
    if sorted(a % max(x.ndim, 1) for a in axes) != list(range(x.ndim)):
        raise ValueError(f"transpose: axes {axes} is not a permutation of {x.ndim} dims")
    return np.transpose(x, axes), axes


def transpose_backward(dout, cache):
    return np.transpose(dout, np.argsort(cache))


def getitem_forward(x, index):
    return x[index], (x.shape, index)


def getitem_backward(dout, cache):
    shape, index = cache
    dx = np.zeros(shape, dtype=dout.dtype)
    if _is_basic_index(index):
        dx[index] = dout  # each element selected once: a plain strided copy
    else:
        np.add.at(dx, index, dout)
    return dx


def concat_forward(xs, axis=0):
    return np.concatenate(xs, axis=axis), ([x.shape[axis] for x in xs], axis)


def concat_backward(dout, cache):
    sizes, axis = cache
    return tuple(np.split(dout, np.cumsum(sizes)[:-1], axis=axis))


# ---- numba.cuda kernel: ops/views_cuda.py (its class is registered for device "cuda") ----


# ----------------------------------------------------------------------------- autograd
class ReshapeFunction(Function):
    @staticmethod
    def forward(ctx, x, shape):
        return reshape_forward(x, shape)

    @staticmethod
    def backward(ctx, grad):
        return reshape_backward(grad, ctx.cache), None


class TransposeFunction(Function):
    @staticmethod
    def forward(ctx, x, axes=None):
        return transpose_forward(x, axes)

    @staticmethod
    def backward(ctx, grad):
        return transpose_backward(grad, ctx.cache), None


class GetItemFunction(Function):
    @staticmethod
    def forward(ctx, x, index):
        return getitem_forward(x, index)

    @staticmethod
    def backward(ctx, grad):
        return getitem_backward(grad, ctx.cache), None


class ConcatFunction(Function):
    @staticmethod
    def forward(ctx, *xs, axis=0):
        return concat_forward(xs, axis)

    @staticmethod
    def backward(ctx, grad):
        return concat_backward(grad, ctx.cache)


def _t(x):
    return x if isinstance(x, Tensor) else Tensor(x)


def reshape(x, shape) -> Tensor:
    """x viewed with a new ``shape`` (one entry may be -1)."""
    if isinstance(shape, (int, np.integer)):
        shape = (int(shape),)
    return ReshapeFunction.apply(_t(x), tuple(shape))


def transpose(x, axes=None) -> Tensor:
    """Permute axes (None reverses them), as ``np.transpose``."""
    return TransposeFunction.apply(_t(x), None if axes is None else tuple(axes))


def getitem(x, index) -> Tensor:
    """x[index] for NumPy basic or advanced indices."""
    return GetItemFunction.apply(_t(x), _unwrap_index(index))


def concat(tensors, axis=0) -> Tensor:
    """Join tensors along an existing ``axis``."""
    tensors = [_t(t) for t in tensors]
    if not tensors:
        raise ValueError("concat: expected at least one tensor, got an empty sequence")
    return ConcatFunction.apply(*tensors, axis=axis)
