"""Reshape, transpose, getitem, concat and row gather (``take_rows_cuda``) on the GPU.

A reshape of a contiguous device array is a view (no kernel). A transpose is a copy through
shared memory: a 32×32 tile is read row by row (coalesced: neighbouring threads read
neighbouring addresses) and written back row by row of the transposed matrix, so neither side
strides through global memory. The tile has one extra column so that the column reads of the
tile hit 32 different shared-memory banks.
"""
from __future__ import annotations

import functools

import numpy as np

from ..autograd.function import register
from ..errors import DeviceError
from ..cuda_arrays import cuda, launch, launch1
from .views import ConcatFunction, GetItemFunction, ReshapeFunction, TransposeFunction, _is_basic_index

TILE = 32
ROWS = 8      # a block is 32×8 threads; each thread moves TILE/ROWS = 4 elements
TILE_PAD = TILE + 1   # the tile's row length: one extra column (bank conflicts, see above)


@functools.cache
def _transpose_kernel(dt):
    # one build per dtype: the tile holds the array's own type (a float64 tile for float32 data
    # would double the shared memory and convert every element twice)
    @cuda.jit
    def _transpose_cuda(x, out):          # x (R, C) -> out (C, R)
        # a shared array's shape must be a compile-time constant: TILE_PAD, not TILE + 1
        tile = cuda.shared.array((TILE, TILE_PAD), dtype=dt)
        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        c0 = cuda.blockIdx.x * TILE
        r0 = cuda.blockIdx.y * TILE
        for k in range(0, TILE, ROWS):
            r = r0 + ty + k
            if r < x.shape[0] and c0 + tx < x.shape[1]:
                tile[ty + k, tx] = x[r, c0 + tx]
        cuda.syncthreads()
        for k in range(0, TILE, ROWS):
            c = c0 + ty + k                      # row of out
            if c < out.shape[0] and r0 + tx < out.shape[1]:
                out[c, r0 + tx] = tile[tx, ty + k]
    return _transpose_cuda


