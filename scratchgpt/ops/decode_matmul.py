"""Small-M matrix products for decoding: out = x Wᵀ + b with few rows x (no autograd).

Math: x (M, K), Wt (N, K) — the weight stored output-major, one row per output feature —
b (N,):   out[m, n] = Σ_k x[m, k] Wt[n, k] + b[n]      (M, N)

Why a kernel of our own: a decode step multiplies M = 1..32 rows by every weight matrix, so
it is bound by reading the weights once from memory, not by arithmetic. Stored output-major,
each output feature's weights are one contiguous K-long row: the kernel streams the matrix in
memory order exactly once, and each row, while in L1, meets all M inputs (x stays in L1 too).
Threads split the N rows into contiguous ranges. Two kernels: one row at a time (decode, up to
ROW_KERNEL_MAX_M rows) and 4 x 4 blocks (more rows, a prefill). BLAS (np.matmul / sgemv) is
the alternative, measured side by side in ``benchmarks/generate.py --kernels``; infer/linear.py
uses it only for long prefills (see DenseLinear for why).
"""
from __future__ import annotations

import numpy as np
from numba import prange

from ._numba import SUMS, njit_inline, njit_pair


# ----------------------------------------------------------------------------- reference
def small_matmul_ref(x, wt, b=None):
    """float64 reference: x (M, K), wt (N, K), b (N,) or None -> (M, N)."""
    out = np.asarray(x, dtype=np.float64) @ np.asarray(wt, dtype=np.float64).T
    if b is not None:
        out = out + np.asarray(b, dtype=np.float64)
    return out


# ----------------------------------------------------------------------------- Numba kernel
# reassoc: the K-long dot products vectorise (16 partial sums in AVX-512 registers).
_FM = SUMS  # reassoc: vectorised sums (several partial sums); contract: FMA
_ROWS_PER_JOB = 16  # output features per parallel job: long enough to amortise the loop overhead


@njit_pair(fastmath=_FM)
def _small_matmul_kernel(x, wt, b, has_bias, out):  # x (M, K); wt (N, K); b (N,); out (M, N)
    # Register blocking: 4 weight rows at a time (4 independent accumulator chains; each x
    # element loaded once per 4 FMAs). The 4 rows (4K floats) stay in L1 while every input row
    # meets them. Each out[m, n] is the same k-ordered sum whatever M is and whichever thread
    # runs it: results do not depend on the batch (the engine's batched == single guarantee).
    M, K = x.shape
    N = wt.shape[0]
    zero = np.float32(0.0)
    n_jobs = (N + _ROWS_PER_JOB - 1) // _ROWS_PER_JOB
    for j in prange(n_jobs):
        n0 = j * _ROWS_PER_JOB
        n1 = min(n0 + _ROWS_PER_JOB, N)
        n = n0
        while n + 4 <= n1:
            for m in range(M):
                a0 = zero
                a1 = zero
                a2 = zero
                a3 = zero
                for k in range(K):
                    xv = x[m, k]
                    a0 += xv * wt[n, k]
                    a1 += xv * wt[n + 1, k]
                    a2 += xv * wt[n + 2, k]
                    a3 += xv * wt[n + 3, k]
                if has_bias:
                    a0 += b[n]
                    a1 += b[n + 1]
                    a2 += b[n + 2]
                    a3 += b[n + 3]
                out[m, n] = a0
                out[m, n + 1] = a1
                out[m, n + 2] = a2
                out[m, n + 3] = a3
            n += 4
        while n < n1:
            for m in range(M):
                a0 = zero
                for k in range(K):
                    a0 += x[m, k] * wt[n, k]
                if has_bias:
                    a0 += b[n]
                out[m, n] = a0
            n += 1


