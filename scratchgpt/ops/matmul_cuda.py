"""Matrix product and linear layer on the GPU: shared-memory tiling plus a little register tiling.

    C = op(A) · op(B) (+ bias)         op(X) = X or Xᵀ (the transposed variants the backward needs)
    linear:  y = x W + b;   dx = dy Wᵀ,   dW = xᵀ dy,   db = Σ_rows dy

Threads and blocks: C is cut into TILE × TILE (16 × 16) tiles, one block each. The block walks
K in steps of TILE: its threads copy a TILE × TILE piece of op(A) and of op(B) into shared memory
(each element read from global memory once per block instead of once per output), wait at a
barrier, and every thread adds TILE products per output it owns from the fast shared copies.
A block has 16 × 8 = 128 threads and each thread owns TWO outputs of the tile (rows ty and
ty + 8, same column): the B value it reads from shared memory serves both (register tiling),
and the block stays at 128 threads. Loads outside the matrix write 0 into the tile (bounds
guards), so any M, N, K works, not only multiples of 16.

    C tile (16×16)        thread (tx, ty) owns C[ty, tx] and C[ty+8, tx]
    k0 = 0, 16, 32 ...:   sA <- op(A)[rows, k0:k0+16]   sB <- op(B)[k0:k0+16, cols]   barrier
                          acc += Σ_kk sA[r, kk] sB[kk, tx]                          barrier
"""
from __future__ import annotations

import functools

from ..autograd.function import register
from ..cuda_arrays import cuda, launch, sum_rows
from ..errors import DeviceError
from .matmul_op import LinearFunction, MatMulFunction

TILE = 16
HALF = TILE // 2      # threads per block in y: each thread computes two rows of the tile


@functools.cache
def _kernel(dt):
    @cuda.jit
    def _matmul_tiled(A, B, bias, has_bias, ta, tb, C):
        # A (M, K) or (K, M) if ta; B (K, N) or (N, K) if tb; C (M, N); bias (N,)
        sA = cuda.shared.array((TILE, TILE), dtype=dt)
        sB = cuda.shared.array((TILE, TILE), dtype=dt)
        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        row0 = cuda.blockIdx.y * TILE
        col0 = cuda.blockIdx.x * TILE
        M = C.shape[0]
        N = C.shape[1]
        K = A.shape[0] if ta else A.shape[1]
        acc0 = dt(0.0)
        acc1 = dt(0.0)
        for k0 in range(0, K, TILE):
            for half in range(2):
                r = ty + HALF * half
                i = row0 + r
                k = k0 + tx
                a = dt(0.0)
                if i < M and k < K:
                    a = A[k, i] if ta else A[i, k]
                sA[r, tx] = a
                kb = k0 + r
                j = col0 + tx
                b = dt(0.0)
                if kb < K and j < N:
                    b = B[j, kb] if tb else B[kb, j]
                sB[r, tx] = b
            cuda.syncthreads()
            for kk in range(TILE):
                bv = sB[kk, tx]
                acc0 += sA[ty, kk] * bv
                acc1 += sA[ty + HALF, kk] * bv
            cuda.syncthreads()
        j = col0 + tx
        if j < N:
            i0 = row0 + ty
            i1 = i0 + HALF
            if has_bias:
                acc0 += bias[j]
                acc1 += bias[j]
            if i0 < M:
                C[i0, j] = acc0
            if i1 < M:
                C[i1, j] = acc1
    return _matmul_tiled


def matmul2d_cuda(a, b, ta=False, tb=False, bias=None, out=None):
    """op(a) @ op(b) (+ bias) for 2-D device arrays (ta/tb: read a/b transposed, no copy); into
    ``out`` (M, N) when given."""
    M = a.shape[1] if ta else a.shape[0]
    K = a.shape[0] if ta else a.shape[1]
    Kb = b.shape[1] if tb else b.shape[0]
    N = b.shape[0] if tb else b.shape[1]
    if K != Kb:
        raise ValueError(f"matmul: inner dimensions differ ({K} vs {Kb})")
    if out is None:
        out = cuda.device_array((M, N), dtype=a.dtype)
    grid = ((N + TILE - 1) // TILE, (M + TILE - 1) // TILE)
    # no bias: the kernel still needs a 1-D array of the bias's type there (the GPU compiles
    # ``acc += bias[j]`` even where has_bias is False): out's flat view, never read
    launch(_kernel(a.dtype.type), grid, (TILE, HALF), a, b, out.reshape(out.size) if bias is None else bias,
           bias is not None, ta, tb, out)
    return out


@register(MatMulFunction, "cuda")
class MatMulCuda:
    @staticmethod
    def forward(ctx, a, b):
        # (..., M, K) @ (K, N): the leading dims of a fold into M (a view), as in linear
        if a.ndim < 2 or b.ndim != 2:
            raise DeviceError(f"matmul on the GPU takes (..., M, K) @ (K, N), got {tuple(a.shape)} @ {tuple(b.shape)}")
        ashape = tuple(a.shape)
        a2 = a.reshape(a.size // ashape[-1], ashape[-1])
        return matmul2d_cuda(a2, b).reshape(*ashape[:-1], b.shape[1]), (a2, b, ashape)

    @staticmethod
    def backward(ctx, grad):
        a2, b, ashape = ctx.cache
        na, nb = ctx.needs_input_grad
        g = grad.reshape(a2.shape[0], b.shape[1])
        da = matmul2d_cuda(g, b, tb=True).reshape(*ashape) if na else None   # dC Bᵀ
        db = matmul2d_cuda(a2, g, ta=True) if nb else None                   # Aᵀ dC
        return da, db


def linear_forward_cuda(x, w, b=None):
    xshape = tuple(x.shape)
    cin = xshape[len(xshape) - 1]
    if w.ndim != 2 or w.shape[0] != cin:
        raise ValueError(f"linear: weight must have shape ({cin}, Cout) for input (..., {cin}), got {tuple(w.shape)}")
    x2 = x.reshape(x.size // cin, cin)                                # (N, Cin)
    y = matmul2d_cuda(x2, w, bias=b)                                  # (N, Cout)
    return y.reshape(*xshape[:-1], w.shape[1]), (x2, w, xshape, b is not None)


def linear_backward_cuda(dout, cache, need_x=True, need_w=True, need_b=True):
    x2, w, xshape, has_b = cache
    g = dout.reshape(x2.shape[0], w.shape[1])                         # (N, Cout)
    dx = matmul2d_cuda(g, w, tb=True).reshape(*xshape) if need_x else None   # (N, Cin)
    dw = matmul2d_cuda(x2, g, ta=True) if need_w else None                   # (Cin, Cout)
    db = sum_rows(g) if (need_b and has_b) else None
    return dx, dw, db


@register(LinearFunction, "cuda")
class LinearCuda:
    @staticmethod
    def forward(ctx, x, w, b=None):
        return linear_forward_cuda(x, w, b)

    @staticmethod
    def backward(ctx, grad):
        nx, nw, nb = ctx.needs_input_grad
        return linear_backward_cuda(grad, ctx.cache, nx, nw, nb)
