"""Embedding lookups: token embedding, and the fused token + position embedding of GPT-2.

Math, idx (B, T) integer ids in [0, V), W (V, C) (g = dL/dy):
    embedding:                 y[b, t] = W[idx[b, t]]                          (B, T, C)
                               dW[v]   = Σ_{(b, t): idx[b, t] = v} g[b, t]      (scatter-add)
    token_position_embedding:  y[b, t] = Wte[idx[b, t]] + Wpe[t]               (B, T, C)
                               dWte as above;  dWpe[t] = Σ_b g[b, t] for t < T, 0 for t ≥ T
idx is data, not a parameter: it gets no gradient.

Fast path: Numba. The forward gather is one pass (fused with the position add in the token +
position version). The backward scatter-add is a Numba loop — ``np.add.at`` is an order of
magnitude slower — parallel over blocks of channels: each task owns columns [c0, c1) of dW,
so repeated ids never race and the sum order (rows in order) is fixed: deterministic.
"""
from __future__ import annotations

import numpy as np
from numba import prange

from ..autograd import Function, Tensor
from ..backend import is_device_array
from ..errors import DataError
from ._numba import STRICT, njit_pair

_CBLOCK = 32  # channels per parallel task in the scatter-add


def _check_idx(idx, V, name="idx"):
    idx = idx.data if isinstance(idx, Tensor) else idx
    if is_device_array(idx):
        # ids already on the GPU were checked on the host before the copy (GPT.forward does);
        # reading them back here would be the hidden transfer the device path forbids
        if not np.issubdtype(idx.dtype, np.integer):
            raise DataError(f"{name} must be an integer array of token ids, got dtype {idx.dtype}")
        return idx
    idx = np.asarray(idx)
    if not np.issubdtype(idx.dtype, np.integer):
        raise DataError(f"{name} must be an integer array of token ids, got dtype {idx.dtype}")
    if idx.size:
        lo, hi = int(idx.min()), int(idx.max())
        if lo < 0 or hi >= V:
            raise DataError(f"{name} holds ids in [{lo}, {hi}] but the embedding table has {V} rows (valid: 0..{V - 1})")
    return idx


# ----------------------------------------------------------------------------- reference
def embedding_forward_ref(idx, weight):
    w = np.asarray(weight, dtype=np.float64)
    return w[idx], (idx, w.shape)


def embedding_backward_ref(dout, cache):
    idx, wshape = cache
    dw = np.zeros(wshape, dtype=np.float64)
    np.add.at(dw, idx, np.asarray(dout, dtype=np.float64))
    return None, dw


def token_position_embedding_forward_ref(idx, wte, wpe):
    T = tuple(idx.shape)[-1]
    y = np.asarray(wte, dtype=np.float64)[idx] + np.asarray(wpe, dtype=np.float64)[:T]
    return y, (idx, np.shape(wte), np.shape(wpe))


def token_position_embedding_backward_ref(dout, cache):
    idx, wte_shape, wpe_shape = cache
    g = np.asarray(dout, dtype=np.float64)
    dwte = np.zeros(wte_shape, dtype=np.float64)
    np.add.at(dwte, idx, g)
    dwpe = np.zeros(wpe_shape, dtype=np.float64)
    T = tuple(idx.shape)[-1]
    dwpe[:T] = g.reshape(-1, T, g.shape[-1]).sum(axis=0)
    return None, dwte, dwpe


# ----------------------------------------------------------------------------- Numba kernels
@njit_pair(fastmath=STRICT)
def _gather_add_pos(idx, wte, wpe, out):  # idx (B, T); wte (V, C); wpe (P, C); out (B, T, C)
    B, T = idx.shape
    C = wte.shape[1]
    for bt in prange(B * T):
        b = bt // T
        t = bt - b * T
        v = idx[b, t]
        for c in range(C):
            out[b, t, c] = wte[v, c] + wpe[t, c]


