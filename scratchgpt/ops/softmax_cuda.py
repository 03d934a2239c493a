"""Softmax over the last axis on the GPU (one block of ROW_THREADS per row).

    y_j = exp(x_j − m) / Σ_k exp(x_k − m),  m = max_k x_k;     dx_j = y_j (g_j − Σ_k g_k y_k)

Same thread layout as layernorm_cuda.py: threads stride over the row, ``block_max`` and
``block_sum`` meet in shared memory.
"""
from __future__ import annotations

import functools
import math

from ..autograd.function import register
from ..cuda_arrays import ROW_THREADS, block_max, block_sum, cuda, launch
from ..errors import DeviceError
from .softmax_op import SoftmaxFunction


@functools.cache
def _kernels(dt):
    @cuda.jit
    def _softmax_rows(x, y):                # x, y (N, n); one block per row
        buf = cuda.shared.array(ROW_THREADS, dtype=dt)
        r = cuda.blockIdx.x
        tid = cuda.threadIdx.x
        n = x.shape[1]
        m = x[r, 0]
        for j in range(tid, n, ROW_THREADS):
            m = max(m, x[r, j])
        m = block_max(buf, m)
        s = dt(0.0)
        for j in range(tid, n, ROW_THREADS):
            s += math.exp(x[r, j] - m)
        inv = dt(1.0) / block_sum(buf, s)
        for j in range(tid, n, ROW_THREADS):
            y[r, j] = math.exp(x[r, j] - m) * inv

    @cuda.jit
    def _softmax_backward_rows(g, y, dx):
        buf = cuda.shared.array(ROW_THREADS, dtype=dt)
        r = cuda.blockIdx.x
        tid = cuda.threadIdx.x
        n = y.shape[1]
        s = dt(0.0)
        for j in range(tid, n, ROW_THREADS):
            s += g[r, j] * y[r, j]
        s = block_sum(buf, s)
        for j in range(tid, n, ROW_THREADS):
            dx[r, j] = y[r, j] * (g[r, j] - s)

    return _softmax_rows, _softmax_backward_rows


def softmax_forward_cuda(x, axis=-1):
    shape = tuple(x.shape)
    if axis not in (-1, len(shape) - 1):
        raise DeviceError(f"softmax on the GPU runs over the last axis only, got axis={axis}")
    n = shape[-1]
    x2 = x.reshape(x.size // n, n)
    y = cuda.device_array(tuple(x2.shape), dtype=x.dtype)
    launch(_kernels(x.dtype.type)[0], x2.shape[0], ROW_THREADS, x2, y)
    return y.reshape(*shape), (y, shape)


def softmax_backward_cuda(dout, cache):
    y, shape = cache
    dx = cuda.device_array(tuple(y.shape), dtype=y.dtype)
    launch(_kernels(y.dtype.type)[1], y.shape[0], ROW_THREADS, dout.reshape(*y.shape), y, dx)
    return dx.reshape(*shape)


@register(SoftmaxFunction, "cuda")
class SoftmaxCuda:
    @staticmethod
    def forward(ctx, x, axis=-1):
        return softmax_forward_cuda(x, axis)

    @staticmethod
    def backward(ctx, grad):
        return (softmax_backward_cuda(grad, ctx.cache),)
