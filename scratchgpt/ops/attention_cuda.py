"""Causal self-attention on the GPU — the simple, correct version (one thread per query row).

Same math as attention.py, per (batch b, head h, query t), with s = 1/sqrt(HS):
    S_tj = s · q_t·k_j  (j ≤ t),   P_tj = exp(S_tj − lse_t),   lse_t = log Σ_j exp(S_tj)
    y_t = Σ_j P_tj v_j
Backward, with D_t = dy_t·y_t = Σ_j P_tj (dy_t·v_j):
    dS_tj = P_tj (dy_t·v_j − D_t);   dq_t = s Σ_j dS_tj k_j;   dk_j += s dS_tj q_t;   dv_j += P_tj dy_t

Threads: one per (b, h, t), B·NH·T in all, in blocks of 128. The forward keeps the running
maximum and sum of an online softmax (one pass for the statistics, one to accumulate y), so it
never stores the (T, T) matrix P: it caches only lse (B, NH, T) and recomputes P in the backward.
Each thread owns its dq row; dk and dv rows are shared by every later query, so those adds are
``cuda.atomic.add``. This is the readable baseline the tests hold the fast versions to; a tiled
flash-attention kernel (a block per query tile, K/V tiles through shared memory) is the next
step and is not written yet.
"""
from __future__ import annotations

import functools
import math
import types

from ..autograd.function import register
from ..cuda_arrays import cuda, launch1, zeros
from .attention import CausalSelfAttentionFunction, _split_qkv_shape


@functools.cache
def _kernels(dt):
    @cuda.jit
    def _attn_forward_cuda(qkv, NH, scale, out, lse):    # qkv (B, T, 3C); out (B, T, C); lse (B, NH, T)
        i = cuda.grid(1)
        B, T, C3 = qkv.shape
        C = C3 // 3
        HS = C // NH
        if i < B * NH * T:
            t = i % T
            h = (i // T) % NH
            b = i // (T * NH)
            qo = h * HS
            ko = C + h * HS
            vo = 2 * C + h * HS
            m = dt(0.0)
            ssum = dt(0.0)
            for j in range(t + 1):
                sc = dt(0.0)
                for d in range(HS):
                    sc += qkv[b, t, qo + d] * qkv[b, j, ko + d]
                sc *= scale
                if j == 0:
                    m = sc
                    ssum = dt(1.0)
                elif sc > m:
                    ssum = ssum * math.exp(m - sc) + dt(1.0)
                    m = sc
                else:
                    ssum += math.exp(sc - m)
            L = m + math.log(ssum)
            lse[b, h, t] = L
            for d in range(HS):
                out[b, t, qo + d] = dt(0.0)
            for j in range(t + 1):
                sc = dt(0.0)
                for d in range(HS):
                    sc += qkv[b, t, qo + d] * qkv[b, j, ko + d]
                p = math.exp(sc * scale - L)
                for d in range(HS):
                    out[b, t, qo + d] += p * qkv[b, j, vo + d]

    @cuda.jit
    def _attn_backward_cuda(qkv, out, dout, lse, NH, scale, dqkv):   # dqkv (B, T, 3C), zeroed
        i = cuda.grid(1)
        B, T, C3 = qkv.shape
        C = C3 // 3
        HS = C // NH
        if i < B * NH * T:
            t = i % T
            h = (i // T) % NH
            b = i // (T * NH)
            qo = h * HS
            ko = C + h * HS
            vo = 2 * C + h * HS
            D = dt(0.0)
            for d in range(HS):
                D += dout[b, t, qo + d] * out[b, t, qo + d]
            L = lse[b, h, t]
            for j in range(t + 1):
                sc = dt(0.0)
                dp = dt(0.0)
                for d in range(HS):
                    sc += qkv[b, t, qo + d] * qkv[b, j, ko + d]
                    dp += dout[b, t, qo + d] * qkv[b, j, vo + d]
                p = math.exp(sc * scale - L)
                ds = p * (dp - D) * scale
                for d in range(HS):
                    dqkv[b, t, qo + d] += ds * qkv[b, j, ko + d]
                    cuda.atomic.add(dqkv, (b, j, ko + d), ds * qkv[b, t, qo + d])
                    cuda.atomic.add(dqkv, (b, j, vo + d), p * dout[b, t, qo + d])

    return _attn_forward_cuda, _attn_backward_cuda


def causal_self_attention_forward_cuda(qkv, n_head):
    # the shape checks of the CPU op, on the shape alone (the simulator's shape object has no [-1])
    B, T, C, NH, HS = _split_qkv_shape(types.SimpleNamespace(ndim=qkv.ndim, shape=tuple(qkv.shape)), n_head)
    out = cuda.device_array((B, T, C), dtype=qkv.dtype)
    lse = cuda.device_array((B, NH, T), dtype=qkv.dtype)
    fwd, _ = _kernels(qkv.dtype.type)
    launch1(fwd, B * NH * T, qkv, NH, qkv.dtype.type(1.0 / math.sqrt(HS)), out, lse)
    return out, (qkv, out, lse, NH)


def causal_self_attention_backward_cuda(dout, cache):
    qkv, out, lse, NH = cache
    B, T, C3 = qkv.shape
    HS = C3 // 3 // NH
    dqkv = zeros(tuple(qkv.shape), qkv.dtype)
    _, bwd = _kernels(qkv.dtype.type)
    launch1(bwd, B * NH * T, qkv, out, dout, lse, NH, qkv.dtype.type(1.0 / math.sqrt(HS)), dqkv)
    return dqkv


@register(CausalSelfAttentionFunction, "cuda")
class CausalSelfAttentionCuda:
    @staticmethod
    def forward(ctx, qkv, n_head):
        return causal_self_attention_forward_cuda(qkv, n_head)

    @staticmethod
    def backward(ctx, grad):
        return (causal_self_attention_backward_cuda(grad, ctx.cache),)
