"""Parameter-efficient fine-tuning: LoRA, bottleneck Adapters and Prefix-tuning (tutorial §7.3, §9 Q4).

All three freeze every base weight and add a few new parameters; only those train.

LoRA (Hu et al., 2021). A frozen linear y = x W + b gains a low-rank update:
        y = x W + b + (alpha / r) · dropout(x) A B,      A (Cin, r), B (r, Cout)
    A ~ N(0, 1/r) and B = 0, so at step 0 the model is exactly the base model. ``merge`` folds
    the update into W (W' = W + (alpha/r) A B, one matmul at inference, no extra latency);
    ``unmerge`` puts the saved original W back — bit-exact, because we restore the copy instead
    of subtracting (W' − AB·s rounds differently from W in float32).

Adapters (Houlsby et al., 2019). After a sub-layer's output h (attention and MLP):
        h' = h + up(gelu(down(h))),     down: C -> m, up: m -> C (m small)
    ``up`` starts at zero, so the adapter starts as the identity.

Prefix-tuning (Li & Liang, 2021). Each layer gets P learned key and value vectors per head that
    every query may attend to, prepended to the sequence's own keys/values:
        K' = [Pk ; K], V' = [Pv ; V],  att = softmax(q K'^T / sqrt(HS) + mask),  y = att V'
    The mask lets query t see all P prefix slots and sequence positions <= t. Our fused
    ``causal_self_attention`` op has no prefix input, so on the CPU ``PrefixSelfAttention``
    computes attention from the composable ops (matmul, concat, softmax) — slower, but every
    piece has a tested backward, and with P = 0 it equals the fused op (tests/test_peft.py).
    On the GPU (``prefix_attention_fused``) the prefixes ride through the fused op as P extra
    rows in front of the sequence (tests/test_cuda_commands.py compares the two).

Wrapping keeps base parameter names: a LoRA layer replacing ``...attn.c_attn`` holds the very
same ``weight``/``bias`` Parameters under the same names and adds ``lora_A``/``lora_B``. So the
base part of a PEFT model's state dict is the base checkpoint, and ``peft_state_dict`` is
exactly the new tensors, saved separately (``save_peft``: safetensors + JSON).
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from .. import ops
from ..errors import CheckpointError, ConfigError
from .layers import Dropout, Linear
from .module import Module, Parameter, as_rng

PEFT_FILE = "peft.safetensors"
PEFT_CONFIG = "peft.json"


# ============================================================================ LoRA
class LoRALinear(Module):
    """A frozen ``Linear`` plus a trainable low-rank update (see module docstring)."""

    def __init__(self, base: Linear, rank: int, alpha: float, dropout: float = 0.0, rng=None):
        super().__init__()
        if rank < 1:
            raise ConfigError(f"LoRA rank must be >= 1, got {rank}")
        rng = as_rng(rng)
        self.in_features, self.out_features = base.in_features, base.out_features
        self.weight = base.weight          # (Cin, Cout) frozen, same Parameter object as the base
        self.bias = base.bias              # (Cout,) or None
        self.weight.requires_grad = False
        if self.bias is not None:
            self.bias.requires_grad = False
        dtype = base.weight.data.dtype
        self.rank = int(rank)
        self.alpha = float(alpha)
        self.scaling = self.alpha / self.rank
        self.lora_A = Parameter((rng.standard_normal((self.in_features, rank)) / math.sqrt(rank)).astype(dtype))
        self.lora_B = Parameter(np.zeros((rank, self.out_features), dtype=dtype))
        self.lora_dropout = Dropout(dropout, rng=rng)
        object.__setattr__(self, "_base", base)
        object.__setattr__(self, "_saved_weight", None)  # original W while merged

    @property
    def merged(self) -> bool:
        return self._saved_weight is not None

    def delta(self) -> np.ndarray:
        """(alpha/r) A B as an array (Cin, Cout)."""
        return (self.lora_A.data @ self.lora_B.data) * self.lora_A.data.dtype.type(self.scaling)

    def merge(self) -> None:
        if self.merged:
            return
        object.__setattr__(self, "_saved_weight", self.weight.data.copy())
        self.weight.data = self.weight.data + self.delta()

    def unmerge(self) -> None:
        if not self.merged:
            return
        self.weight.data = self._saved_weight
        object.__setattr__(self, "_saved_weight", None)

    def forward(self, x):                                            # x (..., Cin)
        y = ops.linear(x, self.weight, self.bias)                    # (..., Cout)
        if self.merged:
            return y
        h = ops.matmul(self.lora_dropout(x), self.lora_A)            # (..., r)
        h = ops.matmul(h, self.lora_B)                               # (..., Cout)
        return ops.add(y, ops.scale(h, self.scaling))

    def __repr__(self) -> str:
        return f"LoRALinear({self.in_features}, {self.out_features}, r={self.rank}, alpha={self.alpha})"


# ============================================================================ Adapters
class Adapter(Module):
    """Bottleneck h + up(gelu(down(h))); ``up`` starts at zero so it starts as the identity."""

    def __init__(self, n_embd: int, size: int, rng=None, dtype=np.float32):
        super().__init__()
        rng = as_rng(rng)
        self.down = Linear(n_embd, size, bias=True, rng=rng, dtype=dtype)
        self.up = Linear(size, n_embd, bias=True, rng=rng, dtype=dtype)
        self.up.weight.data[...] = 0

    def forward(self, h):                                            # (B, T, C)
        return ops.add(h, self.up(ops.gelu(self.down(h))))


class WithAdapter(Module):
    """Run a sub-layer, then an Adapter on its output. The sub-layer's own children are
    registered here under their original names, so base parameter names do not change."""

    def __init__(self, inner: Module, n_embd: int, size: int, rng=None):
        super().__init__()
        for name, m in inner._modules.items():
            setattr(self, name, m)
        for name, p in inner._parameters.items():
            setattr(self, name, p)
        object.__setattr__(self, "_inner", inner)
        dtype = next(iter(p.data.dtype for _, p in inner.named_parameters()), np.float32)
        self.adapter = Adapter(n_embd, size, rng=rng, dtype=dtype)

    def forward(self, x):
        return self.adapter(self._inner(x))


# ============================================================================ Prefix-tuning
def prefix_causal_bias(T: int, P: int, dtype) -> np.ndarray:
    """(T, P+T) additive mask: 0 where query t may look (all P prefix slots, positions <= t),
    a large negative number elsewhere (finfo.min/2: exp() underflows to exactly 0, no inf-inf)."""
    allowed = np.ones((T, P + T), dtype=bool)
    allowed[:, P:] = np.tril(np.ones((T, T), dtype=bool))
    return np.where(allowed, 0.0, np.finfo(dtype).min / 2).astype(dtype)


def prefix_attention(qkv, prefix_k, prefix_v, n_head: int):
    """Causal self-attention with learned key/value prefixes, from composable ops.

    qkv (B, T, 3C); prefix_k, prefix_v (NH, P, HS) -> (B, T, C), heads merged.
    """
    if getattr(qkv, "device", "cpu") == "cuda":
        return prefix_attention_fused(qkv, prefix_k, prefix_v, n_head)
    B, T, C3 = qkv.shape
    C = C3 // 3
    NH = n_head
    HS = C // NH
    P = prefix_k.shape[1]
    dtype = qkv.data.dtype

    def heads(t):                                                    # (B, T, C) -> (B, NH, T, HS)
        return ops.transpose(ops.reshape(t, (B, T, NH, HS)), (0, 2, 1, 3))

    q = heads(ops.getitem(qkv, (slice(None), slice(None), slice(0, C))))
    k = heads(ops.getitem(qkv, (slice(None), slice(None), slice(C, 2 * C))))
    v = heads(ops.getitem(qkv, (slice(None), slice(None), slice(2 * C, 3 * C))))
    if P > 0:
        # broadcast the (NH, P, HS) prefixes over the batch; the engine sums their grads back
        zeros = np.zeros((B, NH, P, HS), dtype=dtype)
        k = ops.concat([ops.add(prefix_k, zeros), k], axis=2)        # (B, NH, P+T, HS)
        v = ops.concat([ops.add(prefix_v, zeros), v], axis=2)        # (B, NH, P+T, HS)
    att = ops.matmul(q, ops.transpose(k, (0, 1, 3, 2)))               # (B, NH, T, P+T)
    att = ops.add(ops.scale(att, 1.0 / math.sqrt(HS)), prefix_causal_bias(T, P, dtype))
    att = ops.softmax(att, axis=-1)
    y = ops.matmul(att, v)                                           # (B, NH, T, HS)
    return ops.reshape(ops.transpose(y, (0, 2, 1, 3)), (B, T, C))    # (B, T, C)


def prefix_attention_fused(qkv, prefix_k, prefix_v, n_head: int):
    """The same attention through the fused causal op (what the GPU runs): the P prefix slots
    become P extra rows in front of each sequence, with their key and value parts set to the
    prefixes and a zero query. Causal attention over those P+T rows lets row P+t see every
    prefix slot and positions <= t — exactly the prefix mask — and the P extra output rows are
    dropped (their gradient is zero, so they add nothing to dK, dV). Autograd sums the prefix
    gradients over the batch through the concatenations.

    qkv (B, T, 3C); prefix_k, prefix_v (NH, P, HS) -> (B, T, C).
    """
    B, T, C3 = qkv.shape
    C = C3 // 3
    P = prefix_k.shape[1]
    if P == 0:
        return ops.causal_self_attention(qkv, n_head)

    def rows(p):                                                     # (NH, P, HS) -> (B, P, C)
        r = ops.reshape(ops.transpose(p, (1, 0, 2)), (1, P, C))
        return ops.concat([r] * B, axis=0) if B > 1 else r

    k, v = rows(prefix_k), rows(prefix_v)
    pre = ops.concat([ops.scale(k, 0.0), k, v], axis=2)              # (B, P, 3C): zero queries
    y = ops.causal_self_attention(ops.concat([pre, qkv], axis=1), n_head)   # (B, P+T, C)
    return ops.getitem(y, (slice(None), slice(P, None)))             # (B, T, C)


class PrefixSelfAttention(Module):
    """A GPT-2 CausalSelfAttention with ``prefix_len`` learned key/value slots per head."""

    def __init__(self, attn: Module, prefix_len: int, rng=None, std: float = 0.02):
        super().__init__()
        rng = as_rng(rng)
        if prefix_len < 0:
            raise ConfigError(f"prefix_len must be >= 0, got {prefix_len}")
        self.c_attn = attn.c_attn
        self.c_proj = attn.c_proj
        self.resid_dropout = attn.resid_dropout
        self.n_head = attn.n_head
        object.__setattr__(self, "_inner", attn)
        C = attn.c_attn.in_features
        HS = C // self.n_head
        dtype = attn.c_attn.weight.data.dtype
        self.prefix_len = int(prefix_len)
        self.prefix_k = Parameter((rng.standard_normal((self.n_head, prefix_len, HS)) * std).astype(dtype))
        self.prefix_v = Parameter((rng.standard_normal((self.n_head, prefix_len, HS)) * std).astype(dtype))

    def forward(self, x):                                            # (B, T, C)
        qkv = self.c_attn(x)                                         # (B, T, 3C)
        y = prefix_attention(qkv, self.prefix_k, self.prefix_v, self.n_head)
        return self.resid_dropout(self.c_proj(y))


# ============================================================================ apply / remove
_PEFT_PARAM_MARKERS = ("lora_A", "lora_B", ".adapter.", "prefix_k", "prefix_v")


def is_peft_name(name: str) -> bool:
    return any(m in name for m in _PEFT_PARAM_MARKERS)


def _replace_child(mod: Module, name: str, new: Module) -> None:
    """setattr, but keep the child's position so named_parameters() keeps its order."""
    order = list(mod._modules)
    setattr(mod, name, new)
    reg = mod._modules
    items = [(k, reg[k]) for k in order]
    reg.clear()
    reg.update(items)


