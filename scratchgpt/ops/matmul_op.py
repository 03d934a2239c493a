"""Matrix products: matmul (NumPy semantics, batch dims broadcast) and linear (x W + b).

Math, for one matrix pair A (M, K), B (K, N), Y = A B (g = dL/dY, shape (M, N)):
    Y_ij = Σ_k A_ik B_kj        dA = g Bᵀ  (M, K)        dB = Aᵀ g  (K, N)
Batch dims broadcast as in ``np.matmul``; the gradient of a broadcast operand is summed over
the broadcast batch dims. A 1-D A is treated as (1, K), a 1-D B as (K, 1), the added axis
removed again from Y (NumPy's rule).

linear (GPT-2 "Conv1D" layout, so Hugging Face GPT-2 weights load without transposes):
    x (..., Cin), W (Cin, Cout), b (Cout,):  y = x W + b  (..., Cout)
    flatten x to X (N, Cin) with N = prod(...):  dX = g Wᵀ,  dW = Xᵀ g,  db = Σ_rows g

Fast path: BLAS sgemm/dgemm through ``np.matmul``. For the sizes a GPT step uses (e.g.
(2048, 384) @ (384, 1536)) OpenBLAS reaches ~160 GFLOP/s on 2 cores (packing, register
blocking, AVX2/AVX-512 micro-kernels); the tiled Numba kernel ``matmul_numba`` below is the
readable version of the same idea and is far slower — measured here on (2048, 384) @ (384, 1536)
float32: np.matmul 13.9 ms (174 GFLOP/s), matmul_numba 384 ms (6.3 GFLOP/s) — so the ops
dispatch to BLAS and the Numba kernel is kept for learning and tested against the ref.
linear works on the 2-D (N, Cin) view so each of its three products is exactly one gemm
call; transposed operands are passed as transposed views, which NumPy hands to BLAS as a
trans flag (no copy).
"""
from __future__ import annotations

import numpy as np
from numba import prange

from ..autograd import Function, Tensor
from ..autograd.tensor import unbroadcast
from ._numba import STRICT, njit_pair


def _swap(a):
    return np.swapaxes(a, -1, -2)


def _as_matrices(a, b):
    """Promote 1-D operands to matrices (NumPy's rule); remember which axes to drop."""
    a2 = a[None, :] if a.ndim == 1 else a
    b2 = b[:, None] if b.ndim == 1 else b
    return a2, b2


def _grad_matrices(g, a, b):
    """Re-insert the axes NumPy removed from the output of a 1-D matmul."""
    if b.ndim == 1:
        g = g[..., None]  # (..., M) -> (..., M, 1); a 0-d g (vector . vector) becomes (1,)
    if a.ndim == 1:
        g = np.expand_dims(g, -2)  # (..., N) -> (..., 1, N)
    return g


# ----------------------------------------------------------------------------- reference
def matmul_forward_ref(a, b):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return np.matmul(a, b), (a, b)


def matmul_backward_ref(dout, cache):
    a, b = cache
    g = _grad_matrices(np.asarray(dout, dtype=np.float64), a, b)
    a2, b2 = _as_matrices(a, b)
    da = unbroadcast(np.matmul(g, _swap(b2)), a2.shape).reshape(a.shape)
    db = unbroadcast(np.matmul(_swap(a2), g), b2.shape).reshape(b.shape)
    return da, db


