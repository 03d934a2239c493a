"""Pruning a GPT: unstructured magnitude pruning, and structured pruning of attention heads and
MLP neurons into a smaller dense model; optional short recovery fine-tuning.

Unstructured (``magnitude_prune``): zero the smallest-|w| entries of the block matmul weights
(attn.c_attn, attn.c_proj, mlp.c_fc, mlp.c_proj; not embeddings, LayerNorm or biases), either
``scope="layer"`` — every matrix loses exactly round(s * its size) entries — or
``scope="global"`` — exactly round(s * total) entries over all of them, so matrices with many
small weights lose more. Exact: ties at the threshold are broken by position (a stable sort),
never by "everything <= threshold". The matrices keep their shape: our dense kernels gain no
speed from zeros (the report shows it); what it buys is a model that compresses and a measure
of how much of the network is redundant.

Structured (``prune_heads`` / ``prune_neurons``): in every layer keep the same number of
heads (or MLP neurons) — the most important ones — and slice the weights into a GPT with
``n_head`` fewer heads of the same ``head_dim`` (GPTConfig.head_dim) or a narrower MLP
(GPTConfig.n_inner). The count is the same in every layer so the engine's KV cache stays one
array; the choice of WHICH heads is per layer. Importance of head h in layer l:
    activation:  mean over calibration tokens of || y_h W_proj[h] ||   (its write into the residual)
    weight:      || W_v[:, h] ||_F · || W_proj[h, :] ||_F             (no data needed)
and of MLP neuron j: mean |gelu(x W_fc + b)_j| · || W_proj[j, :] || (activation), or
|| W_fc[:, j] || · || W_proj[j, :] || (weight). Removing head h is the same function as zeroing
its rows of c_proj (its output then writes nothing), and removing neuron j the same as zeroing
row j of mlp.c_proj: ``structured_mask`` builds that masked model, which the tests compare
with the smaller one.
"""
from __future__ import annotations

import numpy as np

from .. import ops
from ..autograd import no_grad
from ..errors import ConfigError
from ..models import GPT

BLOCK_KINDS = ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")
METHODS = ("magnitude", "heads", "neurons")


def _check_sparsity(s) -> float:
    if isinstance(s, bool) or not isinstance(s, (int, float)) or not 0.0 <= s < 1.0:
        raise ConfigError(f"sparsity must be a number in [0, 1), got {s!r}")
    return float(s)


def _linear(block, kind):
    sub, leaf = kind.split(".")
    return getattr(getattr(block, sub), leaf)


def block_weights(model, kinds=BLOCK_KINDS) -> dict:
    """name -> the Parameter of each block matmul weight, in layer order."""
    out = {}
    for i, block in enumerate(model.transformer.h):
        for kind in kinds:
            out[f"transformer.h.{i}.{kind}.weight"] = _linear(block, kind).weight
    return out


# ----------------------------------------------------------------------------- unstructured
def magnitude_masks(model, sparsity: float, scope: str = "global", kinds=BLOCK_KINDS) -> dict:
    """name -> bool keep-mask (True = kept) with exactly round(sparsity * n) entries dropped."""
    sparsity = _check_sparsity(sparsity)
    if scope not in ("global", "layer"):
        raise ConfigError(f"scope must be 'global' or 'layer', got {scope!r}")
    params = block_weights(model, kinds)
    masks = {}
    if scope == "layer":
        for name, p in params.items():
            masks[name] = _keep_largest(np.abs(p.data).ravel(), round(sparsity * p.data.size)).reshape(p.data.shape)
        return masks
    flat = np.concatenate([np.abs(p.data).ravel() for p in params.values()])
    keep = _keep_largest(flat, round(sparsity * flat.size))
    at = 0
    for name, p in params.items():
        masks[name] = keep[at: at + p.data.size].reshape(p.data.shape)
        at += p.data.size
    return masks


def _keep_largest(values: np.ndarray, n_drop: int) -> np.ndarray:
    """Bool array: False at the n_drop smallest values (ties: the earlier position goes first)."""
    keep = np.ones(values.size, dtype=bool)
    if n_drop:
        keep[np.argsort(values, kind="stable")[:n_drop]] = False
    return keep


def apply_masks(model, masks: dict) -> None:
    params = dict(model.named_parameters())
    for name, m in masks.items():
        params[name].data *= m


def magnitude_prune(model, sparsity: float, scope: str = "global", kinds=BLOCK_KINDS) -> dict:
    """Zero the smallest weights in place; return the masks (recovery training keeps them)."""
    masks = magnitude_masks(model, sparsity, scope, kinds)
    apply_masks(model, masks)
    return masks


