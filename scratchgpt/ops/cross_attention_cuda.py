"""Cross-attention on the GPU (cross_attention_op.py's math): the simple version, one thread per
query row, in the style of attention_cuda.py's simple kernels.

Per (b, h, query i), with s = 1/sqrt(HS), k_j = kv[b, j, hHS:(h+1)HS], v_j = kv[b, j, C + hHS:...]:
    allowed(j) = kv_mask[b, j] (if given) and (not causal or j <= i + Tk - Tq)
    S_ij = s q_i·k_j,  lse_i = log Σ_allowed exp(S_ij),  y_i = Σ_allowed exp(S_ij - lse_i) v_j
    a row with no allowed key: y_i = 0, lse_i = +inf (so every P_ij of the backward is 0)
Backward with D_i = dy_i·y_i:  dS_ij = P_ij (dy_i·v_j - D_i);  dq_i = s Σ_j dS_ij k_j;
    dk_j += s dS_ij q_i,  dv_j += P_ij dy_i   (keys are shared by every query: atomics)

The forward keeps a running max and sum (online softmax) and writes y as it goes, so no (Tq, Tk)
matrix is stored; the backward recomputes P from lse. kv_mask must already be on the device
(a bool (B, Tk) device array): kernels never take host arrays.
"""
from __future__ import annotations

import functools
import math

import numpy as np

from ..autograd.function import register
from ..cuda_arrays import cuda, launch1, require_device, zeros
from ..errors import DataError
from .cross_attention_op import CrossAttentionFunction


@functools.cache
def _kernels(dt):
    @cuda.jit(device=True)
    def allowed(mask, has_mask, causal, b, i, j, off):
        if has_mask and not mask[b, j]:
            return False
        return not (causal and j > i + off)

    @cuda.jit
    def _forward(q, kv, mask, has_mask, causal, NH, scale, out, lse):   # q, out (B, Tq, C); lse (B, NH, Tq)
        n = cuda.grid(1)
        B, Tq, C = q.shape
        Tk = kv.shape[1]
        HS = C // NH
        if n < B * NH * Tq:
            i = n % Tq
            h = (n // Tq) % NH
            b = n // (Tq * NH)
            o = h * HS
            m = dt(0.0)
            ssum = dt(0.0)
            for d in range(HS):
                out[b, i, o + d] = dt(0.0)
            for j in range(Tk):
                if allowed(mask, has_mask, causal, b, i, j, Tk - Tq):
                    sc = dt(0.0)
                    for d in range(HS):
                        sc += q[b, i, o + d] * kv[b, j, o + d]
                    sc *= scale
                    if ssum == dt(0.0):
                        m = sc
                        ssum = dt(1.0)
                        for d in range(HS):
                            out[b, i, o + d] = kv[b, j, C + o + d]
                    else:
                        m_new = max(m, sc)
                        c_old = math.exp(m - m_new)
                        c_new = math.exp(sc - m_new)
                        ssum = ssum * c_old + c_new
                        for d in range(HS):
                            out[b, i, o + d] = out[b, i, o + d] * c_old + c_new * kv[b, j, C + o + d]
                        m = m_new
            if ssum > dt(0.0):
                for d in range(HS):
                    out[b, i, o + d] = out[b, i, o + d] / ssum
                lse[b, h, i] = m + math.log(ssum)
            else:
                lse[b, h, i] = dt(np.inf)

    @cuda.jit
    def _backward(q, kv, out, dout, lse, mask, has_mask, causal, NH, scale, dq, dkv):   # dkv zeroed
        n = cuda.grid(1)
        B, Tq, C = q.shape
        Tk = kv.shape[1]
        HS = C // NH
        if n < B * NH * Tq:
            i = n % Tq
            h = (n // Tq) % NH
            b = n // (Tq * NH)
            o = h * HS
            D = dt(0.0)
            for d in range(HS):
                D += dout[b, i, o + d] * out[b, i, o + d]
                dq[b, i, o + d] = dt(0.0)
            L = lse[b, h, i]
            for j in range(Tk):
                if allowed(mask, has_mask, causal, b, i, j, Tk - Tq):
                    sc = dt(0.0)
                    dp = dt(0.0)
                    for d in range(HS):
                        sc += q[b, i, o + d] * kv[b, j, o + d]
                        dp += dout[b, i, o + d] * kv[b, j, C + o + d]
                    p = math.exp(sc * scale - L)
                    ds = p * (dp - D) * scale
                    for d in range(HS):
                        dq[b, i, o + d] += ds * kv[b, j, o + d]
                        cuda.atomic.add(dkv, (b, j, o + d), ds * q[b, i, o + d])
                        cuda.atomic.add(dkv, (b, j, C + o + d), p * dout[b, i, o + d])

    return _forward, _backward


def _no_mask():
    return cuda.device_array((1, 1), dtype=np.bool_)


def cross_attention_forward_cuda(q, kv, n_head, kv_mask=None, causal=False):
    require_device(q, kv, kv_mask, where="cross_attention (GPU): q, kv and kv_mask")
    B, Tq, C = (int(s) for s in q.shape)
    NH = int(n_head)
    if kv.ndim != 3 or kv.shape[0] != B or kv.shape[2] != 2 * C or C % NH:
        raise DataError(f"cross_attention: q (B, Tq, C), kv (B, Tk, 2C), C % n_head == 0; got {tuple(q.shape)}, "
                        f"{tuple(kv.shape)}, n_head={n_head}")
    if kv_mask is not None and tuple(kv_mask.shape) != (B, kv.shape[1]):
        raise DataError(f"kv_mask must have shape (B, Tk) = {(B, kv.shape[1])}, got {tuple(kv_mask.shape)}")
    mask = _no_mask() if kv_mask is None else kv_mask
    fwd, _ = _kernels(q.dtype.type)
    out = cuda.device_array((B, Tq, C), dtype=q.dtype)
    lse = cuda.device_array((B, NH, Tq), dtype=q.dtype)
    scale = q.dtype.type(1.0 / math.sqrt(C // NH))
    launch1(fwd, B * NH * Tq, q, kv, mask, kv_mask is not None, bool(causal), NH, scale, out, lse)
    return out, (q, kv, out, lse, mask, kv_mask is not None, bool(causal), NH, scale)


def cross_attention_backward_cuda(dout, cache):
    q, kv, out, lse, mask, has_mask, causal, NH, scale = cache
    _, bwd = _kernels(q.dtype.type)
    dq = cuda.device_array(tuple(q.shape), dtype=q.dtype)
    dkv = zeros(tuple(kv.shape), kv.dtype)
    B, Tq, _ = q.shape
    launch1(bwd, B * NH * Tq, q, kv, out, dout, lse, mask, has_mask, causal, NH, scale, dq, dkv)
    return dq, dkv


@register(CrossAttentionFunction, "cuda")
class CrossAttentionCuda:
    @staticmethod
    def forward(ctx, q, kv, n_head, kv_mask=None, causal=False):
        return cross_attention_forward_cuda(q, kv, n_head, kv_mask, causal)

    @staticmethod
    def backward(ctx, grad):
        return cross_attention_backward_cuda(grad, ctx.cache)
