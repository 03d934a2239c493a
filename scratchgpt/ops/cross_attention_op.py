"""Multi-head cross-attention (encoder-decoder), also bidirectional encoder self-attention.

Inputs: q (B, Tq, C) from the decoder, kv (B, Tk, 2C) = [k | v] from the encoder (or from the
same x for encoder self-attention), an optional padding mask kv_mask (B, Tk) bool (True = this
key may be attended to), and an optional causal flag. Heads: HS = C / NH. Per batch b, head h:

    S = q k^T · s                              s = 1 / sqrt(HS)                    (Tq, Tk)
    S_ij = -inf  where kv_mask[b, j] is False
    S_ij = -inf  where causal and j > i + (Tk - Tq)
                 (query i sits at absolute position Tk - Tq + i, as when decoding with a cache of
                  earlier keys; with Tq == Tk this is the usual j > i)
    P = softmax(S) along j;  a row whose keys are ALL masked gets P = 0 (output 0, no NaN)
    y = P v                                                                         (Tq, HS)

heads merged to (B, Tq, C). Backward is that of attention:

    dv = P^T dy,  dP = dy v^T,  dS = P ⊙ (dP - rowsum(P ⊙ dP)),  dq = dS k · s,  dk = dS^T q · s

Fast CPU path: the same design as ``attention.py`` (chosen there by measurement): batched BLAS
for the four products on strided head views, a fused Numba masked softmax in place between
them, and the shared fused softmax-backward kernel.
"""
from __future__ import annotations

import math

import numpy as np
from numba import prange

from ..autograd import Function, Tensor
from ..errors import DataError
from ._numba import EXP_ROWS, njit_pair
from ._vexp import exp_inplace
from .attention import _softmax_backward_inplace, check_heads


def _check(q: np.ndarray, kv: np.ndarray, n_head, kv_mask):
    if q.ndim != 3:
        raise DataError(f"q must have shape (B, Tq, C), got {q.shape}")
    B, Tq, C = q.shape
    if kv.ndim != 3 or kv.shape[0] != B or kv.shape[2] != 2 * C:
        raise DataError(f"kv must have shape (B={B}, Tk, 2C={2 * C}), got {kv.shape}")
    HS = check_heads(C, n_head)
    Tk = kv.shape[1]
    if kv_mask is not None:
        kv_mask = np.asarray(kv_mask)
        if kv_mask.dtype != np.bool_ or kv_mask.shape != (B, Tk):
            raise DataError(f"kv_mask must be a bool array of shape (B={B}, Tk={Tk}), "
                            f"got {kv_mask.dtype} {kv_mask.shape}")
    return B, Tq, Tk, C, int(n_head), HS, kv_mask


def _heads(x: np.ndarray, B: int, T: int, NH: int, HS: int) -> np.ndarray:
    """(B, T, C) view -> (B, NH, T, HS) view, no copy."""
    return x.reshape(B, T, NH, HS).transpose(0, 2, 1, 3)


def _allowed(B, Tq, Tk, kv_mask, causal) -> np.ndarray:
    """(B, 1, Tq, Tk) bool: which (query, key) pairs may attend."""
    ok = np.ones((B, 1, Tq, Tk), dtype=bool)
    if kv_mask is not None:
        ok &= kv_mask[:, None, None, :]
    if causal:
        ok &= (np.arange(Tk)[None, :] <= np.arange(Tq)[:, None] + (Tk - Tq))[None, None]
    return ok


