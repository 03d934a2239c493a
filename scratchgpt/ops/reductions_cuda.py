"""Sum and mean of a whole array on the GPU (axis=None), to a 0-d device array.

    s = Σ_i x_i,  ds/dx_i = 1;     μ = s / N,  dμ/dx_i = 1/N

One block of ROW_THREADS threads: each thread adds a strided share, ``block_sum`` adds the
shares in shared memory. (One block is enough for losses and norms of the sizes summed here;
a two-level reduction — per-block partials, then one block over them — is what a full-size
reduction would use, as cuda_arrays.sum_of_squares does.)
"""
from __future__ import annotations

import functools

from ..autograd.function import register
from ..cuda_arrays import ROW_THREADS, block_sum, cuda, flat, launch, launch1
from ..errors import DeviceError
from .reductions import MeanFunction, SumFunction


@functools.cache
def _kernels(dt):
    @cuda.jit
    def _sum_all(x, scale, out):            # x flat (N,), out (1,) = scale · Σ x
        buf = cuda.shared.array(ROW_THREADS, dtype=dt)
        s = dt(0.0)
        for i in range(cuda.threadIdx.x, x.size, ROW_THREADS):
            s += x[i]
        total = block_sum(buf, s)
        if cuda.threadIdx.x == 0:
            out[0] = total * scale

    @cuda.jit
    def _broadcast(g, scale, dx):           # dx flat (N,) = g[0] · scale
        i = cuda.grid(1)
        if i < dx.size:
            dx[i] = g[0] * scale

    return _sum_all, _broadcast


def _reduce(x, axis, keepdims, scale):
    if axis is not None or keepdims:
        raise DeviceError("sum/mean on the GPU reduce the whole array (axis=None, keepdims=False) only")
    out = cuda.device_array(1, dtype=x.dtype)
    launch(_kernels(x.dtype.type)[0], 1, ROW_THREADS, flat(x), x.dtype.type(scale), out)
    return out.reshape(()), (tuple(x.shape), scale)


def _expand(grad, cache):
    shape, scale = cache
    dx = cuda.device_array(shape, dtype=grad.dtype)
    launch1(_kernels(grad.dtype.type)[1], dx.size, grad.reshape(1), grad.dtype.type(scale), flat(dx))
    return dx


@register(SumFunction, "cuda")
class SumCuda:
    @staticmethod
    def forward(ctx, x, axis=None, keepdims=False):
        return _reduce(x, axis, keepdims, 1.0)

    @staticmethod
    def backward(ctx, grad):
        return (_expand(grad, ctx.cache),)


@register(MeanFunction, "cuda")
class MeanCuda:
    @staticmethod
    def forward(ctx, x, axis=None, keepdims=False):
        return _reduce(x, axis, keepdims, 1.0 / max(x.size, 1))

    @staticmethod
    def backward(ctx, grad):
        return (_expand(grad, ctx.cache),)
