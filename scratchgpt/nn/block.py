"""Transformer blocks: the GPT-2 MLP and pre-LN Block, plus the encoder/decoder blocks of the
encoder-decoder model (tutorial §4.2.2-§4.2.3).

Pre-LN (normalise the input of each sub-layer, add its output to the residual stream) is what
GPT-2 uses; it trains without warm-up tricks at small scale, unlike the original post-LN.
"""
from __future__ import annotations

from .. import ops
from .attention import CausalSelfAttention, CrossAttention
from .layers import INIT_STD, Dropout, LayerNorm, Linear
from .module import Module, as_rng


class MLP(Module):
    """c_fc (C -> 4C), GELU (tanh approximation), c_proj (4C -> C), dropout."""

    def __init__(self, n_embd: int, dropout: float = 0.0, bias: bool = True, rng=None,
                 proj_std: float = INIT_STD, hidden: int | None = None):
        super().__init__()
        rng = as_rng(rng)
        hidden = 4 * n_embd if hidden is None else int(hidden)
        self.c_fc = Linear(n_embd, hidden, bias=bias, rng=rng)
        self.c_proj = Linear(hidden, n_embd, bias=bias, rng=rng, std=proj_std)
        self.dropout = Dropout(dropout, rng=rng)

    def forward(self, x):                                # (B, T, C)
        h = ops.gelu(self.c_fc(x))                       # (B, T, 4C)
        return self.dropout(self.c_proj(h))              # (B, T, C)


class Block(Module):
    """GPT-2 block: x = x + attn(ln_1(x)); x = x + mlp(ln_2(x))."""

    def __init__(self, n_embd: int, n_head: int, dropout: float = 0.0, bias: bool = True, rng=None,
                 proj_std: float = INIT_STD, eps: float = 1e-5, n_inner: int | None = None,
                 head_size: int | None = None):
        super().__init__()
        rng = as_rng(rng)
        self.ln_1 = LayerNorm(n_embd, eps=eps, bias=bias)
        self.attn = CausalSelfAttention(n_embd, n_head, dropout, bias, rng, proj_std, head_size)
        self.ln_2 = LayerNorm(n_embd, eps=eps, bias=bias)
        self.mlp = MLP(n_embd, dropout, bias, rng, proj_std, hidden=n_inner)

    def forward(self, x):                                # (B, T, C)
        x = ops.add(x, self.attn(self.ln_1(x)))
        return ops.add(x, self.mlp(self.ln_2(x)))


class EncoderBlock(Module):
    """Bidirectional self-attention over the source (padding masked), then the MLP; pre-LN."""

    def __init__(self, n_embd: int, n_head: int, dropout: float = 0.0, bias: bool = True, rng=None,
                 proj_std: float = INIT_STD, eps: float = 1e-5):
        super().__init__()
        rng = as_rng(rng)
        self.ln_1 = LayerNorm(n_embd, eps=eps, bias=bias)
        self.attn = CrossAttention(n_embd, n_head, dropout, bias, rng, proj_std)
        self.ln_2 = LayerNorm(n_embd, eps=eps, bias=bias)
        self.mlp = MLP(n_embd, dropout, bias, rng, proj_std)

    def forward(self, x, src_mask=None):                 # x (B, Ts, C), src_mask (B, Ts) bool
        h = self.ln_1(x)
        x = ops.add(x, self.attn(h, h, src_mask))
        return ops.add(x, self.mlp(self.ln_2(x)))


class DecoderBlock(Module):
    """Tutorial §4.2.3, h = SelfAttn(h) + CrossAttn(h, enc, enc), made a pre-LN residual stack:
    x = x + causal_self_attn(ln_1(x)); x = x + cross_attn(ln_2(x), enc); x = x + mlp(ln_3(x))."""

    def __init__(self, n_embd: int, n_head: int, dropout: float = 0.0, bias: bool = True, rng=None,
                 proj_std: float = INIT_STD, eps: float = 1e-5):
        super().__init__()
        rng = as_rng(rng)
        self.ln_1 = LayerNorm(n_embd, eps=eps, bias=bias)
        self.attn = CausalSelfAttention(n_embd, n_head, dropout, bias, rng, proj_std)
        self.ln_2 = LayerNorm(n_embd, eps=eps, bias=bias)
        self.cross_attn = CrossAttention(n_embd, n_head, dropout, bias, rng, proj_std)
        self.ln_3 = LayerNorm(n_embd, eps=eps, bias=bias)
        self.mlp = MLP(n_embd, dropout, bias, rng, proj_std)

    def forward(self, x, enc, src_mask=None):            # x (B, Tt, C), enc (B, Ts, C)
        x = ops.add(x, self.attn(self.ln_1(x)))
        x = ops.add(x, self.cross_attn(self.ln_2(x), enc, src_mask))
        return ops.add(x, self.mlp(self.ln_3(x)))
