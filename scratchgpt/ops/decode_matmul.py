"""Small-M matrix products for decoding: out = x Wᵀ + b with few rows x (no autograd).

Math: x (M, K), Wt (N, K) — the weight stored output-major, one row per output feature —
b (N,):   out[m, n] = Σ_k x[m, k] Wt[n, k] + b[n]      (M, N)

Why a kernel of our own: a decode step multiplies M = 1..32 rows by every weight matrix, so
it is bound by reading the weights once from memory, not by arithmetic. Stored output-major,
each output feature's weights are one contiguous K-long row: the kernel streams the matrix in
memory order exactly once, and each row, while in L1, meets all M inputs (x stays in L1 too).
Threads split the N rows into contiguous ranges. BLAS (np.matmul / sgemv) is the alternative
(measured side by side in benchmarks/generate.py and chosen per shape in infer/linear.py).
"""
from __future__ import annotations

import numpy as np
from numba import prange

from ._numba import SUMS, njit_pair


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


def small_matmul(x, wt, b, out):
    """out (M, N) = x (M, K) @ wt (N, K)ᵀ + b; b may be None. All float32, C-contiguous."""
    has_bias = b is not None
    _small_matmul_kernel.pick(wt.size)(x, wt, b if has_bias else _NO_BIAS, has_bias, out)
    return out


_NO_BIAS = np.zeros(1, dtype=np.float32)
