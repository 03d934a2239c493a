"""Multi-head attention modules: GPT-2 causal self-attention and encoder-decoder cross-attention.

Both keep the heads fused inside one op (no per-head Python loop): the projections are single
matmuls producing all heads at once, and the op splits them as (B, T, NH, HS).
"""
from __future__ import annotations

import numpy as np

from .. import ops
from ..ops.attention import check_heads
from .layers import INIT_STD, Dropout, Linear
from .module import Module, as_rng


class CausalSelfAttention(Module):
    """GPT-2 attention: c_attn (C -> 3C) gives [q | k | v]; causal softmax(q k^T / sqrt(HS)) v;
    c_proj (C -> C) mixes the heads back. ``proj_std`` is the residual-scaled init of c_proj."""

    def __init__(self, n_embd: int, n_head: int, dropout: float = 0.0, bias: bool = True, rng=None,
                 proj_std: float = INIT_STD, head_size: int | None = None):
        super().__init__()
        if head_size is None:                               # GPT-2: the heads split n_embd
            check_heads(n_embd, n_head)
            head_size = n_embd // n_head
        rng = as_rng(rng)
        self.n_head = int(n_head)
        A = self.n_head * int(head_size)                    # = n_embd unless heads were pruned
        self.c_attn = Linear(n_embd, 3 * A, bias=bias, rng=rng)
        self.c_proj = Linear(A, n_embd, bias=bias, rng=rng, std=proj_std)
        self.resid_dropout = Dropout(dropout, rng=rng)

    def forward(self, x):                                   # x (B, T, C)
        qkv = self.c_attn(x)                                # (B, T, 3C)
        y = ops.causal_self_attention(qkv, self.n_head)     # (B, T, C)
        return self.resid_dropout(self.c_proj(y))           # (B, T, C)


class CrossAttention(Module):
    """Queries from ``x``, keys/values from ``context``: c_q (C -> C), c_kv (C -> 2C) = [k | v].

    Used for the decoder's attention to the encoder output (tutorial §4.2.3) and, with
    ``context = x``, for the encoder's bidirectional self-attention. ``context_mask`` (B, Tk) bool,
    True where a key may be attended (False on padding).
    """

    def __init__(self, n_embd: int, n_head: int, dropout: float = 0.0, bias: bool = True, rng=None,
                 proj_std: float = INIT_STD, causal: bool = False):
        super().__init__()
        check_heads(n_embd, n_head)
        rng = as_rng(rng)
        self.n_head = int(n_head)
        self.causal = bool(causal)
        self.c_q = Linear(n_embd, n_embd, bias=bias, rng=rng)
        self.c_kv = Linear(n_embd, 2 * n_embd, bias=bias, rng=rng)
        self.c_proj = Linear(n_embd, n_embd, bias=bias, rng=rng, std=proj_std)
        self.resid_dropout = Dropout(dropout, rng=rng)

    def forward(self, x, context=None, context_mask=None):  # x (B, Tq, C), context (B, Tk, C)
        context = x if context is None else context
        q = self.c_q(x)                                       # (B, Tq, C)
        kv = self.c_kv(context)                               # (B, Tk, 2C)
        mask = None if context_mask is None else np.asarray(context_mask, dtype=bool)  # (B, Tk)
        y = ops.cross_attention(q, kv, self.n_head, kv_mask=mask, causal=self.causal)  # (B, Tq, C)
        return self.resid_dropout(self.c_proj(y))