def _blocks(model):
    try:
        return list(model.transformer.h)
    except AttributeError:
        raise ConfigError("PEFT expects a GPT (model.transformer.h blocks)") from None


def apply_peft(model, method: str, *, rank: int = 8, alpha: float = 16.0, dropout: float = 0.0,
               targets=("c_attn", "c_proj", "c_fc"), adapter_size: int = 32, prefix_len: int = 8,
               seed: int = 0) -> dict:
    """Freeze ``model`` and add ``method`` ("lora" | "adapter" | "prefix") layers in place.

    Returns the PEFT config dict (what ``save_peft`` writes to peft.json).
    """
    if getattr(model, "_peft", None):
        raise ConfigError(f"model already has {model._peft['method']} layers; remove_peft first")
    rng = np.random.default_rng(seed)
    for p in model.parameters():
        p.requires_grad = False
    n_embd = model.config.n_embd
    cfg = {"method": method, "seed": seed}
    if method == "lora":
        targets = tuple(targets)
        wrapped = 0
        for name, mod in list(model.named_modules()):
            for child_name, child in list(mod._modules.items()):
                if isinstance(child, Linear) and child_name in targets:
                    _replace_child(mod, child_name, LoRALinear(child, rank, alpha, dropout, rng))
                    wrapped += 1
        if wrapped == 0:
            raise ConfigError(f"LoRA targets {list(targets)} match no Linear layer "
                              f"(GPT-2 names: c_attn, c_proj, c_fc)")
        cfg.update(rank=rank, alpha=alpha, dropout=dropout, targets=list(targets))
    elif method == "adapter":
        for block in _blocks(model):
            _replace_child(block, "attn", WithAdapter(block.attn, n_embd, adapter_size, rng))
            _replace_child(block, "mlp", WithAdapter(block.mlp, n_embd, adapter_size, rng))
        cfg.update(adapter_size=adapter_size)
    elif method == "prefix":
        for block in _blocks(model):
            _replace_child(block, "attn", PrefixSelfAttention(block.attn, prefix_len, rng))
        cfg.update(prefix_len=prefix_len)
    else:
        raise ConfigError(f"PEFT method must be 'lora', 'adapter' or 'prefix', got {method!r}")
    object.__setattr__(model, "_peft", cfg)
    return cfg


