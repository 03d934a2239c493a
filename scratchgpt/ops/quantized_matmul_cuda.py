"""Weight-only int8 / int4 matrix products on the GPU, straight from the packed weights of
quantized_matmul.py (no dequantized copy of W ever exists).

    out[m, n] = Σ_k x[m, k] · d[n, k // G] · q[n, k]  (+ b[n])

Layouts as on the CPU: int8 q (N, Kp); int4 packed (N, Kp/2) uint8, in blocks of 32 values
whose byte i holds q[32b + i] + 8 (low nibble) and q[32b + 16 + i] + 8 (high nibble); scales
(N, Kp/G) float32. Threads: one block of 32 threads (a warp) per output (m, n); thread t reads
the row's elements t, t + 32, ... — neighbouring threads read neighbouring bytes of the packed
row (coalesced) — dequantizes each with its group's scale, and ``block_sum`` adds the 32 partial
sums. Decode (M = a few rows) is bound by the bytes of W read, which is where 1 (int8) or 0.5
(int4) bytes per weight instead of 4 pays. Elements k >= K (the zero padding of the last group)
are never read: the loop stops at K.
"""
from __future__ import annotations

import numpy as np

from ..cuda_arrays import ROW_THREADS, block_sum, cuda, launch, require_device
from .quantized_matmul import BLOCK, HALF, INT4_OFFSET


@cuda.jit
def _int8_rows_cuda(x, q, scales, bias, has_bias, out):     # x (M, K); q (N, Kp) int8; out (M, N)
    buf = cuda.shared.array(ROW_THREADS, dtype=np.float32)
    n = cuda.blockIdx.x
    m = cuda.blockIdx.y
    K = x.shape[1]
    G = q.shape[1] // scales.shape[1]
    acc = np.float32(0.0)
    for k in range(cuda.threadIdx.x, K, ROW_THREADS):
        acc += x[m, k] * (scales[n, k // G] * np.float32(q[n, k]))
    total = block_sum(buf, acc)
    if cuda.threadIdx.x == 0:
        if has_bias:
            total += bias[n]
        out[m, n] = total


@cuda.jit
def _int4_rows_cuda(x, packed, scales, bias, has_bias, out):  # packed (N, Kp/2) uint8
    buf = cuda.shared.array(ROW_THREADS, dtype=np.float32)
    n = cuda.blockIdx.x
    m = cuda.blockIdx.y
    K = x.shape[1]
    G = 2 * packed.shape[1] // scales.shape[1]
    acc = np.float32(0.0)
    for k in range(cuda.threadIdx.x, K, ROW_THREADS):
        b = k // BLOCK
        i = k % BLOCK
        if i < HALF:
            nib = packed[n, HALF * b + i] & 15
        else:
            nib = packed[n, HALF * b + i - HALF] >> 4
        acc += x[m, k] * (scales[n, k // G] * np.float32(np.int32(nib) - INT4_OFFSET))
    total = block_sum(buf, acc)
    if cuda.threadIdx.x == 0:
        if has_bias:
            total += bias[n]
        out[m, n] = total


def _run(kernel, x, w, scales, bias):
    require_device(x, w, scales, bias, where=kernel.__name__ if hasattr(kernel, "__name__") else "quantized matmul")
    M = x.shape[0]
    N = w.shape[0]
    out = cuda.device_array((M, N), dtype=np.float32)
    launch(kernel, (N, M), ROW_THREADS, x, w, scales, scales if bias is None else bias, bias is not None, out)
    return out


def int8_linear_cuda(x, q, scales, bias=None):
    """x (M, K) float32 device array @ int8 W~ (+ b) -> (M, N) float32 on the GPU."""
    return _run(_int8_rows_cuda, x, q, scales, bias)


def int4_linear_cuda(x, packed, scales, bias=None):
    """x (M, K) float32 device array @ int4 W~ (+ b) -> (M, N) float32 on the GPU."""
    return _run(_int4_rows_cuda, x, packed, scales, bias)
