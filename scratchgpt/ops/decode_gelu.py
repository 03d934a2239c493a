"""GELU (tanh approximation) in place, for generation (no autograd, no cache for a backward).

Math: gelu(x) = ½ x (1 + tanh(u)),  u = k (x + a x³),  k = sqrt(2/π), a = 0.044715.
Since ½ (1 + tanh(u)) = 1 / (1 + exp(-2u)), we compute  y = x / (1 + exp(-2u)):  one exp, no
cancellation (for u << 0 exp overflows to inf and y -> -0, the right limit), the same function
as ops/gelu.py to float32 rounding. One kernel over the row block (a decode step's (R, 4C)
activations are small; one call is what matters, see ops/_numba.py).
"""
from __future__ import annotations

import math

import numpy as np
from numba import prange

from ._numba import STRICT, njit_pair

_K = math.sqrt(2.0 / math.pi)
_A = 0.044715


def gelu_ref(x):
    x = np.asarray(x, dtype=np.float64)
    return 0.5 * x * (1.0 + np.tanh(_K * (x + _A * x ** 3)))


@njit_pair(fastmath=STRICT)
def _gelu_inplace_kernel(x):  # x (R, N) float32, overwritten
    R, N = x.shape
    m2k = np.float32(-2.0 * _K)
    m2ka = np.float32(-2.0 * _K * _A)
    one = np.float32(1.0)
    for r in prange(R):
        for i in range(N):
            v = x[r, i]
            x[r, i] = v / (one + math.exp(v * (m2k + m2ka * v * v)))


def gelu_inplace(x):
    """x (R, N) float32 C-contiguous <- gelu(x)."""
    _gelu_inplace_kernel.pick(x.size)(x)
    return x