def remove_peft(model) -> None:
    """Undo ``apply_peft``: put the original modules back (un-merging LoRA first) and unfreeze."""
    cfg = getattr(model, "_peft", None)
    if not cfg:
        return
    for name, mod in list(model.named_modules()):
        for child_name, child in list(mod._modules.items()):
            if isinstance(child, LoRALinear):
                child.unmerge()
                _replace_child(mod, child_name, child._base)
            elif isinstance(child, (WithAdapter, PrefixSelfAttention)):
                _replace_child(mod, child_name, child._inner)
    for p in model.parameters():
        p.requires_grad = True
    object.__setattr__(model, "_peft", None)


def merge_lora(model) -> int:
    """Fold every LoRA update into its base weight; returns how many layers were merged."""
    n = 0
    for _, m in model.named_modules():
        if isinstance(m, LoRALinear):
            m.merge()
            n += 1
    return n


def unmerge_lora(model) -> int:
    n = 0
    for _, m in model.named_modules():
        if isinstance(m, LoRALinear):
            m.unmerge()
            n += 1
    return n


def peft_state_dict(model) -> dict:
    from ..backend import to_host      # GPU parameters: numba device arrays have no .copy()
    return {n: (p.data.copy() if isinstance(p.data, np.ndarray) else to_host(p.data))
            for n, p in model.named_parameters() if is_peft_name(n)}