# ============================================================================ reference (float64)
def cross_attention_forward_ref(q, kv, n_head, kv_mask=None, causal=False):
    """The definition in float64. Returns (out (B, Tq, C), cache)."""
    q = np.asarray(q, dtype=np.float64)
    kv = np.asarray(kv, dtype=np.float64)
    B, Tq, Tk, C, NH, HS, kv_mask = _check(q, kv, n_head, kv_mask)
    qh = q.reshape(B, Tq, NH, HS).transpose(0, 2, 1, 3)                      # (B, NH, Tq, HS)
    kh = kv[:, :, :C].reshape(B, Tk, NH, HS).transpose(0, 2, 1, 3)           # (B, NH, Tk, HS)
    vh = kv[:, :, C:].reshape(B, Tk, NH, HS).transpose(0, 2, 1, 3)           # (B, NH, Tk, HS)
    scale = 1.0 / math.sqrt(HS)
    s = qh @ kh.transpose(0, 1, 3, 2) * scale                                # (B, NH, Tq, Tk)
    ok = _allowed(B, Tq, Tk, kv_mask, causal)
    s = np.where(ok, s, -np.inf)
    m = s.max(axis=-1, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)                                     # all-masked rows
    e = np.where(ok, np.exp(s - m), 0.0)
    den = e.sum(axis=-1, keepdims=True)
    p = e / np.where(den > 0, den, 1.0)                                      # (B, NH, Tq, Tk)
    y = p @ vh                                                               # (B, NH, Tq, HS)
    out = y.transpose(0, 2, 1, 3).reshape(B, Tq, C)
    return out, (qh, kh, vh, p, scale)


def cross_attention_backward_ref(dout, cache):
    """Gradients (dq (B, Tq, C), dkv (B, Tk, 2C)), float64."""
    qh, kh, vh, p, scale = cache
    B, NH, Tq, HS = qh.shape
    Tk = kh.shape[2]
    C = NH * HS
    dy = np.asarray(dout, dtype=np.float64).reshape(B, Tq, NH, HS).transpose(0, 2, 1, 3)
    dv = p.transpose(0, 1, 3, 2) @ dy                                        # (B, NH, Tk, HS)
    dp = dy @ vh.transpose(0, 1, 3, 2)                                       # (B, NH, Tq, Tk)
    ds = p * (dp - (p * dp).sum(axis=-1, keepdims=True))
    dq = ds @ kh * scale                                                     # (B, NH, Tq, HS)
    dk = ds.transpose(0, 1, 3, 2) @ qh * scale                               # (B, NH, Tk, HS)
    merge = lambda t, T: t.transpose(0, 2, 1, 3).reshape(B, T, C)            # noqa: E731
    return merge(dq, Tq), np.concatenate([merge(dk, Tk), merge(dv, Tk)], axis=-1)