@njit_inline(fastmath=SUMS)
def block_product(x, w, rows, n0, bias, has_bias, out):
    # out[:, n0:n0+rows] = x (M, K) @ w[:rows, :K]ᵀ (+ bias[n0:n0+rows] if has_bias), in 4 x 4
    # register blocks: 16 accumulator chains, each loaded weight meets 4 inputs. Missing rows /
    # inputs at the edges repeat the last one (same values rewritten), so every element runs
    # through the same code whatever M is: a row's result never depends on the others.
    # Shared by the float32 block kernel below and quantized_matmul's dequantized-scratch path.
    M, K = x.shape
    zero = np.float32(0.0)
    for rb in range(0, rows, 4):
        r1 = min(rb + 1, rows - 1)
        r2 = min(rb + 2, rows - 1)
        r3 = min(rb + 3, rows - 1)
        for m0 in range(0, M, 4):
            m1 = min(m0 + 1, M - 1)
            m2 = min(m0 + 2, M - 1)
            m3 = min(m0 + 3, M - 1)
            a00 = zero
            a01 = zero
            a02 = zero
            a03 = zero
            a10 = zero
            a11 = zero
            a12 = zero
            a13 = zero
            a20 = zero
            a21 = zero
            a22 = zero
            a23 = zero
            a30 = zero
            a31 = zero
            a32 = zero
            a33 = zero
            for k in range(K):
                w0 = w[rb, k]
                w1 = w[r1, k]
                w2 = w[r2, k]
                w3 = w[r3, k]
                x0 = x[m0, k]
                x1 = x[m1, k]
                x2 = x[m2, k]
                x3 = x[m3, k]
                a00 += x0 * w0
                a01 += x0 * w1
                a02 += x0 * w2
                a03 += x0 * w3
                a10 += x1 * w0
                a11 += x1 * w1
                a12 += x1 * w2
                a13 += x1 * w3
                a20 += x2 * w0
                a21 += x2 * w1
                a22 += x2 * w2
                a23 += x2 * w3
                a30 += x3 * w0
                a31 += x3 * w1
                a32 += x3 * w2
                a33 += x3 * w3
            b0 = bias[n0 + rb] if has_bias else zero
            b1 = bias[n0 + r1] if has_bias else zero
            b2 = bias[n0 + r2] if has_bias else zero
            b3 = bias[n0 + r3] if has_bias else zero
            out[m0, n0 + rb] = a00 + b0
            out[m0, n0 + r1] = a01 + b1
            out[m0, n0 + r2] = a02 + b2
            out[m0, n0 + r3] = a03 + b3
            out[m1, n0 + rb] = a10 + b0
            out[m1, n0 + r1] = a11 + b1
            out[m1, n0 + r2] = a12 + b2
            out[m1, n0 + r3] = a13 + b3
            out[m2, n0 + rb] = a20 + b0
            out[m2, n0 + r1] = a21 + b1
            out[m2, n0 + r2] = a22 + b2
            out[m2, n0 + r3] = a23 + b3
            out[m3, n0 + rb] = a30 + b0
            out[m3, n0 + r1] = a31 + b1
            out[m3, n0 + r2] = a32 + b2
            out[m3, n0 + r3] = a33 + b3


@njit_pair(fastmath=_FM)
def _block_matmul_kernel(x, wt, b, has_bias, out):  # x (M, K); wt (N, K); b (N,); out (M, N)
    # For more rows (a prefill): 4 weight rows x 4 input rows per block (block_product below),
    # so each loaded weight meets 4 inputs (vs 1 above): ~1.5x faster from 4 rows on.
    N = wt.shape[0]
    for j in prange((N + _ROWS_PER_JOB - 1) // _ROWS_PER_JOB):
        n0 = j * _ROWS_PER_JOB
        n1 = min(n0 + _ROWS_PER_JOB, N)
        block_product(x, wt[n0:n1], n1 - n0, n0, b, has_bias, out)


# Up to this many rows the one-row kernel (decode: each step's rows, at most this many per call
# from the engine); above it the 4 x 4 block kernel. Each kernel computes a row the same way
# whatever the other rows are, so a sequence's logits do not depend on its batch.
ROW_KERNEL_MAX_M = 8


def small_matmul(x, wt, b, out):
    """out (M, N) = x (M, K) @ wt (N, K)ᵀ + b; b may be None. All float32, C-contiguous."""
    has_bias = b is not None
    kernel = _small_matmul_kernel if x.shape[0] <= ROW_KERNEL_MAX_M else _block_matmul_kernel
    kernel.pick(wt.size)(x, wt, b if has_bias else _NO_BIAS, has_bias, out)
    return out


_NO_BIAS = np.zeros(1, dtype=np.float32)
