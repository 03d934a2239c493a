"""What the engine needs of a decoder, in one small dataclass (no autograd objects).

``decoder_weights(model)`` reads a ``GPT`` — plain, LoRA (merged or not: the update is folded
into the copy), with Adapters or with Prefix-tuning — into ``DecoderWeights``. A quantized or
pruned model provides the same dataclass with other linear objects (the protocol is in
infer/linear.py), so the engine never looks at the model itself.

Smear (GPTConfig.smear, ops/smear.py): ``smear = (w, b)``; the runner mixes each row's embedding
with the previous position's (kept per cache slot between steps).
Linear names (GPT-2's): ``transformer.h.{i}.attn.c_attn``, ``transformer.h.{i}.attn.c_proj``,
``transformer.h.{i}.mlp.c_fc``, ``transformer.h.{i}.mlp.c_proj``, ``lm_head`` (tied: wteᵀ).
LayerNorm names: ``transformer.h.{i}.ln_1``, ``transformer.h.{i}.ln_2``, ``transformer.ln_f``.
Adapters (optional): ``transformer.h.{i}.attn.adapter`` / ``.mlp.adapter`` -> (down, up)
linears, applied as a <- a + up(gelu(down(a))) to the sub-layer's output. Prefixes (optional):
``prefix_len`` P and per layer (prefix_k, prefix_v) of shape (NH, P, HS).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import ConfigError
from .linear import DenseLinear

LINEAR_KINDS = ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")


@dataclass
class DecoderWeights:
    n_layer: int
    n_head: int
    n_embd: int
    block_size: int
    vocab_size: int
    eps: float
    wte: np.ndarray                       # (V, C) float32
    wpe: np.ndarray                       # (block_size, C) float32
    layernorms: dict                      # name -> (w (C,), b (C,)) float32
    linears: dict                         # name -> linear object (infer/linear.py protocol)
    adapters: dict = field(default_factory=dict)   # name -> (down, up) linears
    prefixes: dict = field(default_factory=dict)   # layer index -> (k, v) each (NH, P, HS)
    prefix_len: int = 0
    kind: str = "float32"                 # shown by --verbose and the benchmarks
    head_dim: int | None = None           # None: n_embd // n_head (pruned heads: attention is
                                          # n_head * head_dim wide, not n_embd)
    smear: tuple | None = None            # (w (C,), b (1,)) of GPTConfig.smear's gate, or None

    def __post_init__(self):
        if self.head_dim is None:
            self.head_dim = self.n_embd // self.n_head

    @property
    def attn_width(self) -> int:
        """Width of q, k, v and of attn.c_proj's input: n_head * head_dim."""
        return self.n_head * self.head_dim

    def linear(self, name: str):
        try:
            return self.linears[name]
        except KeyError:
            raise ConfigError(f"decoder weights have no linear {name!r}") from None

    @property
    def weight_bytes(self) -> int:
        """Bytes of weights a decode step reads: every linear (incl. lm_head) + LayerNorms."""
        n = sum(int(lin.nbytes) for lin in self.linears.values())
        n += sum(int(a.nbytes + b.nbytes) for a, b in self.layernorms.values())
        n += sum(int(d.nbytes + u.nbytes) for d, u in self.adapters.values())
        return n


def _f32(a) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.float32)


def dense_weight(mod) -> tuple[np.ndarray, np.ndarray | None]:
    """(W (in, out), b) of a Linear or LoRALinear (the LoRA update added unless merged)."""
    w = mod.weight.data
    if hasattr(mod, "lora_A") and not mod.merged:
        w = w + mod.delta()
    b = None if mod.bias is None else mod.bias.data
    return w, b


def _ln(mod, C):
    b = mod.bias.data if mod.bias is not None else np.zeros(C, dtype=np.float32)
    return _f32(mod.weight.data), _f32(b)


def decoder_weights(model) -> DecoderWeights:
    """DecoderWeights of a scratchgpt GPT (float32 dense linears)."""
    cfg = model.config
    tr = model.transformer
    C = cfg.n_embd
    lns = {"transformer.ln_f": _ln(tr.ln_f, C)}
    lins, adapters, prefixes = {}, {}, {}
    prefix_len = 0
    for i, block in enumerate(tr.h):
        p = f"transformer.h.{i}"
        lns[f"{p}.ln_1"] = _ln(block.ln_1, C)
        lns[f"{p}.ln_2"] = _ln(block.ln_2, C)
        for kind in LINEAR_KINDS:
            sub, leaf = kind.split(".")
            lins[f"{p}.{kind}"] = DenseLinear.from_weight(*dense_weight(getattr(getattr(block, sub), leaf)))
        for sub in ("attn", "mlp"):
            ad = getattr(getattr(block, sub), "adapter", None)
            if ad is not None:
                adapters[f"{p}.{sub}.adapter"] = (DenseLinear.from_weight(*dense_weight(ad.down)),
                                                  DenseLinear.from_weight(*dense_weight(ad.up)))
        pk = getattr(block.attn, "prefix_k", None)
        if pk is not None:
            prefixes[i] = (_f32(pk.data), _f32(block.attn.prefix_v.data))
            prefix_len = pk.data.shape[1]
    wte = _f32(tr.wte.weight.data)
    lins["lm_head"] = DenseLinear(wte)           # tied: logits = h wteᵀ, wte is already (out, in)
    return DecoderWeights(n_layer=cfg.n_layer, n_head=cfg.n_head, n_embd=C, block_size=cfg.block_size,
                          vocab_size=cfg.vocab_size, eps=float(cfg.layer_norm_eps), wte=wte,
                          wpe=_f32(tr.wpe.weight.data), layernorms=lns, linears=lins, adapters=adapters,
                          prefixes=prefixes, prefix_len=prefix_len,
                          head_dim=getattr(cfg, "head_size", C // cfg.n_head), smear=smear_weights(model))


def smear_weights(model):
    """(w (C,), b (1,)) float32 of a smear GPT's gate, None without smear."""
    if not getattr(model.config, "smear", False):
        return None
    sm = model.transformer.smear
    return _f32(sm.weight.data), _f32(sm.bias.data)


def as_decoder_weights(model_or_weights) -> DecoderWeights:
    """Accept a DecoderWeights as is, or anything with ``decoder_weights()`` / a GPT."""
    if isinstance(model_or_weights, DecoderWeights):
        return model_or_weights
    own = getattr(model_or_weights, "decoder_weights", None)
    if callable(own):
        return own()
    if hasattr(model_or_weights, "transformer") and hasattr(model_or_weights, "config"):
        return decoder_weights(model_or_weights)
    raise ConfigError(f"the engine needs a GPT or DecoderWeights, got {type(model_or_weights).__name__}")
