"""GPT: a decoder-only Transformer, GPT-2 compatible (weights, names, numerics).

    x_0   = wte[idx] + wpe[0..T-1]                          (B, T, C)  learned positions
    x_0  += σ(x_0[t]·w_s + b_s) · x_0[t-1]   (only with GPTConfig.smear; ops/smear_op.py)
    x_l+1 = x_l' + MLP(LN_2(x_l')),  x_l' = x_l + Attn(LN_1(x_l))     pre-LN blocks
    logits = LN_f(x_L) @ wte^T                               (B, T, V)  tied output layer
    loss   = mean cross-entropy over targets that are not masked out

The tutorial (§4.3.2) stacks two ``nn.Transformer`` encoder-decoders for "GPT"; a GPT is a single
causal stack like this one (chapters/ch4.md explains the difference).

Parameter names are GPT-2's (transformer.wte.weight, transformer.h.0.attn.c_attn.weight, ...),
linear weights are (in, out) like GPT-2's Conv1D, so HF checkpoints load by name without
transposes, and HF ``GPT2LMHeadModel.from_pretrained`` reads the directories we save.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .. import ops
from ..autograd import Tensor, no_grad
from ..backend import to_device
from ..errors import CheckpointError, ConfigError, DataError
from ..nn import Block, Dropout, Embedding, LayerNorm, Module, ModuleList, Parameter
from ..ops.cross_entropy_op import IGNORE_INDEX
from . import checkpoint as ckpt
from .config import GPTConfig


# GPT-2's activation names that all mean the tanh approximation of GELU we implement
_TANH_GELUS = ("gelu_new", "gelu_pytorch_tanh", "gelu_fast")


def check_token_ids(idx, vocab_size: int, name: str = "idx", max_len: int | None = None) -> np.ndarray:
    """Validate a (B, T) integer array of token ids; return it as a NumPy array."""
    idx = np.asarray(idx)
    if idx.ndim != 2 or not np.issubdtype(idx.dtype, np.integer):
        raise DataError(f"{name} must be a 2-D integer array (B, T), got shape {idx.shape} dtype {idx.dtype}")
    if idx.shape[1] == 0:
        raise DataError(f"{name} must hold at least one position, got shape {idx.shape}")
    if max_len is not None and idx.shape[1] > max_len:
        raise DataError(f"{name} has length {idx.shape[1]} > block_size {max_len}")
    lo, hi = int(idx.min()), int(idx.max())
    if lo < 0 or hi >= vocab_size:
        raise DataError(f"{name} holds token id {lo if lo < 0 else hi} outside [0, {vocab_size})")
    return idx


def masked_targets(targets, loss_mask, shape, name: str = "targets") -> np.ndarray:
    """Targets with ignore_index where loss_mask == 0 (only those positions stop counting)."""
    targets = np.asarray(targets)
    if targets.shape != tuple(shape) or not np.issubdtype(targets.dtype, np.integer):
        raise DataError(f"{name} must be an integer array of shape {tuple(shape)}, got {targets.shape} "
                        f"{targets.dtype}")
    if loss_mask is None:
        return targets
    mask = np.asarray(loss_mask)
    if mask.shape != targets.shape:
        raise DataError(f"loss_mask must have the shape of {name} {targets.shape}, got {mask.shape}")
    return np.where(mask.astype(bool), targets, IGNORE_INDEX)


class Smear(Module):
    """The smear gate's parameters: weight (C,), bias (1,), both zero at init."""

    def __init__(self, n_embd: int):
        super().__init__()
        self.weight = Parameter(np.zeros(n_embd, dtype=np.float32))   # (C,)
        self.bias = Parameter(np.zeros(1, dtype=np.float32))          # (1,)