def linear_forward_ref(x, w, b=None):
    x = np.asarray(x, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    y = np.einsum("...i,ij->...j", x, w)
    if b is not None:
        y = y + np.asarray(b, dtype=np.float64)
    return y, (x, w, b is not None)


def linear_backward_ref(dout, cache):
    x, w, has_b = cache
    g = np.asarray(dout, dtype=np.float64)
    dx = np.einsum("...j,ij->...i", g, w)
    g2 = g.reshape(-1, g.shape[-1])  # (N, Cout)
    dw = x.reshape(-1, x.shape[-1]).T @ g2  # (Cin, Cout) = Σ over all leading positions
    db = g2.sum(axis=0) if has_b else None
    return dx, dw, db


# ----------------------------------------------------------------------------- Numba kernel
# Tiled matmul for the learner: each (TILE_M x TILE_N) block of C is owned by one prange
# iteration (no write races); the K loop is cut in TILE_K slabs so the A/B pieces stay in L1/L2;
# the innermost loop runs along a row of B and C, which is contiguous, so LLVM vectorises it.
_TM, _TN, _TK = 64, 64, 64


@njit_pair(fastmath=STRICT)
def _matmul_tiled(a, b, out):  # a (M, K), b (K, N), out (M, N) zeroed
    M, K = a.shape
    N = b.shape[1]
    n_tm = (M + _TM - 1) // _TM
    n_tn = (N + _TN - 1) // _TN
    for tile in prange(n_tm * n_tn):
        i0 = (tile // n_tn) * _TM
        j0 = (tile % n_tn) * _TN
        i1 = min(i0 + _TM, M)
        j1 = min(j0 + _TN, N)
        for k0 in range(0, K, _TK):
            k1 = min(k0 + _TK, K)
            for i in range(i0, i1):
                for k in range(k0, k1):
                    aik = a[i, k]
                    for j in range(j0, j1):
                        out[i, j] += aik * b[k, j]


def matmul_numba(a, b):
    """2-D a (M, K) @ b (K, N) with the tiled Numba kernel (same result as ``a @ b``)."""
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0]:
        raise ValueError(f"matmul_numba: expected a (M, K) and b (K, N), got {a.shape} and {b.shape}")
    dtype = np.result_type(a, b)
    out = np.zeros((a.shape[0], b.shape[1]), dtype=dtype)
    _matmul_tiled.pick(out.size * a.shape[1])(np.ascontiguousarray(a, dtype=dtype), np.ascontiguousarray(b, dtype=dtype), out)
    return out


# ----------------------------------------------------------------------------- fast CPU path
def matmul_forward(a, b):
    return np.matmul(a, b), (a, b)


def matmul_backward(dout, cache, need_a=True, need_b=True):
    a, b = cache
    g = _grad_matrices(dout, a, b)
    a2, b2 = _as_matrices(a, b)
    da = unbroadcast(np.matmul(g, _swap(b2)), a2.shape).reshape(a.shape) if need_a else None
    db = unbroadcast(np.matmul(_swap(a2), g), b2.shape).reshape(b.shape) if need_b else None
    return da, db


def linear_forward(x, w, b=None):
    cin = x.shape[-1]
    if w.ndim != 2 or w.shape[0] != cin:
        raise ValueError(f"linear: weight must have shape ({cin}, Cout) for input (..., {cin}), got {w.shape}")
    x2 = x.reshape(-1, cin)  # (N, Cin), a view when x is contiguous
    y = np.matmul(x2, w)  # (N, Cout): one sgemm
    if b is not None:
        y += b  # in place: y is our own fresh buffer
    return y.reshape(*x.shape[:-1], w.shape[1]), (x2, w, x.shape, b is not None)


def linear_backward(dout, cache, need_x=True, need_w=True, need_b=True):
    x2, w, xshape, has_b = cache
    g = dout.reshape(-1, w.shape[1])  # (N, Cout)
    dx = np.matmul(g, w.T).reshape(xshape) if need_x else None  # (N, Cin): sgemm with trans flag
    dw = None
    if need_w:
        if w.flags.f_contiguous and not w.flags.c_contiguous:
            # w is a transposed view (the tied lm_head: linear(x, transpose(wte))): produce dW
            # in the same layout, so its transpose — what reaches wte — is C-contiguous and
            # adds to the embedding's gradient without a strided pass
            dw = np.matmul(g.T, x2).T  # (Cin, Cout), F-ordered
        else:
            dw = np.matmul(x2.T, g)  # (Cin, Cout)
    db = g.sum(axis=0) if (has_b and need_b) else None  # (Cout,)
    return dx, dw, db


# ---- numba.cuda kernel: ops/matmul_cuda.py (its class is registered for device "cuda") ----


# ----------------------------------------------------------------------------- autograd
class MatMulFunction(Function):
    @staticmethod
    def forward(ctx, a, b):
        return matmul_forward(a, b)

    @staticmethod
    def backward(ctx, grad):
        na, nb = ctx.needs_input_grad
        return matmul_backward(grad, ctx.cache, na, nb)


class LinearFunction(Function):
    @staticmethod
    def forward(ctx, x, w, b=None):
        return linear_forward(x, w, b)

    @staticmethod
    def backward(ctx, grad):
        nx, nw, nb = ctx.needs_input_grad
        return linear_backward(grad, ctx.cache, nx, nw, nb)


def _t(x):
    return x if isinstance(x, Tensor) else Tensor(x)


def matmul(a, b) -> Tensor:
    """a @ b with NumPy semantics (batch dims broadcast)."""
    return MatMulFunction.apply(_t(a), _t(b))


def linear(x, w, b=None) -> Tensor:
    """x (..., Cin) @ w (Cin, Cout) + b (Cout,) -> (..., Cout)."""
    # a non-contiguous x (e.g. a transposed view) is copied once by the reshape in forward
    return LinearFunction.apply(_t(x), _t(w), None if b is None else _t(b))
