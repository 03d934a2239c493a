"""Small-M matrix products for decoding: out = x Wᵀ + b with few rows x (no autograd).

Math: x (M, K), Wt (N, K) — the weight stored output-major, one row per output feature —
b (N,):   out[m, n] = Σ_k x[m, k] Wt[n, k] + b[n]      (M, N)

Why a kernel of our own: a decode step multiplies M = 1..32 rows by every weight matrix, so
it is bound by reading the weights once from memory, not by arithmetic. Stored output-major,
each output feature's weights are one contiguous K-long row: the kernel streams the matrix in
memory order exactly once, and each row, while in L1, meets all M inputs (x stays in L1 too).
Threads split the N rows into fixed jobs of 16. One kernel for every M below BLAS's range:
4 weight rows x 4 inputs per step (16 vector accumulators), whose per-element arithmetic is
fixed (ops/int_dot.py), so a row's bits never depend on the batch. Measured against the two
kernels it replaced (a reassociated 4-row kernel for M <= 8 in calls of 8 rows, a 4 x 4 block
kernel above), GPT-2 124M's 48 block matrices per token, one thread, machine under load
(load average ~25): M = 1 12.6 -> 12.8 ms, M = 8 33.6 -> 20.5 ms, M = 32 293 -> 62 ms.
BLAS (np.matmul / sgemv) is the alternative, measured side by side in
``benchmarks/generate.py --kernels``; infer/linear.py uses it only for long prefills (see
DenseLinear for why). ``block_product`` (4 x 4 blocks with reassociated sums) remains for the
quantized kernels' dequantized-scratch path.
"""
from __future__ import annotations

import numpy as np
from numba import prange

from ._numba import STRICT, SUMS, njit_inline, njit_pair
from .int_dot import dot4x1_f32, dot4x4_f32


# ----------------------------------------------------------------------------- reference
def small_matmul_ref(x, wt, b=None):
    """float64 reference: x (M, K), wt (N, K), b (N,) or None -> (M, N)."""
    out = np.asarray(x, dtype=np.float64) @ np.asarray(wt, dtype=np.float64).T
    if b is not None:
        out = out + np.asarray(b, dtype=np.float64)
    return out


# ----------------------------------------------------------------------------- Numba kernel
_ROWS_PER_JOB = 16  # output features per parallel job: long enough to amortise the loop overhead


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


@njit_pair(fastmath=STRICT)
def _dot_rows_kernel(x, wt, b, has_bias, out):  # x (M, K) rows contiguous; wt (N, K); b (N,); out (M, N)
    # Every out[m, n] is one 16-lane FMA chain over k plus a fixed lane tree (ops/int_dot.py:
    # dot4x4_f32 / dot4x1_f32 give each element the same bits), so a row's result is the same
    # whatever M is and whichever rows share its block: batched decode needs no chunking for
    # bit-exactness. 4 output features x 4 inputs per call (16 register accumulators, each
    # loaded weight meets 4 inputs); leftover inputs 4 x 1. Past the job's end the last output
    # feature repeats (the same value rewritten).
    M, K = x.shape
    N = wt.shape[0]
    xa, xs = x.ctypes.data, x.strides[0]
    wa, ws = wt.ctypes.data, wt.strides[0]
    zero = np.float32(0.0)
    for j in prange((N + _ROWS_PER_JOB - 1) // _ROWS_PER_JOB):
        n0 = j * _ROWS_PER_JOB
        n1 = min(n0 + _ROWS_PER_JOB, N)
        for n in range(n0, n1, 4):
            ns = (n, min(n + 1, n1 - 1), min(n + 2, n1 - 1), min(n + 3, n1 - 1))
            bs = (b[ns[0]] if has_bias else zero, b[ns[1]] if has_bias else zero,
                  b[ns[2]] if has_bias else zero, b[ns[3]] if has_bias else zero)
            m = 0
            while m + 4 <= M:
                t = dot4x4_f32(xa + m * xs, xa + (m + 1) * xs, xa + (m + 2) * xs, xa + (m + 3) * xs,
                               wa + ns[0] * ws, wa + ns[1] * ws, wa + ns[2] * ws, wa + ns[3] * ws, K)
                for i in range(4):
                    for r in range(4):
                        out[m + i, ns[r]] = t[4 * i + r] + bs[r]
                m += 4
            while m < M:
                t1 = dot4x1_f32(xa + m * xs, wa + ns[0] * ws, wa + ns[1] * ws, wa + ns[2] * ws, wa + ns[3] * ws, K)
                for r in range(4):
                    out[m, ns[r]] = t1[r] + bs[r]
                m += 1


# Until _dot_rows_kernel, a reassociated one-row kernel served up to this many rows and a 4 x 4
# block kernel more, so the engine split batches into calls of at most this many rows to keep a
# row's bits independent of the batch. Kept for callers that still chunk (the GPU runner).
ROW_KERNEL_MAX_M = 8


def small_matmul(x, wt, b, out):
    """out (M, N) = x (M, K) @ wt (N, K)ᵀ + b; b may be None. All float32; rows of x and wt
    contiguous. A row's result does not depend on M (``_dot_rows_kernel``)."""
    has_bias = b is not None
    # the kernel reads raw float32 rows by address (ops/int_dot.py): anything else would be garbage
    if x.dtype != np.float32 or wt.dtype != np.float32 or x.strides[1] != 4 or wt.strides[1] != 4:
        raise ValueError("small_matmul: x and wt must be float32 with contiguous rows")
    _dot_rows_kernel.pick(wt.size * max(1, x.shape[0] // 4))(x, wt, b if has_bias else _NO_BIAS, has_bias, out)
    return out


_NO_BIAS = np.zeros(1, dtype=np.float32)