class _Transformer(Module):
    """The trunk, a separate module only so the parameter names get GPT-2's ``transformer.`` prefix."""

    def __init__(self, cfg: GPTConfig, rng):
        super().__init__()
        self.wte = Embedding(cfg.vocab_size, cfg.n_embd, rng=rng)
        self.wpe = Embedding(cfg.block_size, cfg.n_embd, rng=rng)
        self.drop = Dropout(cfg.dropout, rng=rng)
        if cfg.smear:
            # gate starts at σ(0) = 0.5 for every position: the previous token is visible from step 0
            self.smear = Smear(cfg.n_embd)
        # GPT-2 scales the init of the projections that write into the residual stream by
        # 1/sqrt(2 * n_layer): each layer adds two of them, so the stream's variance stays O(1).
        proj_std = 0.02 / math.sqrt(2 * cfg.n_layer)
        self.h = ModuleList(Block(cfg.n_embd, cfg.n_head, cfg.dropout, cfg.bias, rng, proj_std,
                                  cfg.layer_norm_eps, cfg.n_inner, cfg.head_dim) for _ in range(cfg.n_layer))
        self.ln_f = LayerNorm(cfg.n_embd, eps=cfg.layer_norm_eps, bias=cfg.bias)


class GPT(Module):
    """Decoder-only GPT-2. ``GPT(cfg, seed=0)`` is deterministic."""

    def __init__(self, cfg: GPTConfig, seed: int | None = 0, device: str = "cpu"):
        super().__init__()
        if not isinstance(cfg, GPTConfig):
            raise ConfigError(f"GPT expects a GPTConfig, got {type(cfg).__name__}")
        self.config = cfg
        self.transformer = _Transformer(cfg, np.random.default_rng(seed))
        if device != "cpu":
            self.to(device)   # initialised on the host (same seed, same weights), then moved

    # ----------------------------------------------------------------- forward
    def hidden_states(self, idx) -> Tensor:
        """Final-LayerNorm output (B, T, C), before the output layer."""
        cfg = self.config
        tr = self.transformer
        idx = self._on_device(check_token_ids(idx, cfg.vocab_size, "idx", cfg.block_size))
        x = ops.token_position_embedding(idx, tr.wte.weight, tr.wpe.weight)  # (B, T, C)
        if cfg.smear:
            x = ops.smear(x, tr.smear.weight, tr.smear.bias)                 # (B, T, C)
        x = tr.drop(x)
        for block in tr.h:
            x = block(x)
        return tr.ln_f(x)                                                    # (B, T, C)

    def forward(self, idx, targets=None, loss_mask=None):
        """(logits (B, T, V) Tensor, loss scalar Tensor or None).

        ``loss_mask`` (B, T) of 0/1 marks which targets count (e.g. only assistant tokens in SFT).
        A mask with other values is a *weighted* mask: targets with mask 0 do not count, the others
        count with their mask value as weight (the loss is the weighted mean, ``ops.cross_entropy``
        with ``weights``; e.g. 3 on the tokens of slot values a reply must copy).
        """
        x = self.hidden_states(idx)
        # tied output layer: logits = x @ wte^T; the transpose is a view, BLAS reads it as is
        logits = ops.linear(x, ops.transpose(self.transformer.wte.weight))    # (B, T, V)
        if targets is None:
            if loss_mask is not None:
                raise DataError("loss_mask was given without targets")
            return logits, None
        tgt = masked_targets(targets, loss_mask, tuple(logits.shape)[:2])
        if self.device != "cpu":   # checked on the host before the copy: the GPU kernel cannot report it
            V = self.config.vocab_size
            bad = tgt[(tgt != IGNORE_INDEX) & ((tgt < 0) | (tgt >= V))]
            if bad.size:
                raise DataError(f"targets hold id {int(bad[0])} outside [0, {V})")
        weights = None
        if loss_mask is not None:
            m = np.asarray(loss_mask)
            if ((m != 0) & (m != 1)).any():
                weights = m
        return logits, ops.cross_entropy(logits, self._on_device(tgt), ignore_index=IGNORE_INDEX, weights=weights)

    def _on_device(self, ids: np.ndarray):
        """The edge where a batch enters the model: token ids are copied to the GPU here, once."""
        return ids if self.device == "cpu" else to_device(ids, self.device)

    # ----------------------------------------------------------------- generate
    def generate(self, idx, max_new_tokens: int, temperature: float = 1.0, top_k=None, top_p=None,
                 seed=None) -> np.ndarray:
        """Append ``max_new_tokens`` sampled tokens to each row of ``idx`` (B, T); return (B, T+N).

        Simple and slow on purpose (recomputes the whole cropped context each step); the fast path
        is the KV-cache engine, ``scratchgpt.infer.Engine``. temperature 0 means greedy.
        """
        idx = np.asarray(idx)
        if idx.ndim == 1:
            idx = idx[None]
        idx = check_token_ids(idx, self.config.vocab_size, "idx")
        if not isinstance(max_new_tokens, (int, np.integer)) or max_new_tokens < 0:
            raise DataError(f"max_new_tokens must be a non-negative int, got {max_new_tokens!r}")
        sample = _sampler()
        rng = np.random.default_rng(seed)
        was_training = self.training
        self.eval()
        try:
            with no_grad():
                for _ in range(int(max_new_tokens)):
                    cond = idx[:, -self.config.block_size:]                  # crop to the context
                    x = self.hidden_states(cond)
                    last = x.data[:, -1, :]                                   # (B, C)
                    logits = last @ self.transformer.wte.weight.data.T       # (B, V)
                    nxt = np.array([sample(logits[b].astype(np.float32), temperature=temperature,
                                           top_k=top_k, top_p=top_p, rng=rng)
                                    for b in range(idx.shape[0])], dtype=idx.dtype)
                    idx = np.concatenate([idx, nxt[:, None]], axis=1)
        finally:
            self.train(was_training)
        return idx

    # ---------------------------------------------------------------- save/load
    def hf_config(self) -> dict:
        """config.json: HF GPT-2 fields (so transformers can load it) plus our own config."""
        c = self.config
        # a smear model is not a GPT-2: give it a model_type transformers refuses to load as one
        return {
            "model_type": "scratchgpt_smear_gpt" if c.smear else "gpt2",
            "architectures": [] if c.smear else ["GPT2LMHeadModel"],
            "vocab_size": c.vocab_size,
            "n_positions": c.block_size,
            "n_ctx": c.block_size,
            "n_embd": c.n_embd,
            "n_layer": c.n_layer,
            "n_head": c.n_head,
            "n_inner": c.n_inner,
            "layer_norm_epsilon": c.layer_norm_eps,
            "activation_function": "gelu_new",
            "resid_pdrop": c.dropout,
            "embd_pdrop": c.dropout,
            "attn_pdrop": 0.0,  # we have no dropout on attention probabilities
            "scale_attn_weights": True,
            "tie_word_embeddings": True,
            # the tokenizer owns the special ids; null stops HF defaulting to GPT-2's 50256
            "bos_token_id": None,
            "eos_token_id": None,
            "scratchgpt_model": "gpt",
            "scratchgpt_config": c.to_dict(),
        }

    def save(self, directory) -> Path:
        """Write config.json + model.safetensors. (bias=False models load with GPT.load only:
        HF GPT-2 always has biases.)"""
        return ckpt.save_model(self, directory, self.hf_config())

    @classmethod
    def load(cls, directory) -> "GPT":
        """Load a directory written by ``save`` (or an HF GPT-2 directory)."""
        directory = Path(directory)
        meta = ckpt.load_json(directory / ckpt.CONFIG_NAME)
        if "scratchgpt_config" in meta:
            if meta.get("scratchgpt_model", "gpt") != "gpt":
                raise CheckpointError(f"{directory}: holds a {meta.get('scratchgpt_model')!r} model, not a GPT")
            cfg = GPTConfig.from_dict(meta["scratchgpt_config"])
        elif "model_type" not in meta and "block_size" in meta:
            cfg = GPTConfig.from_dict(meta)      # a bare GPTConfig dict (as the trainer writes)
        else:
            return cls.from_pretrained(directory)
        model = cls(cfg, seed=0)
        ckpt.load_weights_into(model, directory)
        return model

    @classmethod
    def from_pretrained(cls, hf_dir) -> "GPT":
        """Load an HF GPT-2 directory (config.json + model.safetensors), e.g. from save_pretrained."""
        hf_dir = Path(hf_dir)
        meta = ckpt.load_json(hf_dir / ckpt.CONFIG_NAME)
        cfg = config_from_hf(meta)
        model = cls(cfg, seed=0)
        path = hf_dir / ckpt.WEIGHTS_NAME
        tensors = ckpt.load_safetensors(path)
        ours = {}
        lm_head = None
        for name, arr in tensors.items():
            key = name if name.startswith("transformer.") else (
                None if name.startswith("lm_head.") else "transformer." + name)
            if name == "lm_head.weight":
                lm_head = arr
                continue
            if key is None:
                raise CheckpointError(f"{path.name}: unexpected tensor {name!r}")
            # HF stores the causal mask as buffers named attn.bias / attn.masked_bias: not weights
            if key.endswith(".attn.bias") or key.endswith(".attn.masked_bias"):
                continue
            ours[key] = arr
        params = dict(model.named_parameters())
        ckpt.check_tensors(ours, {k: p.data.shape for k, p in params.items()}, where=path.name)
        wte = ours["transformer.wte.weight"]
        if lm_head is not None and (lm_head.shape != wte.shape or not np.array_equal(lm_head, wte)):
            raise CheckpointError(f"{path.name}: tensor 'lm_head.weight' differs from 'transformer.wte.weight'; "
                                  "only GPT-2 models with tied embeddings are supported")
        for k, p in params.items():
            p.data[...] = ours[k]
        return model


