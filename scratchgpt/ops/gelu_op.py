"""GELU, tanh approximation (the one GPT-2 was trained with).

Math, elementwise, with k = sqrt(2/π) and a = 0.044715:
    u  = k (x + a x³)          t = tanh(u)
    y  = ½ x (1 + t)
    dy/dx = ½ (1 + t) + ½ x (1 − t²) k (1 + 3 a x²)
The forward caches x and e = exp(−2|u|) (see the kernels for why not t), so the backward
is pure arithmetic.

Fast path: Numba kernels for all the arithmetic (parallel over contiguous chunks of the flat
array), NumPy's SIMD np.exp for the one transcendental (see the comment at the kernels).
A plain NumPy composition needs ~8 temporaries (and float32 ``x**3`` goes through a slow pow).
"""
from __future__ import annotations

import math

import numpy as np
from numba import prange

from ..autograd import Function, Tensor
from ._numba import STRICT, njit_pair
from ._vexp import exp_inplace

_K = math.sqrt(2.0 / math.pi)
_A = 0.044715


# ----------------------------------------------------------------------------- reference
def gelu_forward_ref(x):
    x = np.asarray(x, dtype=np.float64)
    return 0.5 * x * (1.0 + np.tanh(_K * (x + _A * x ** 3))), x


def gelu_backward_ref(dout, cache):
    x = cache
    t = np.tanh(_K * (x + _A * x ** 3))
    dydx = 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * _K * (1.0 + 3.0 * _A * x * x)
    return np.asarray(dout, dtype=np.float64) * dydx


# ----------------------------------------------------------------------------- Numba kernels
# Accuracy: in float32, 1 + tanh(u) for u << 0 (and 1 − t² for |u| large) cancel
# catastrophically — a 1-ulp error in t becomes a 100% error in the GELU tail and its slope.
# So we never form t. With e = exp(−2|u|) ∈ (0, 1] (no overflow, no cancellation):
#     u ≥ 0:  1 + t = 2 / (1 + e)      1 − t = 2e / (1 + e)
#     u < 0:  1 + t = 2e / (1 + e)     1 − t = 2 / (1 + e)
# and 1 − t² = (1 + t)(1 − t). sign(u) = sign(x) because u = x (k + k a x²) with k > 0.
#
# Speed: without Intel SVML, Numba calls scalar libm functions per element. Measured on one
# core, 2048 x 1536 float32 (min of 10): tanh in a Numba loop 103 ms (33 ns/element), exp in
# a Numba loop 11.4 ms, NumPy's SIMD np.tanh 1.1 ms and np.exp 1.5 ms. So the kernels never
# call tanh: the forward forms e = exp(−2|u|) with _vexp's SIMD exp and keeps e for the
# backward, which is then pure arithmetic. (The earlier 3-pass forward — a kernel, NumPy's
# np.exp, a kernel — lives in benchmarks/gelu_versions.py.)
# fastmath STRICT (see _numba.py): elementwise work, no reductions to vectorise.
@njit_pair(fastmath=STRICT)
def _gelu_backward_kernel(dout, x, e, dx):  # flat (N,)
    n = x.shape[0]
    k = x.dtype.type(_K)
    a3 = x.dtype.type(3.0 * _A)
    half = x.dtype.type(0.5)
    one = x.dtype.type(1.0)
    two = x.dtype.type(2.0)
    zero = x.dtype.type(0.0)
    for i in prange(n):
        v = x[i]
        ei = e[i]
        inv = two / (one + ei)
        pos = v >= zero
        p = inv if pos else ei * inv  # 1 + t
        q = ei * inv if pos else inv  # 1 - t
        d = half * p + half * v * (p * q) * k * (one + a3 * v * v)
        dx[i] = dout[i] * d


# One fused forward kernel (issue 2). The three-pass version (benchmarks/gelu_versions.py)
# ran the exp single-threaded and streamed the (N,) arrays through memory 3 times.
# This kernel works in chunks of _CHUNK elements that stay in L1/L2: -2|u|, then _vexp's SIMD
# float32 exp in place (1-2 ulp, same as np.exp; float64 falls back to exact np.exp), then
# y — all parallel over chunks.
# Measured (gelu forward, float32, process CPU, best of 20; 1 thread; load ~3.7 on 2 cores):
# see the commit message.
_CHUNK = 2048


@njit_pair(fastmath=STRICT)
def _gelu_fused_forward_kernel(x, e, out):  # flat (N,): e = exp(-2|u|), out = y
    n = x.shape[0]
    m2k = x.dtype.type(-2.0 * _K)
    m2ka = x.dtype.type(-2.0 * _K * _A)
    one = x.dtype.type(1.0)
    zero = x.dtype.type(0.0)
    n_chunks = (n + _CHUNK - 1) // _CHUNK
    for c in prange(n_chunks):
        ibuf = np.empty(_CHUNK, dtype=np.int32)       # exp scratch, one per chunk
        s0 = c * _CHUNK
        s1 = min(s0 + _CHUNK, n)
        xc = x[s0:s1]
        ec = e[s0:s1]
        oc = out[s0:s1]
        for i in range(s1 - s0):
            v = xc[i]
            ec[i] = abs(v) * (m2k + m2ka * v * v)
        exp_inplace(ec, ibuf)
        for i in range(s1 - s0):
            v = xc[i]
            ei = ec[i]
            num = one if v >= zero else ei
            oc[i] = v * num / (one + ei)


# ----------------------------------------------------------------------------- fast CPU path
def gelu_forward(x):
    xc = np.ascontiguousarray(x)
    xf = xc.reshape(-1)
    e = np.empty_like(xf)  # (N,) exp(-2|u|), kept for the backward
    out = np.empty_like(xc)
    _gelu_fused_forward_kernel.pick(xf.size)(xf, e, out.reshape(-1))
    return out, (xf, e, xc.shape)


def gelu_backward(dout, cache):
    xf, e, shape = cache
    g = np.ascontiguousarray(dout, dtype=xf.dtype).reshape(-1)
    dx = np.empty_like(xf)
    _gelu_backward_kernel.pick(g.size)(g, xf, e, dx)
    return dx.reshape(shape)


# ---- numba.cuda kernel: ops/gelu_cuda.py (its class is registered for device "cuda") ----


# ----------------------------------------------------------------------------- autograd
class GELUFunction(Function):
    @staticmethod
    def forward(ctx, x):
        return gelu_forward(x)

    @staticmethod
    def backward(ctx, grad):
        return (gelu_backward(grad, ctx.cache),)


def gelu(x) -> Tensor:
    """GELU (tanh approximation), elementwise."""
    return GELUFunction.apply(x if isinstance(x, Tensor) else Tensor(x))
