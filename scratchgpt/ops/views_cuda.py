"""Reshape, 2-D transpose and row gather (``take_rows_cuda``) on the GPU.

A reshape of a contiguous device array is a view (no kernel). A transpose is a copy through
shared memory: a 32×32 tile is read row by row (coalesced: neighbouring threads read
neighbouring addresses) and written back row by row of the transposed matrix, so neither side
strides through global memory. The tile has one extra column so that the column reads of the
tile hit 32 different shared-memory banks.
"""
from __future__ import annotations

import numpy as np

from ..autograd.function import register
from ..errors import DeviceError
from ..cuda_arrays import cuda, launch, launch1
from .views import ReshapeFunction, TransposeFunction

TILE = 32
ROWS = 8      # a block is 32×8 threads; each thread moves TILE/ROWS = 4 elements


@cuda.jit
def _transpose_cuda(x, out):          # x (R, C) -> out (C, R)
    tile = cuda.shared.array((TILE, TILE + 1), dtype=np.float64)
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


def transpose2d_cuda(x):
    R, C = x.shape
    out = cuda.device_array((C, R), dtype=x.dtype)
    launch(_transpose_cuda, ((C + TILE - 1) // TILE, (R + TILE - 1) // TILE), (TILE, ROWS), x, out)
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
        if x.ndim != 2 or (axes is not None and tuple(axes) not in ((1, 0), (-1, 0), (1, -2), (-1, -2))):
            raise DeviceError(f"transpose on the GPU: only 2-D (1, 0) transposes, got shape {x.shape} axes {axes}")
        return transpose2d_cuda(x), None

    @staticmethod
    def backward(ctx, grad):
        return transpose2d_cuda(grad), None