def config_from_hf(meta: dict) -> GPTConfig:
    """GPTConfig from an HF GPT-2 config.json dict; refuse variants we would compute differently."""
    if meta.get("model_type", "gpt2") != "gpt2":
        raise ConfigError(f"config.json: model_type {meta.get('model_type')!r} is not 'gpt2'")
    act = meta.get("activation_function", "gelu_new")
    if act not in _TANH_GELUS:
        raise ConfigError(f"config.json: activation_function {act!r} is not supported; expected one of "
                          f"{list(_TANH_GELUS)} (GELU, tanh approximation)")
    for key, ok in (("scale_attn_weights", True), ("scale_attn_by_inverse_layer_idx", False),
                    ("reorder_and_upcast_attn", False)):
        if key in meta and bool(meta[key]) != ok:
            raise ConfigError(f"config.json: {key}={meta[key]!r} is not supported (expected {ok})")
    n_embd = meta.get("n_embd", 768)
    n_inner = meta.get("n_inner")
    if n_inner == 4 * n_embd:
        n_inner = None
    if meta.get("tie_word_embeddings", True) is False:
        raise ConfigError("config.json: tie_word_embeddings=false is not supported (GPT ties lm_head to wte)")
    try:
        return GPTConfig(vocab_size=meta.get("vocab_size", 50257), block_size=meta.get("n_positions", 1024),
                         n_layer=meta.get("n_layer", 12), n_head=meta.get("n_head", 12), n_embd=n_embd,
                         dropout=0.0, bias=True, layer_norm_eps=float(meta.get("layer_norm_epsilon", 1e-5)),
                         n_inner=n_inner)
    except ConfigError as e:
        raise ConfigError(f"config.json: {e}") from None


# -------------------------------------------------------------------- sampling
def _sampler():
    """The Cython sampler, or its NumPy twin (same tokens for the same seed) if it is not built."""
    try:
        from ..sampling._sampler import sample
    except ImportError:
        from ..sampling import sample_ref as sample
    return sample
