"""GELU on the GPU: the formula of gelu_op.py, one thread per element.

    u = k (x + a x³),  t = tanh(u),  y = ½ x (1 + t),
    dy/dx = ½ (1 + t) + ½ x (1 − t²) k (1 + 3 a x²)

The CPU kernel caches exp(−2|u|) to save a transcendental in the backward; a GPU thread
recomputes tanh instead (arithmetic is cheap there, memory traffic is not), so the cache is x.
"""
from __future__ import annotations

import math

import numpy as np

from ..autograd.function import register
from ..cuda_arrays import cuda, flat, launch1
from .gelu_op import _A, _K, GELUFunction

_K32 = np.float32(_K)
_A32 = np.float32(_A)
_A3_32 = np.float32(3.0 * _A)


@cuda.jit
def _gelu_forward_cuda(x, out):       # flat (N,)
    i = cuda.grid(1)
    if i < x.size:
        xi = x[i]
        t = math.tanh(_K32 * (xi + _A32 * xi * xi * xi))
        out[i] = np.float32(0.5) * xi * (np.float32(1.0) + t)


@cuda.jit
def _gelu_backward_cuda(dout, x, dx):  # flat (N,)
    i = cuda.grid(1)
    if i < x.size:
        xi = x[i]
        t = math.tanh(_K32 * (xi + _A32 * xi * xi * xi))
        d = (np.float32(0.5) * (np.float32(1.0) + t)
             + np.float32(0.5) * xi * (np.float32(1.0) - t * t) * _K32 * (np.float32(1.0) + _A3_32 * xi * xi))
        dx[i] = dout[i] * d


def gelu_inplace_cuda(x):
    """x <- gelu(x) for a contiguous device array (generation: no cache for a backward)."""
    if x.size:
        launch1(_gelu_forward_cuda, x.size, flat(x), flat(x))
    return x


def gelu_forward_cuda(x):
    out = cuda.device_array(x.shape, dtype=x.dtype)
    launch1(_gelu_forward_cuda, x.size, flat(x), flat(out))
    return out, x


def gelu_backward_cuda(dout, x):
    dx = cuda.device_array(x.shape, dtype=x.dtype)
    launch1(_gelu_backward_cuda, x.size, flat(dout), flat(x), flat(dx))
    return dx


@register(GELUFunction, "cuda")
class GELUCuda:
    @staticmethod
    def forward(ctx, x):
        return gelu_forward_cuda(x)

    @staticmethod
    def backward(ctx, grad):
        return (gelu_backward_cuda(grad, ctx.cache),)
