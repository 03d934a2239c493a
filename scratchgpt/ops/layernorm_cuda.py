"""LayerNorm on the GPU (the chapter's worked example: formula -> ref -> CPU -> CUDA).

Per row x (C,):  μ = mean(x),  σ² = mean((x − μ)²),  r = 1/sqrt(σ² + eps),  n = (x − μ) r,
                 y = n · w + b
Backward, with g = dL/dy and d = g · w:
                 dx = r (d − mean(d) − n · mean(d · n)),   dw = Σ_rows g · n,   db = Σ_rows g

Threads and blocks: one block of ROW_THREADS (32) threads per row. Thread t handles the row's
elements t, t + 32, t + 64, ... (neighbouring threads read neighbouring addresses: coalesced),
keeps a private partial sum, and ``block_sum`` adds the 32 partials in shared memory in
log2(32) = 5 halving steps. Two passes (mean, then variance about the mean) as in the ref: the
one-pass E[x²] − E[x]² loses digits when |μ| ≫ σ.

    row n  ->  block n:   thread 0: x[0], x[32], ...   thread 1: x[1], x[33], ...   ... 31
                          shared buf[32] --(16, 8, 4, 2, 1)--> buf[0] = Σ

dw and db sum over rows: one thread per column walks the rows in order (deterministic; atomics
would add in arrival order and change the last bits from run to run).
"""
from __future__ import annotations

import functools
import math

from ..autograd.function import register
from ..cuda_arrays import ROW_THREADS, block_sum, cuda, launch, launch1, sum_rows
from .layernorm_op import LayerNormFunction

@functools.cache
def _kernels(dt):
    """The three kernels for one float dtype (np.float32, or np.float64 for the gradient checks):
    shared buffers and literals take that dtype, so float32 rows never compute in float64."""
    @cuda.jit
    def _ln_forward_cuda(x, w, b, has_b, eps, inv_c, out, mean, rstd):  # x, out (N, C); w, b (C,); mean, rstd (N,)
        buf = cuda.shared.array(ROW_THREADS, dtype=dt)
        n = cuda.blockIdx.x          # grid = N blocks: n < N always, no divergent exit before barriers
        tid = cuda.threadIdx.x
        C = x.shape[1]
        s = dt(0.0)
        for i in range(tid, C, ROW_THREADS):
            s += x[n, i]
        m = block_sum(buf, s) * inv_c
        v = dt(0.0)
        for i in range(tid, C, ROW_THREADS):
            d = x[n, i] - m
            v += d * d
        r = dt(1.0) / math.sqrt(block_sum(buf, v) * inv_c + eps)
        for i in range(tid, C, ROW_THREADS):
            y = (x[n, i] - m) * r * w[i]
            if has_b:
                y += b[i]
            out[n, i] = y
        if tid == 0:
            mean[n] = m
            rstd[n] = r

    @cuda.jit
    def _ln_backward_dx_cuda(g, x, w, mean, rstd, inv_c, dx):           # g, x, dx (N, C)
        buf = cuda.shared.array(ROW_THREADS, dtype=dt)
        n = cuda.blockIdx.x
        tid = cuda.threadIdx.x
        C = x.shape[1]
        m = mean[n]
        r = rstd[n]
        sd = dt(0.0)
        sdn = dt(0.0)
        for i in range(tid, C, ROW_THREADS):
            d = g[n, i] * w[i]
            sd += d
            sdn += d * (x[n, i] - m) * r
        md = block_sum(buf, sd) * inv_c
        mdn = block_sum(buf, sdn) * inv_c
        for i in range(tid, C, ROW_THREADS):
            nrm = (x[n, i] - m) * r
            dx[n, i] = r * (g[n, i] * w[i] - md - nrm * mdn)

    @cuda.jit
    def _ln_backward_dw_cuda(g, x, mean, rstd, dw):              # dw (C,) = Σ_n g · n
        j = cuda.grid(1)
        if j < dw.size:
            acc = dt(0.0)
            for n in range(x.shape[0]):
                acc += g[n, j] * (x[n, j] - mean[n]) * rstd[n]
            dw[j] = acc

    return _ln_forward_cuda, _ln_backward_dx_cuda, _ln_backward_dw_cuda

def layernorm_forward_cuda(x, w, b, eps=1e-5):
    shape = tuple(x.shape)
    C = shape[-1]
    x2 = x.reshape(x.size // C, C)
    N = x2.shape[0]
    out = cuda.device_array((N, C), dtype=x.dtype)
    mean = cuda.device_array(N, dtype=x.dtype)
    rstd = cuda.device_array(N, dtype=x.dtype)
    bb = w if b is None else b            # any device array of length C when there is no bias
    fwd, _, _ = _kernels(x.dtype.type)
    t = x.dtype.type
    launch(fwd, N, ROW_THREADS, x2, w, bb, b is not None, t(eps), t(1.0 / C), out, mean, rstd)
    return out.reshape(*shape), (x2, w, mean, rstd, b is not None, shape)

def layernorm_backward_cuda(dout, cache):
    x2, w, mean, rstd, has_b, shape = cache
    N, C = x2.shape
    g = dout.reshape(N, C)
    dx = cuda.device_array((N, C), dtype=x2.dtype)
    dw = cuda.device_array(C, dtype=x2.dtype)
    _, bdx, bdw = _kernels(x2.dtype.type)
    launch(bdx, N, ROW_THREADS, g, x2, w, mean, rstd, x2.dtype.type(1.0 / C), dx)
    launch1(bdw, C, g, x2, mean, rstd, dw)
    db = sum_rows(g) if has_b else None
    return dx.reshape(*shape), dw, db

@register(LayerNormFunction, "cuda")
class LayerNormCuda:
    @staticmethod
    def forward(ctx, x, w, b, eps=1e-5):
        return layernorm_forward_cuda(x, w, b, eps)

    @staticmethod
    def backward(ctx, grad):
        dx, dw, db = layernorm_backward_cuda(grad, ctx.cache)
        nx, nw, nb = ctx.needs_input_grad
        return (dx if nx else None), (dw if nw else None), (db if nb else None)