@njit_pair(fastmath=STRICT)
def _scatter_add(idx, g, dw):  # idx (N,); g (N, C); dw (V, C) zeroed: dw[idx[n]] += g[n]
    N = idx.shape[0]
    C = g.shape[1]
    for blk in prange((C + _CBLOCK - 1) // _CBLOCK):
        c0 = blk * _CBLOCK
        c1 = min(c0 + _CBLOCK, C)
        for n in range(N):
            v = idx[n]
            for c in range(c0, c1):
                dw[v, c] += g[n, c]


@njit_pair(fastmath=STRICT)
def _scatter_add_pos(idx, g, dwte, dwpe):  # idx (B, T); g (B, T, C); dwte (V, C), dwpe (P, C) zeroed
    B, T = idx.shape
    C = g.shape[2]
    for blk in prange((C + _CBLOCK - 1) // _CBLOCK):
        c0 = blk * _CBLOCK
        c1 = min(c0 + _CBLOCK, C)
        for b in range(B):
            for t in range(T):
                v = idx[b, t]
                for c in range(c0, c1):
                    gv = g[b, t, c]
                    dwte[v, c] += gv
                    dwpe[t, c] += gv


# ----------------------------------------------------------------------------- fast CPU path
def embedding_forward(idx, weight):
    # np.take on axis 0 is already a tight memcpy-per-row gather; Numba would not beat it
    return np.take(weight, idx, axis=0), (idx, weight.shape)


def embedding_backward(dout, cache):
    idx, wshape = cache
    C = wshape[1]
    g = np.ascontiguousarray(dout).reshape(-1, C)  # (N, C)
    dw = np.zeros(wshape, dtype=g.dtype)  # (V, C)
    _scatter_add.pick(g.size)(np.ascontiguousarray(idx).reshape(-1), g, dw)
    return None, dw


def token_position_embedding_forward(idx, wte, wpe):
    idx2 = np.ascontiguousarray(idx)
    if idx2.ndim == 1:
        idx2 = idx2[None, :]
    B, T = idx2.shape
    dt = np.result_type(wte, wpe)
    out = np.empty((B, T, wte.shape[1]), dtype=dt)  # (B, T, C)
    _gather_add_pos.pick(out.size)(idx2, wte.astype(dt, copy=False), wpe.astype(dt, copy=False), out)
    return out.reshape(*idx.shape, wte.shape[1]), (idx2, wte.shape, wpe.shape, idx.shape)


def token_position_embedding_backward(dout, cache):
    idx2, wte_shape, wpe_shape, ishape = cache
    B, T = idx2.shape
    g = np.ascontiguousarray(dout).reshape(B, T, wte_shape[1])  # (B, T, C)
    dwte = np.zeros(wte_shape, dtype=g.dtype)  # (V, C)
    dwpe = np.zeros(wpe_shape, dtype=g.dtype)  # (P, C)
    _scatter_add_pos.pick(g.size)(idx2, g, dwte, dwpe)
    return None, dwte, dwpe


# ---- numba.cuda kernel: ops/embedding_cuda.py (its class is registered for device "cuda") ----


# ----------------------------------------------------------------------------- autograd
class EmbeddingFunction(Function):
    @staticmethod
    def forward(ctx, idx, weight):
        return embedding_forward(idx, weight)

    @staticmethod
    def backward(ctx, grad):
        return embedding_backward(grad, ctx.cache)


class TokenPositionEmbeddingFunction(Function):
    @staticmethod
    def forward(ctx, idx, wte, wpe):
        return token_position_embedding_forward(idx, wte, wpe)

    @staticmethod
    def backward(ctx, grad):
        _, dwte, dwpe = token_position_embedding_backward(grad, ctx.cache)
        _, nte, npe = ctx.needs_input_grad
        return None, (dwte if nte else None), (dwpe if npe else None)


def _t(w):
    return w if isinstance(w, Tensor) else Tensor(w)


def embedding(idx, weight) -> Tensor:
    """weight[idx]: idx an integer NumPy array (B, T), weight (V, C) -> (B, T, C)."""
    weight = _t(weight)
    if weight.data.ndim != 2:
        raise ValueError(f"embedding: weight must be (V, C), got shape {weight.data.shape}")
    idx = _check_idx(idx, weight.data.shape[0])
    return EmbeddingFunction.apply(idx, weight)


def token_position_embedding(idx, wte, wpe) -> Tensor:
    """wte[idx] + wpe[arange(T)], fused: idx (B, T) -> (B, T, C)."""
    wte, wpe = _t(wte), _t(wpe)
    if wte.data.ndim != 2 or wpe.data.ndim != 2 or wte.data.shape[1] != wpe.data.shape[1]:
        raise ValueError(
            f"token_position_embedding: wte (V, C) and wpe (P, C) must share C, got {wte.data.shape} and {wpe.data.shape}")
    idx = _check_idx(idx, wte.data.shape[0])
    if idx.ndim not in (1, 2):
        raise DataError(f"idx must have shape (B, T) or (T,), got {idx.shape}")
    T = tuple(idx.shape)[-1]
    if T > wpe.data.shape[0]:
        raise DataError(f"sequence length T={T} exceeds the {wpe.data.shape[0]} learned positions (block_size)")
    return TokenPositionEmbeddingFunction.apply(idx, wte, wpe)