def count_parameters(model) -> dict:
    total = sum(p.data.size for p in model.parameters())
    trainable = sum(p.data.size for p in model.parameters() if p.requires_grad)
    return {"total": int(total), "trainable": int(trainable),
            "trainable_pct": round(100.0 * trainable / max(total, 1), 3)}


def save_peft(model, directory) -> Path:
    """peft.safetensors (the new tensors only) + peft.json (method and hyper-parameters)."""
    from safetensors.numpy import save_file
    cfg = getattr(model, "_peft", None)
    if not cfg:
        raise ConfigError("save_peft: the model has no PEFT layers (call apply_peft first)")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    save_file(peft_state_dict(model), str(directory / PEFT_FILE))
    with open(directory / PEFT_CONFIG, "w", encoding="utf-8") as f:
        json.dump({**cfg, "base_config": model.config.to_dict()}, f, indent=2)
    return directory


def load_peft(model, directory) -> dict:
    """Apply the PEFT layers described in ``directory``/peft.json to ``model`` and load their weights."""
    from safetensors.numpy import load_file
    directory = Path(directory)
    try:
        with open(directory / PEFT_CONFIG, encoding="utf-8") as f:
            cfg = json.load(f)
    except FileNotFoundError:
        raise CheckpointError(f"{directory}: no {PEFT_CONFIG} (not a PEFT directory)") from None
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{directory / PEFT_CONFIG}: not valid JSON ({e})") from None
    base_cfg = cfg.pop("base_config", None)
    if base_cfg is not None and base_cfg != model.config.to_dict():
        raise CheckpointError(f"{directory}: PEFT weights were trained on a base model with config {base_cfg}, "
                              f"this model has {model.config.to_dict()}")
    method = cfg.pop("method", None)
    kw = {"rank": cfg.get("rank", 8), "alpha": cfg.get("alpha", 16.0), "dropout": cfg.get("dropout", 0.0),
          "targets": tuple(cfg.get("targets", ("c_attn",))), "adapter_size": cfg.get("adapter_size", 32),
          "prefix_len": cfg.get("prefix_len", 8), "seed": cfg.get("seed", 0)}
    apply_peft(model, method, **kw)
    try:
        arrays = load_file(str(directory / PEFT_FILE))
    except FileNotFoundError:
        raise CheckpointError(f"{directory}: {PEFT_FILE} is missing") from None
    except Exception as e:
        raise CheckpointError(f"{directory / PEFT_FILE}: unreadable ({e})") from None
    own = {n: p for n, p in model.named_parameters() if is_peft_name(n)}
    if set(own) != set(arrays):
        raise CheckpointError(f"{directory / PEFT_FILE}: tensors {sorted(set(arrays) ^ set(own))[:4]} do not "
                              f"match the PEFT layers built from {PEFT_CONFIG}")
    for n, p in own.items():
        if arrays[n].shape != p.data.shape:
            raise CheckpointError(f"{directory / PEFT_FILE}: {n} has shape {arrays[n].shape}, expected {p.data.shape}")
        p.data = np.array(arrays[n], dtype=p.data.dtype, copy=True)
    return getattr(model, "_peft")
