"""Inverted dropout (seeded).

Math, elementwise, drop probability p ∈ [0, 1), keep mask m_i ~ Bernoulli(1 − p):
    y_i  = x_i m_i / (1 − p)          (E[y_i] = x_i: no rescaling needed at eval time)
    dx_i = g_i m_i / (1 − p)
In eval mode (training=False) or with p = 0, y = x: the input Tensor itself is returned, no
work, no graph node. p = 1 is rejected (the 1/(1 − p) scale is undefined; drop the layer).

Randomness: the mask is u_i ≥ p with u_i drawn as float32 uniforms from a NumPy Generator
(``rng``: a Generator, or an int seed for a fresh one). The same seed gives the same mask in
any dtype, so the reference and the fast path agree exactly.

Fast path: the uniforms come from NumPy's PCG64 (vectorised C); one fused Numba pass turns
them into the uint8 mask and the scaled output; the backward is one fused pass too.
"""
from __future__ import annotations

import numpy as np
from numba import prange

from ..autograd import Function, Tensor
from ..errors import ConfigError
from ._numba import STRICT, njit_pair


def _check_p(p):
    if isinstance(p, bool) or not isinstance(p, (int, float, np.floating, np.integer)):
        raise ConfigError(f"dropout: p must be a number in [0, 1), got {p!r}")
    p = float(p)
    if not 0.0 <= p < 1.0:
        raise ConfigError(f"dropout: p must be in [0, 1), got {p}")
    return p


def _generator(rng):
    if rng is None:
        return np.random.default_rng()
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        return np.random.default_rng(int(rng))
    raise ConfigError(f"dropout: rng must be a numpy Generator, an int seed or None, got {type(rng).__name__}")


def _uniforms(shape, rng):
    return _generator(rng).random(shape, dtype=np.float32)


# ----------------------------------------------------------------------------- reference
def dropout_forward_ref(x, p, rng=None, training=True):
    x = np.asarray(x, dtype=np.float64)
    p = _check_p(p)
    if not training or p == 0.0:
        return x, None
    keep = _uniforms(x.shape, rng) >= np.float32(p)
    return x * keep / (1.0 - p), (keep, p)


def dropout_backward_ref(dout, cache):
    g = np.asarray(dout, dtype=np.float64)
    if cache is None:
        return g
    keep, p = cache
    return g * keep / (1.0 - p)


# ----------------------------------------------------------------------------- Numba kernels
@njit_pair(fastmath=STRICT)
def _dropout_forward_kernel(x, u, p, scale, out, mask):  # flat (N,)
    for i in prange(x.shape[0]):
        k = u[i] >= p
        mask[i] = k
        out[i] = x[i] * scale if k else x.dtype.type(0.0)


@njit_pair(fastmath=STRICT)
def _dropout_backward_kernel(g, mask, scale, dx):  # flat (N,)
    for i in prange(g.shape[0]):
        dx[i] = g[i] * scale if mask[i] else g.dtype.type(0.0)


# ----------------------------------------------------------------------------- fast CPU path
def dropout_forward(x, p, rng=None, training=True):
    p = _check_p(p)
    if not training or p == 0.0:
        return x, None
    xc = np.ascontiguousarray(x)
    u = _uniforms(xc.size, rng)  # (N,) float32
    out = np.empty_like(xc)
    mask = np.empty(xc.size, dtype=np.uint8)  # 1 byte per element: a quarter of a float mask
    scale = xc.dtype.type(1.0 / (1.0 - p))
    _dropout_forward_kernel.pick(xc.size)(xc.reshape(-1), u, np.float32(p), scale, out.reshape(-1), mask)
    return out, (mask, scale, xc.shape)


def dropout_backward(dout, cache):
    if cache is None:
        return dout
    mask, scale, shape = cache
    g = np.ascontiguousarray(dout).reshape(-1)
    dx = np.empty_like(g)
    _dropout_backward_kernel.pick(g.size)(g, mask, g.dtype.type(scale), dx)
    return dx.reshape(shape)


# ---- numba.cuda kernel: ops/dropout_cuda.py (its class is registered for device "cuda") ----


# ----------------------------------------------------------------------------- autograd
class DropoutFunction(Function):
    @staticmethod
    def forward(ctx, x, p, rng=None):
        return dropout_forward(x, p, rng, True)

    @staticmethod
    def backward(ctx, grad):
        return dropout_backward(grad, ctx.cache), None


def dropout(x, p, rng=None, training=True) -> Tensor:
    """Zero each element with probability p and scale the rest by 1/(1 − p) (training only)."""
    p = _check_p(p)
    x = x if isinstance(x, Tensor) else Tensor(x)
    if not training or p == 0.0:
        return x  # identity: no mask drawn, no graph node
    return DropoutFunction.apply(x, p, rng=rng)
