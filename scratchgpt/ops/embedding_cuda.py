"""Token (+ position) embedding on the GPU: a gather forward, an atomic scatter-add backward.

    y[b, t, :] = wte[idx[b, t], :] (+ wpe[t, :])
    dwte[v, :] = Σ_{(b,t): idx[b,t] = v} dy[b, t, :]        dwpe[t, :] = Σ_b dy[b, t, :]

Forward: one thread per output element (b, t, c); neighbouring threads read neighbouring c of
one table row (coalesced). Backward: one thread per (b, t, c) adds its dy into dwte[idx, c]
with ``cuda.atomic.add``: two positions holding the same token add into the same row, and an
atomic add is the simple correct way to let them. Floating-point addition in arrival order is
not bit-reproducible from run to run (the sum is, up to rounding); dwpe (rows never collide
within one b) uses the same kernel.
"""
from __future__ import annotations

from ..autograd.function import register
from ..cuda_arrays import cuda, launch1, zeros
from .embedding_op import EmbeddingFunction, TokenPositionEmbeddingFunction


@cuda.jit
def _gather_cuda(idx, wte, wpe, has_pos, out):   # idx (B, T); wte (V, C); wpe (P, C); out (B, T, C)
    i = cuda.grid(1)
    B, T, C = out.shape
    if i < B * T * C:
        c = i % C
        t = (i // C) % T
        b = i // (C * T)
        v = wte[idx[b, t], c]
        if has_pos:
            v += wpe[t, c]
        out[b, t, c] = v


@cuda.jit
def _scatter_cuda(idx, dout, has_pos, dwte, dwpe):
    i = cuda.grid(1)
    B, T, C = dout.shape
    if i < B * T * C:
        c = i % C
        t = (i // C) % T
        b = i // (C * T)
        g = dout[b, t, c]
        cuda.atomic.add(dwte, (idx[b, t], c), g)
        if has_pos:
            cuda.atomic.add(dwpe, (t, c), g)


def _idx2(idx):
    return idx.reshape(1, idx.shape[0]) if idx.ndim == 1 else idx


def token_position_embedding_forward_cuda(idx, wte, wpe=None):
    ishape = tuple(idx.shape)
    idx2 = _idx2(idx)
    B, T = idx2.shape
    C = wte.shape[1]
    out = cuda.device_array((B, T, C), dtype=wte.dtype)
    launch1(_gather_cuda, out.size, idx2, wte, wte if wpe is None else wpe, wpe is not None, out)
    pshape = None if wpe is None else tuple(wpe.shape)
    return out.reshape(*ishape, C), (idx2, tuple(wte.shape), pshape)


def token_position_embedding_backward_cuda(dout, cache):
    idx2, wte_shape, wpe_shape = cache
    B, T = idx2.shape
    g = dout.reshape(B, T, wte_shape[1])
    dwte = zeros(wte_shape, g.dtype)
    dwpe = zeros(wpe_shape, g.dtype) if wpe_shape is not None else dwte
    launch1(_scatter_cuda, g.size, idx2, g, wpe_shape is not None, dwte, dwpe)
    return dwte, (dwpe if wpe_shape is not None else None)


@register(EmbeddingFunction, "cuda")
class EmbeddingCuda:
    @staticmethod
    def forward(ctx, idx, weight):
        return token_position_embedding_forward_cuda(idx, weight)

    @staticmethod
    def backward(ctx, grad):
        dw, _ = token_position_embedding_backward_cuda(grad, ctx.cache)
        return None, dw


@register(TokenPositionEmbeddingFunction, "cuda")
class TokenPositionEmbeddingCuda:
    @staticmethod
    def forward(ctx, idx, wte, wpe):
        return token_position_embedding_forward_cuda(idx, wte, wpe)

    @staticmethod
    def backward(ctx, grad):
        dwte, dwpe = token_position_embedding_backward_cuda(grad, ctx.cache)
        _, nte, npe = ctx.needs_input_grad
        return None, (dwte if nte else None), (dwpe if npe else None)
