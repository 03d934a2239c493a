"""Dropout on the GPU with a counter-based random number generator.

    keep_i = u_i >= p,  y_i = x_i · keep_i / (1 − p),  dx_i = dy_i · keep_i / (1 − p)

A GPU thread cannot share NumPy's sequential generator. A counter-based generator computes the
i-th random number from (seed, i) alone: u_i = hash(seed + i·φ) with the SplitMix64 finaliser
(φ = 2^64/golden ratio; the finaliser's two multiply-xorshift rounds mix every input bit into
every output bit), top 24 bits / 2^24 -> a float in [0, 1). So every thread draws its own
number independently, a seed reproduces the mask exactly, and the backward recomputes the
mask instead of storing it. ``dropout_uniforms_ref`` is the same hash in NumPy uint64
arithmetic; the test asserts the kernel's mask equals it bit for bit.

The seed is drawn from the layer's NumPy generator on the host (one integer, not an array), so
a seeded model is reproducible; the mask differs from the CPU path's (another generator), as
two devices' dropout masks do in every framework.
"""
from __future__ import annotations

import numpy as np

from ..autograd.function import register
from ..cuda_arrays import cuda, flat, launch1
from .dropout_op import DropoutFunction, _generator

_PHI = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_S40 = np.uint64(40)
_INV24 = np.float32(1.0 / (1 << 24))


def dropout_uniforms_ref(seed: int, n: int) -> np.ndarray:
    """u_i for i < n, float32, the definition the kernel follows (NumPy uint64 wraps mod 2^64)."""
    with np.errstate(over="ignore"):
        z = np.uint64(seed) + np.arange(n, dtype=np.uint64) * _PHI
        z = (z ^ (z >> _S30)) * _M1
        z = (z ^ (z >> _S27)) * _M2
        z = z ^ (z >> _S31)
    return (z >> _S40).astype(np.float32) * _INV24


@cuda.jit(device=True)
def _uniform(seed, i):
    z = seed + np.uint64(i) * _PHI
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    z = z ^ (z >> _S31)
    return np.float32(z >> _S40) * _INV24


@cuda.jit
def _dropout_cuda(x, seed, p, scale, zero, out):      # flat (N,); also the backward (x = dy)
    i = cuda.grid(1)
    if i < x.size:
        keep = _uniform(seed, i) >= p
        out[i] = x[i] * (scale if keep else zero)


def dropout_apply_cuda(x, seed, p):
    out = cuda.device_array(tuple(x.shape), dtype=x.dtype)
    launch1(_dropout_cuda, x.size, flat(x), np.uint64(seed), np.float32(p),
           x.dtype.type(1.0 / (1.0 - p)), x.dtype.type(0), flat(out))
    return out


@register(DropoutFunction, "cuda")
class DropoutCuda:
    @staticmethod
    def forward(ctx, x, p, rng=None):
        seed = int(_generator(rng).integers(0, 2**63))
        return dropout_apply_cuda(x, seed, p), (seed, p)

    @staticmethod
    def backward(ctx, grad):
        seed, p = ctx.cache
        return dropout_apply_cuda(grad, seed, p), None
