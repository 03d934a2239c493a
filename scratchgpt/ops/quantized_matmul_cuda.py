"""Weight-only int8 / int4 matrix products on the GPU, straight from the packed weights of
quantized_matmul.py (no dequantized copy of W ever exists).

    out[m, n] = Σ_k x[m, k] · d[n, k // G] · q[n, k]  (+ b[n])

Layouts as on the CPU: int8 q (N, Kp); int4 packed (N, Kp/2) uint8, in blocks of 32 values
whose byte i holds q[32b + i] + 8 (low nibble) and q[32b + 16 + i] + 8 (high nibble); scales
(N, Kp/G) float32. Threads as in decode_matmul_cuda.py (the float32 twin): a block row of
``lanes`` threads per output (m, n) — on a GPU a warp: lane t reads the row's elements t, t + 32,
... (neighbouring lanes read neighbouring bytes of the packed row: coalesced), dequantizes each
with its group's scale — and ``sum_lanes`` adds the partial sums in a fixed order. Decode (M = a
few rows) is bound by the bytes of W read, which is where 1 (int8) or 0.5 (int4) bytes per
weight instead of 4 pays. Elements k >= K (the zero padding of the last group) are never read:
the loop stops at K.
"""
from __future__ import annotations

import numpy as np

from ..cuda_arrays import cuda, require_device
from .decode_matmul_cuda import MAX_THREADS, launch_rows, sum_lanes
from .quantized_matmul import BLOCK, HALF, INT4_OFFSET


@cuda.jit
def _int8_rows_cuda(x, q, scales, bias, has_bias, out):     # x (M, K); q (N, Kp) int8; out (M, N)
    buf = cuda.shared.array(MAX_THREADS, dtype=np.float32)
    tx = cuda.threadIdx.x
    n = cuda.blockIdx.x * cuda.blockDim.y + cuda.threadIdx.y
    m = cuda.blockIdx.y
    N = q.shape[0]
    K = x.shape[1]
    G = q.shape[1] // scales.shape[1]
    acc = np.float32(0.0)
    if n < N:
        for k in range(tx, K, cuda.blockDim.x):
            acc += x[m, k] * (scales[n, k // G] * np.float32(q[n, k]))
    total = sum_lanes(buf, acc)
    if tx == 0 and n < N:
        if has_bias:
            total += bias[n]
        out[m, n] = total


@cuda.jit
def _int4_rows_cuda(x, packed, scales, bias, has_bias, out):  # packed (N, Kp/2) uint8
    buf = cuda.shared.array(MAX_THREADS, dtype=np.float32)
    tx = cuda.threadIdx.x
    n = cuda.blockIdx.x * cuda.blockDim.y + cuda.threadIdx.y
    m = cuda.blockIdx.y
    N = packed.shape[0]
    K = x.shape[1]
    G = 2 * packed.shape[1] // scales.shape[1]
    acc = np.float32(0.0)
    if n < N:
        for k in range(tx, K, cuda.blockDim.x):
            b = k // BLOCK
            i = k % BLOCK
            if i < HALF:
                nib = packed[n, HALF * b + i] & 15
            else:
                nib = packed[n, HALF * b + i - HALF] >> 4
            acc += x[m, k] * (scales[n, k // G] * np.float32(np.int32(nib) - INT4_OFFSET))
    total = sum_lanes(buf, acc)
    if tx == 0 and n < N:
        if has_bias:
            total += bias[n]
        out[m, n] = total


def _run(kernel, x, w, scales, bias, out, geometry):
    require_device(x, w, scales, bias, out, where="int8/int4 linear")
    if out is None:
        out = cuda.device_array((x.shape[0], w.shape[0]), dtype=np.float32)
    return launch_rows(kernel, x, w, (scales,), bias, out, geometry)


def int8_linear_cuda(x, q, scales, bias=None, out=None, geometry=None):
    """x (M, K) float32 device array @ int8 W~ (+ b) -> (M, N) float32 on the GPU (into ``out``)."""
    return _run(_int8_rows_cuda, x, q, scales, bias, out, geometry)


def int4_linear_cuda(x, packed, scales, bias=None, out=None, geometry=None):
    """x (M, K) float32 device array @ int4 W~ (+ b) -> (M, N) float32 on the GPU (into ``out``)."""
    return _run(_int4_rows_cuda, x, packed, scales, bias, out, geometry)