# ============================================================================ fast CPU path
@njit_pair(fastmath=EXP_ROWS)
def _masked_softmax_inplace(att, kv_mask, NH, last_key, scale):
    """att (B*NH, Tq, Tk) raw scores in, probabilities out, in place.

    Key j is allowed for query row i iff kv_mask[b, j] and j <= i + last_key (last_key = Tk
    when not causal, Tk - Tq when causal). Rows with no allowed key become all zeros.
    """
    BH, Tq, Tk = att.shape
    zero = np.zeros(1, dtype=att.dtype)[0]
    R = BH * Tq
    n_chunks = min(R, 64)                   # rows in contiguous chunks: scratch allocated per chunk
    for c in prange(n_chunks):
        ibuf = np.empty(Tk, dtype=np.int32)
        for r in range(c * R // n_chunks, (c + 1) * R // n_chunks):
            bh = r // Tq
            i = r - bh * Tq
            b = bh // NH
            row = att[bh, i]
            hi = min(Tk, i + last_key + 1)      # keys >= hi are in the future
            first = -1
            for j in range(max(hi, 0)):
                if kv_mask[b, j]:
                    first = j
                    break
            if first < 0:                       # nothing to attend to: output 0, gradient 0
                row[:] = zero
                continue
            live = row[:hi]
            m = live[first]
            for j in range(first + 1, hi):
                if kv_mask[b, j] and live[j] > m:
                    m = live[j]
            m = m * scale
            for j in range(hi):
                live[j] = live[j] * scale - m
            exp_inplace(live, ibuf)
            total = zero
            for j in range(hi):
                if kv_mask[b, j]:
                    total += live[j]
                else:
                    live[j] = zero
            inv = 1 / total
            for j in range(hi):
                live[j] *= inv
            for j in range(hi, Tk):
                row[j] = zero


def cross_attention_forward(q, kv, n_head, kv_mask=None, causal=False):
    """Fast path. Returns (out (B, Tq, C), cache); cache = (q, kv, P, NH)."""
    q = np.asarray(q)
    kv = np.asarray(kv, dtype=q.dtype)
    B, Tq, Tk, C, NH, HS, kv_mask = _check(q, kv, n_head, kv_mask)
    dt = q.dtype
    qh = _heads(q, B, Tq, NH, HS)                                            # (B, NH, Tq, HS)
    kh = _heads(kv[:, :, :C], B, Tk, NH, HS)                                 # (B, NH, Tk, HS)
    vh = _heads(kv[:, :, C:], B, Tk, NH, HS)                                 # (B, NH, Tk, HS)
    # C-contiguous by construction: the kernels below work on a reshaped *view* of it (matmul's
    # own output can come back strided when its inputs are, and reshape would then copy)
    att = np.empty((B, NH, Tq, Tk), dtype=dt)                                # (B, NH, Tq, Tk)
    np.matmul(qh, kh.transpose(0, 1, 3, 2), out=att)
    mask = np.ones((B, Tk), dtype=np.bool_) if kv_mask is None else np.ascontiguousarray(kv_mask)
    last_key = (Tk - Tq) if causal else Tk
    _masked_softmax_inplace.pick(att.size)(att.reshape(B * NH, Tq, Tk), mask, NH, last_key,
                            dt.type(1.0 / math.sqrt(HS)))
    out = np.empty((B, Tq, C), dtype=dt)                                     # (B, Tq, C)
    np.matmul(att, vh, out=_heads(out, B, Tq, NH, HS))
    return out, (q, kv, att, NH)


def cross_attention_backward(dout, cache):
    """(dq (B, Tq, C), dkv (B, Tk, 2C)) in the forward dtype."""
    q, kv, att, NH = cache
    B, Tq, C = q.shape
    Tk = kv.shape[1]
    HS = C // NH
    dt = q.dtype
    dout = np.asarray(dout, dtype=dt)
    qh = _heads(q, B, Tq, NH, HS)
    kh = _heads(kv[:, :, :C], B, Tk, NH, HS)
    vh = _heads(kv[:, :, C:], B, Tk, NH, HS)
    dy = _heads(dout, B, Tq, NH, HS)                                         # (B, NH, Tq, HS)
    dq = np.empty((B, Tq, C), dtype=dt)                                      # (B, Tq, C)
    dkv = np.empty((B, Tk, 2 * C), dtype=dt)                                 # (B, Tk, 2C)
    np.matmul(att.transpose(0, 1, 3, 2), dy, out=_heads(dkv[:, :, C:], B, Tk, NH, HS))
    datt = np.empty((B, NH, Tq, Tk), dtype=dt)                               # (B, NH, Tq, Tk)
    np.matmul(dy, vh.transpose(0, 1, 3, 2), out=datt)                        # C-contiguous, as att
    _softmax_backward_inplace.pick(att.size)(att.reshape(B * NH * Tq, Tk), datt.reshape(B * NH * Tq, Tk),
                              dt.type(1.0 / math.sqrt(HS)))
    np.matmul(datt, kh, out=_heads(dq, B, Tq, NH, HS))
    np.matmul(datt.transpose(0, 1, 3, 2), qh, out=_heads(dkv[:, :, :C], B, Tk, NH, HS))
    return dq, dkv


# ---- numba.cuda kernel: ops/cross_attention_cuda.py (its class is registered for device "cuda") ----


# ============================================================================ autograd
class CrossAttentionFunction(Function):
    @staticmethod
    def forward(ctx, q, kv, n_head, kv_mask=None, causal=False):
        return cross_attention_forward(q, kv, n_head, kv_mask, causal)

    @staticmethod
    def backward(ctx, grad):
        dq, dkv = cross_attention_backward(grad, ctx.cache)
        return dq, dkv


def cross_attention(q, kv, n_head: int, kv_mask=None, causal: bool = False) -> Tensor:
    """q (B, Tq, C), kv (B, Tk, 2C) = [k | v] -> (B, Tq, C). kv_mask: bool (B, Tk), True = keep."""
    if not isinstance(q, Tensor):
        q = Tensor(q)
    if not isinstance(kv, Tensor):
        kv = Tensor(kv)
    if kv.dtype != q.dtype:
        raise DataError(f"q and kv must share a dtype, got {q.dtype} and {kv.dtype}")
    return CrossAttentionFunction.apply(q, kv, n_head=n_head, kv_mask=kv_mask, causal=causal)
