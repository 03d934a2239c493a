"""Superseded GELU forward kept for comparison: the 3-pass version (a Numba kernel, NumPy's
np.exp, a Numba kernel) that scratchgpt/ops/gelu_op.py's one fused kernel replaced (issue 2).

The fused kernel runs _vexp's SIMD exp inside the parallel chunks instead of NumPy's
single-threaded np.exp, and streams the (N,) arrays through memory once instead of three times.
tests/test_ops_gelu.py checks that both forwards agree to a few float32 ulps.

    python benchmarks/gelu_versions.py        # forward time, fused vs 3-pass, (2048, 1536) float32
"""
from __future__ import annotations

import math
import time

import numpy as np
from numba import prange

from scratchgpt.ops._numba import STRICT, njit_pair
from scratchgpt.ops.gelu_op import gelu_forward

_K = math.sqrt(2.0 / math.pi)
_A = 0.044715


@njit_pair(fastmath=STRICT)
def _gelu_inner_kernel(x, a):  # x, a flat (N,): a = -2 |u|, u = k (x + a x³)
    n = x.shape[0]
    m2k = x.dtype.type(-2.0 * _K)
    m2ka = x.dtype.type(-2.0 * _K * _A)
    for i in prange(n):
        v = x[i]
        a[i] = abs(v) * (m2k + m2ka * v * v)


@njit_pair(fastmath=STRICT)
def _gelu_out_kernel(x, e, out):  # flat (N,): y = ½ x (1 + t)
    n = x.shape[0]
    one = x.dtype.type(1.0)
    zero = x.dtype.type(0.0)  # a typed 0: comparing with int 0 would promote v to float64
    for i in prange(n):
        v = x[i]
        ei = e[i]
        num = one if v >= zero else ei  # (1 + t) = 2 num / (1 + e)
        out[i] = v * num / (one + ei)


def gelu_forward_3pass(x):
    """The previous forward: two Numba kernels around NumPy's np.exp. Returns (out, cache) as gelu_forward."""
    xc = np.ascontiguousarray(x)
    xf = xc.reshape(-1)
    e = np.empty_like(xf)
    _gelu_inner_kernel.pick(xf.size)(xf, e)
    np.exp(e, out=e)
    out = np.empty_like(xc)
    _gelu_out_kernel.pick(xf.size)(xf, e, out.reshape(-1))
    return out, (xf, e, xc.shape)


def main():
    x = np.random.default_rng(0).standard_normal((2048, 1536)).astype(np.float32)
    for name, fn in (("fused", gelu_forward), ("3-pass", gelu_forward_3pass)):
        fn(x)
        ts = []
        for _ in range(20):
            t0 = time.perf_counter()
            fn(x)
            ts.append(time.perf_counter() - t0)
        print(f"{name:7} min {min(ts) * 1e3:7.2f} ms  median {float(np.median(ts)) * 1e3:7.2f} ms")


if __name__ == "__main__":
    # run as the module "gelu_versions", the name the tests import it under: Numba's on-disk
    # cache records the module of each kernel, and a "__main__" entry would not load there
    import os
    import sys
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import gelu_versions
    gelu_versions.main()