def sparsity_of(model, kinds=BLOCK_KINDS) -> float:
    ps = block_weights(model, kinds).values()
    return float(sum(int((p.data == 0).sum()) for p in ps) / sum(p.data.size for p in ps))


# ----------------------------------------------------------------------------- importance
def _head_split(cfg):
    return cfg.n_head, cfg.head_size, cfg.attn_dim


def importance(model, calib_idx=None) -> tuple[np.ndarray, np.ndarray]:
    """(heads (L, NH), neurons (L, H)) importance scores; by activations on ``calib_idx`` (B, T)
    token ids when given, else by weight norms."""
    cfg = model.config
    NH, HS, A = _head_split(cfg)
    L = cfg.n_layer
    heads = np.zeros((L, NH))
    neurons = np.zeros((L, cfg.mlp_dim))
    blocks = list(model.transformer.h)
    if calib_idx is None:
        for i, b in enumerate(blocks):
            wv = b.attn.c_attn.weight.data[:, 2 * A:].reshape(cfg.n_embd, NH, HS)       # (C, NH, HS)
            wo = b.attn.c_proj.weight.data.reshape(NH, HS, cfg.n_embd)                   # (NH, HS, C)
            heads[i] = np.sqrt((wv.astype(np.float64) ** 2).sum(axis=(0, 2)) * (wo.astype(np.float64) ** 2).sum(axis=(1, 2)))
            neurons[i] = (np.linalg.norm(b.mlp.c_fc.weight.data.astype(np.float64), axis=0)
                          * np.linalg.norm(b.mlp.c_proj.weight.data.astype(np.float64), axis=1))
        return heads, neurons
    tr = model.transformer
    was = model.training
    model.eval()
    try:
        with no_grad():
            idx = np.asarray(calib_idx)
            x = ops.token_position_embedding(idx, tr.wte.weight, tr.wpe.weight)           # (B, T, C)
            if getattr(cfg, "smear", False):                                              # as GPT.hidden_states
                x = ops.smear(x, tr.smear.weight, tr.smear.bias)
            for i, b in enumerate(blocks):                # Block.forward, opened up (eval: no dropout)
                y = ops.causal_self_attention(b.attn.c_attn(b.ln_1(x)), b.attn.n_head)   # (B, T, A)
                wo = b.attn.c_proj.weight.data.reshape(NH, HS, cfg.n_embd)
                contrib = np.einsum("nhs,hsc->nhc", y.data.reshape(-1, NH, HS), wo)       # (BT, NH, C)
                heads[i] = np.linalg.norm(contrib, axis=2).mean(axis=0)
                x = ops.add(x, b.attn.c_proj(y))
                h = ops.gelu(b.mlp.c_fc(b.ln_2(x)))                                        # (B, T, H)
                neurons[i] = (np.abs(h.data.reshape(-1, cfg.mlp_dim)).mean(axis=0)
                              * np.linalg.norm(b.mlp.c_proj.weight.data, axis=1))
                x = ops.add(x, b.mlp.c_proj(h))
    finally:
        model.train(was)
    return heads, neurons


def _keep_top(scores: np.ndarray, n_keep: int) -> np.ndarray:
    """Per row, the indices of the n_keep largest scores, ascending (ties: the lower index wins)."""
    order = np.argsort(-scores, axis=1, kind="stable")[:, :n_keep]
    return np.sort(order, axis=1)


def _n_keep(total: int, sparsity: float, what: str) -> int:
    keep = total - round(_check_sparsity(sparsity) * total)
    if keep < 1:
        raise ConfigError(f"sparsity {sparsity} would remove every {what}; keep at least one")
    return keep


# ----------------------------------------------------------------------------- structured
def _copy_params(src, dst, skip=()):
    sp = dict(src.named_parameters())
    for name, p in dst.named_parameters():
        if name not in skip:
            p.data[...] = sp[name].data


def prune_heads(model, sparsity: float, calib_idx=None):
    """(smaller GPT, kept head indices (L, k)): k = NH - round(sparsity * NH) heads per layer."""
    cfg = model.config
    NH, HS, A = _head_split(cfg)
    k = _n_keep(NH, sparsity, "attention head")
    scores, _ = importance(model, calib_idx)
    kept = _keep_top(scores, k)                                                           # (L, k)
    new = GPT(cfg.replace(n_head=k, head_dim=HS), seed=0)
    skip = set()
    for i, (ob, nb) in enumerate(zip(model.transformer.h, new.transformer.h)):
        cols = (kept[i][:, None] * HS + np.arange(HS)).ravel()                           # (k*HS,)
        qkv_cols = np.concatenate([cols, A + cols, 2 * A + cols])
        nb.attn.c_attn.weight.data[...] = ob.attn.c_attn.weight.data[:, qkv_cols]
        nb.attn.c_proj.weight.data[...] = ob.attn.c_proj.weight.data[cols, :]
        skip |= {f"transformer.h.{i}.attn.c_attn.weight", f"transformer.h.{i}.attn.c_proj.weight"}
        if cfg.bias:
            nb.attn.c_attn.bias.data[...] = ob.attn.c_attn.bias.data[qkv_cols]
            skip.add(f"transformer.h.{i}.attn.c_attn.bias")
    _copy_params(model, new, skip)
    return new, kept