def transpose2d_cuda(x):
    R, C = x.shape
    out = cuda.device_array((C, R), dtype=x.dtype)
    launch(_transpose_kernel(x.dtype.type), ((C + TILE - 1) // TILE, (R + TILE - 1) // TILE), (TILE, ROWS), x, out)
    return out


@cuda.jit
def _take_rows_cuda(x, rows, out):    # x (R, C); rows (B,) int; out (B, C)
    i = cuda.grid(1)
    C = out.shape[1]
    if i < out.shape[0] * C:
        out[i // C, i % C] = x[rows[i // C], i % C]


def take_rows_cuda(x, rows, out=None):
    """out[i] = x[rows[i]] (NumPy's ``np.take(x, rows, axis=0)``) for a 2-D device array x and a
    device array of row indices, one thread per element of ``out``."""
    if out is None:
        out = cuda.device_array((rows.shape[0], x.shape[1]), dtype=x.dtype)
    if out.size:
        launch1(_take_rows_cuda, out.size, x, rows, out)
    return out


# ---- affine views: getitem (basic indices), concat, N-d transpose
# A basic index or an axis permutation of a contiguous array selects elements at flat offsets
# off + Σ_d k_d · stride_d over the view's shape: an affine grid. NumPy works that grid out for
# us on a dummy array of 1-byte items that has the real array's element strides and no memory
# behind it (never read): the view's byte strides and data offset ARE the element strides and
# offset. One kernel then gathers (dst[i] = src[grid(i)]) or scatters (dst[grid(i)] = src[i]);
# basic indices never select an element twice, so the scatter needs no atomics.
MAX_DIMS = 4


@cuda.jit
def _affine_copy(src, dst, meta, n, gather):   # src, dst flat; meta: off, strides (4), dims (4)
    i = cuda.grid(1)
    if i < n:
        r = i
        k = meta[0]
        for d in range(MAX_DIMS - 1, -1, -1):
            c = r % meta[5 + d]
            r //= meta[5 + d]
            k += c * meta[1 + d]
        if gather:
            dst[i] = src[k]
        else:
            dst[k] = src[i]


def _affine(shape, view_fn):
    """(meta device array, view shape) of ``view_fn(x)`` for a contiguous x of ``shape``."""
    shape = tuple(int(s) for s in shape)
    est = [1] * len(shape)
    for d in range(len(shape) - 2, -1, -1):
        est[d] = est[d + 1] * max(shape[d + 1], 1)
    base = np.zeros(1, np.uint8)
    dummy = np.lib.stride_tricks.as_strided(base, shape=shape, strides=est, writeable=False)
    v = view_fn(dummy)
    if v.ndim > MAX_DIMS:
        raise DeviceError(f"views on the GPU: at most {MAX_DIMS} dimensions, got a view of shape {v.shape}")
    pad = MAX_DIMS - v.ndim
    off = v.__array_interface__["data"][0] - base.__array_interface__["data"][0]
    meta = [off] + [0] * pad + list(v.strides) + [1] * pad + list(v.shape)
    from ..cuda_arrays import int_constants
    return int_constants(meta), tuple(v.shape)          # cached on the device: no upload per step


def _gather(x, meta, shape):
    out = cuda.device_array(shape, dtype=x.dtype)
    if out.size:
        launch1(_affine_copy, out.size, x.reshape(x.size), out.reshape(out.size), meta, out.size, True)
    return out


def _scatter(src, meta, dst):
    if src.size:
        launch1(_affine_copy, src.size, src.reshape(src.size), dst.reshape(dst.size), meta, src.size, False)
    return dst


def getitem_cuda(x, index):
    """x[index] for basic indices (ints, slices, ..., None): a contiguous device copy."""
    if not _is_basic_index(index):
        raise DeviceError("getitem on the GPU: basic indices only (ints, slices, ..., None); "
                          f"got {type(index).__name__} with arrays")
    meta, shape = _affine(x.shape, lambda d: d[index])
    return _gather(x, meta, shape), (tuple(x.shape), meta)


def transpose_nd_cuda(x, axes):
    meta, shape = _affine(x.shape, lambda d: np.transpose(d, axes))
    return _gather(x, meta, shape)


def _slab(axis, start, n):
    return lambda d: d[(slice(None),) * axis + (slice(start, start + n),)]


@register(GetItemFunction, "cuda")
class GetItemCuda:
    @staticmethod
    def forward(ctx, x, index):
        return getitem_cuda(x, index)

    @staticmethod
    def backward(ctx, grad):
        from ..cuda_arrays import zeros
        shape, meta = ctx.cache
        return _scatter(grad, meta, zeros(shape, grad.dtype)), None


@register(ConcatFunction, "cuda")
class ConcatCuda:
    @staticmethod
    def forward(ctx, *xs, axis=0):
        ndim = xs[0].ndim
        ax = axis + ndim if axis < 0 else axis
        shape = list(xs[0].shape)
        shape[ax] = sum(int(x.shape[ax]) for x in xs)
        out = cuda.device_array(tuple(shape), dtype=xs[0].dtype)
        metas, start = [], 0
        for x in xs:
            if x.ndim != ndim or any(int(a) != int(b) for d, (a, b) in enumerate(zip(x.shape, shape)) if d != ax):
                raise ValueError(f"concat: shapes {[tuple(t.shape) for t in xs]} differ outside axis {axis}")
            meta, _ = _affine(shape, _slab(ax, start, int(x.shape[ax])))
            _scatter(x, meta, out)
            metas.append((meta, tuple(x.shape)))
            start += int(x.shape[ax])
        return out, metas

    @staticmethod
    def backward(ctx, grad):
        return tuple(_gather(grad, meta, shape) for meta, shape in ctx.cache)


def _resolve(shape, size):
    shape = tuple(int(s) for s in shape)
    if shape.count(-1) == 1:
        rest = 1
        for s in shape:
            if s != -1:
                rest *= s
        shape = tuple(size // rest if s == -1 else s for s in shape)
    if int(np.prod(shape, dtype=np.int64)) != size:
        raise ValueError(f"reshape: cannot view {size} elements as {shape}")
    return shape


@register(ReshapeFunction, "cuda")
class ReshapeCuda:
    @staticmethod
    def forward(ctx, x, shape):
        return x.reshape(*_resolve(shape, x.size)), x.shape

    @staticmethod
    def backward(ctx, grad):
        return grad.reshape(*ctx.cache), None


@register(TransposeFunction, "cuda")
class TransposeCuda:
    @staticmethod
    def forward(ctx, x, axes=None):
        perm = tuple(range(x.ndim))[::-1] if axes is None else tuple(int(a) % x.ndim for a in axes)
        if perm == (1, 0):                  # the 2-D transpose: shared-memory tiles (coalesced both ways)
            return transpose2d_cuda(x), perm
        return transpose_nd_cuda(x, perm), perm

    @staticmethod
    def backward(ctx, grad):
        perm = ctx.cache
        if perm == (1, 0):
            return transpose2d_cuda(grad), None
        return transpose_nd_cuda(grad, tuple(np.argsort(perm))), None
