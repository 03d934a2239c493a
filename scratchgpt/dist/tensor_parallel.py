"""Tensor-parallel inference: each of N ranks holds 1/N of every block's weights (Megatron split).

In a GPT-2 block the two matmul pairs split without any communication inside them:

    attention   qkv = h W_attn   column-parallel: rank r computes the q, k, v of its NH/N heads
                y   = attn(qkv)  each head is independent: rank r attends over its own heads,
                                 with a KV cache of its own heads only (1/N of the cache too)
                a   = y W_proj   row-parallel: rank r multiplies its heads' slice of y by its
                                 rows of W_proj — a *partial sum* of the full output (C wide)
                a   = allreduce(a)           <- the one communication of the sub-layer
    MLP         f   = gelu(h W_fc)   column-parallel (GELU is elementwise, so no exchange)
                a   = f W_proj       row-parallel partial sum
                a   = allreduce(a)           <- and the other one

So a block costs two allreduces of (rows, C) float32 — "one per block" in Megatron's counting
of the pair — and everything else (embeddings, LayerNorms, residual adds, lm_head, sampling)
runs replicated on identical numbers, so every rank picks the same token. Biases of the
row-parallel products are added by rank 0 only (the allreduce would add them N times).

``tensor_parallel_weights(weights, world)`` turns the engine's ``DecoderWeights`` (infer/weights.py)
into this rank's share; the unchanged ``infer.Engine`` runs it, because a row-parallel linear is
just a linear (infer/linear.py protocol) that allreduces its output. Embeddings and lm_head stay
replicated: splitting the vocabulary too would save V·C per rank but needs a distributed softmax
and argmax for sampling — not worth it at our sizes (GPT-2 124M: 38 of 124M parameters).
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..errors import ConfigError
from ..infer.linear import DenseLinear
from ..infer.weights import DecoderWeights


class RowParallelLinear:
    """A linear over this rank's slice of the input features; the outputs are summed over ranks."""

    def __init__(self, local: DenseLinear, world):
        self.local = local
        self.world = world
        self.in_features = local.in_features          # this rank's slice
        self.out_features = local.out_features
        self.nbytes = local.nbytes
        self.allreduce_calls = 0

    def __call__(self, x, out):                        # x (M, in/N) -> out (M, out), summed over ranks
        self.local(x, out)
        self.world.allreduce_(out, "tensor-parallel allreduce")
        self.allreduce_calls += 1
        return out

    def __repr__(self) -> str:
        return f"RowParallelLinear({self.local!r}, ranks={self.world.size})"


def _dense(lin, name) -> DenseLinear:
    if not isinstance(lin, DenseLinear):
        raise ConfigError(f"tensor parallel splits float32 dense models; {name} is {type(lin).__name__} "
                          "(quantized models run on one process)")
    return lin


def split_ranges(total: int, size: int, what: str):
    if total % size:
        raise ConfigError(f"--tp {size}: the model's {what} ({total}) is not divisible by {size}")
    n = total // size
    return [(r * n, (r + 1) * n) for r in range(size)]


def tensor_parallel_weights(w: DecoderWeights, world) -> DecoderWeights:
    """This rank's share of ``w`` (see the module docstring). ``world``: rank, size, allreduce_."""
    r, N = world.rank, world.size
    NH, HS, A = w.n_head, w.head_dim, w.attn_width
    h0, h1 = split_ranges(NH, N, "number of heads")[r]
    lins = {"lm_head": w.linears["lm_head"]}
    for i in range(w.n_layer):
        p = f"transformer.h.{i}"
        attn = _dense(w.linear(f"{p}.attn.c_attn"), f"{p}.attn.c_attn")
        rows = np.concatenate([np.arange(part * A + h0 * HS, part * A + h1 * HS) for part in range(3)])
        lins[f"{p}.attn.c_attn"] = DenseLinear(attn.wt[rows], None if attn.bias is None else attn.bias[rows])
        proj = _dense(w.linear(f"{p}.attn.c_proj"), f"{p}.attn.c_proj")            # wt (C, A)
        lins[f"{p}.attn.c_proj"] = RowParallelLinear(
            DenseLinear(proj.wt[:, h0 * HS:h1 * HS], proj.bias if r == 0 else None), world)
        fc = _dense(w.linear(f"{p}.mlp.c_fc"), f"{p}.mlp.c_fc")                     # wt (H, C)
        f0, f1 = split_ranges(fc.out_features, N, "MLP width")[r]
        lins[f"{p}.mlp.c_fc"] = DenseLinear(fc.wt[f0:f1], None if fc.bias is None else fc.bias[f0:f1])
        mp = _dense(w.linear(f"{p}.mlp.c_proj"), f"{p}.mlp.c_proj")                 # wt (C, H)
        lins[f"{p}.mlp.c_proj"] = RowParallelLinear(
            DenseLinear(mp.wt[:, f0:f1], mp.bias if r == 0 else None), world)
    prefixes = {i: (k[h0:h1].copy(), v[h0:h1].copy()) for i, (k, v) in w.prefixes.items()}
    return replace(w, n_head=h1 - h0, head_dim=HS, linears=lins, prefixes=prefixes,
                   kind=f"{w.kind}, tensor parallel {r + 1}/{N}")


def block_weight_bytes(w: DecoderWeights) -> int:
    """Bytes of the block linears (what tensor parallelism splits), without embeddings/lm_head."""
    return sum(int(lin.nbytes) for name, lin in w.linears.items() if name != "lm_head")


def load_tensor_parallel(model_dir, world):
    """(DecoderWeights share, tokenizer, info) for this rank: the model is read, split, and the
    full copy dropped, so what stays resident is this rank's share plus the replicated parts."""
    import gc

    from ..infer import load_for_inference
    from ..infer.weights import as_decoder_weights
    model, tok = load_for_inference(model_dir)
    full = as_decoder_weights(model)
    share = tensor_parallel_weights(full, world)
    info = {"full_block_bytes": block_weight_bytes(full), "rank_block_bytes": block_weight_bytes(share),
            "replicated_bytes": int(full.wte.nbytes + full.wpe.nbytes)}
    del model, full
    gc.collect()
    info["rss_bytes"] = resident_bytes()
    return share, tok, info


def resident_bytes() -> int:
    """This process's resident memory now (Linux /proc; 0 where unavailable)."""
    try:
        with open("/proc/self/statm") as f:
            import os
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0