def prune_neurons(model, sparsity: float, calib_idx=None):
    """(smaller GPT, kept neuron indices (L, k)): k = H - round(sparsity * H) MLP neurons per layer."""
    cfg = model.config
    H = cfg.mlp_dim
    k = _n_keep(H, sparsity, "MLP neuron")
    _, scores = importance(model, calib_idx)
    kept = _keep_top(scores, k)
    new = GPT(cfg.replace(n_inner=k), seed=0)
    skip = set()
    for i, (ob, nb) in enumerate(zip(model.transformer.h, new.transformer.h)):
        nb.mlp.c_fc.weight.data[...] = ob.mlp.c_fc.weight.data[:, kept[i]]
        nb.mlp.c_proj.weight.data[...] = ob.mlp.c_proj.weight.data[kept[i], :]
        skip |= {f"transformer.h.{i}.mlp.c_fc.weight", f"transformer.h.{i}.mlp.c_proj.weight"}
        if cfg.bias:
            nb.mlp.c_fc.bias.data[...] = ob.mlp.c_fc.bias.data[kept[i]]
            skip.add(f"transformer.h.{i}.mlp.c_fc.bias")
    _copy_params(model, new, skip)
    return new, kept


def structured_mask(model, what: str, kept: np.ndarray):
    """A copy of ``model`` with the removed heads ('heads') or neurons ('neurons') switched off by
    zeroing their rows of c_proj: the function the smaller model must compute."""
    masked = GPT(model.config, seed=0)
    _copy_params(model, masked)
    cfg = model.config
    for i, b in enumerate(masked.transformer.h):
        if what == "heads":
            NH, HS, _ = _head_split(cfg)
            off = np.setdiff1d(np.arange(NH), kept[i])
            rows = (off[:, None] * HS + np.arange(HS)).ravel()
            b.attn.c_proj.weight.data[rows, :] = 0.0
        elif what == "neurons":
            off = np.setdiff1d(np.arange(cfg.mlp_dim), kept[i])
            b.mlp.c_proj.weight.data[off, :] = 0.0
        else:
            raise ConfigError(f"structured_mask: what must be 'heads' or 'neurons', got {what!r}")
    return masked


# ----------------------------------------------------------------------------- recovery
def recover(model, tok, data_dir, steps: int, out_dir, masks: dict | None = None, lr: float = 1e-3,
            batch_size: int = 8, seq_len: int = 128, progress: bool = True, log=print):
    """Short SFT on ``data_dir``'s sft_train shard with the project's Trainer; ``masks`` (from
    magnitude pruning) are re-applied after every step so pruned weights stay zero."""
    from ..data.batches import SFTBatches
    from ..train.eval_batches import conversation_eval_batches
    from ..train.config import TrainConfig
    from ..train.runs import sft_examples
    from ..train.trainer import Trainer
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ConfigError(f"recovery steps must be a positive int, got {steps!r}")
    pad = tok.special_tokens.get("<|pad|>", 0)
    seq_len = min(seq_len, model.config.block_size)
    train = sft_examples(data_dir, "train", tok)
    val = sft_examples(data_dir, "val", tok)
    cfg = TrainConfig(lr=lr, min_lr=lr / 10, warmup_steps=min(10, steps), max_steps=steps,
                      batch_size=batch_size, seq_len=seq_len, eval_every=max(steps, 1), eval_batches=4,
                      weight_decay=0.0, progress=progress, log_every=max(1, steps // 5))
    batches = SFTBatches(train, batch_size, seq_len, seed=cfg.seed, pad_id=pad)
    val_b = conversation_eval_batches([val[i] for i in range(len(val))], batch_size, seq_len, pad)[:4]
    on_step = None
    if masks:
        def on_step(trainer, info):
            apply_masks(trainer.model, masks)
    trainer = Trainer(model, cfg, batches, val_b, out_dir, log=log, extra_state={"kind": "prune-recovery"})
    res = trainer.fit(desc="recover", on_step=on_step)
    if masks:
        apply_masks(model, masks)
    model.eval()
    return res
