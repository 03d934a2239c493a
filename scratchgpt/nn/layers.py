"""Basic layers: Linear, Embedding, LayerNorm, Dropout — thin Modules over scratchgpt.ops.

Initial values follow GPT-2: weights ~ N(0, 0.02), biases 0, LayerNorm weight 1 and bias 0.
Models pass one seeded ``rng`` down so that GPT(cfg, seed=0) is reproducible.
"""
from __future__ import annotations

import numpy as np

from .. import ops
from .module import Module, Parameter, as_rng

INIT_STD = 0.02  # GPT-2's initializer_range


def normal_param(rng, shape, std, dtype=np.float32) -> Parameter:
    data = as_rng(rng).standard_normal(shape, dtype=np.float32) * np.float32(std)
    return Parameter(data.astype(dtype, copy=False))


class Linear(Module):
    """y = x @ W + b with W of shape (in, out) — GPT-2's Conv1D layout, so HF weights load as is."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, rng=None,
                 std: float = INIT_STD, dtype=np.float32):
        super().__init__()
        self.in_features = int(in_features)
        self.out_features = int(out_features)
        self.weight = normal_param(rng, (in_features, out_features), std, dtype)  # (Cin, Cout)
        self.bias = Parameter(np.zeros(out_features, dtype=dtype)) if bias else None  # (Cout,)

    def forward(self, x):
        return ops.linear(x, self.weight, self.bias)

    def __repr__(self) -> str:
        return f"Linear({self.in_features}, {self.out_features}, bias={self.bias is not None})"


class Embedding(Module):
    """Lookup table: idx (B, T) ints -> weight[idx] (B, T, C)."""

    def __init__(self, num_embeddings: int, embedding_dim: int, rng=None, std: float = INIT_STD,
                 dtype=np.float32):
        super().__init__()
        self.num_embeddings = int(num_embeddings)
        self.embedding_dim = int(embedding_dim)
        self.weight = normal_param(rng, (num_embeddings, embedding_dim), std, dtype)  # (V, C)

    def forward(self, idx):
        return ops.embedding(np.asarray(idx), self.weight)

    def __repr__(self) -> str:
        return f"Embedding({self.num_embeddings}, {self.embedding_dim})"


class LayerNorm(Module):
    """Normalise the last dim to zero mean / unit variance, then scale and shift."""

    def __init__(self, dim: int, eps: float = 1e-5, bias: bool = True, dtype=np.float32):
        super().__init__()
        self.dim = int(dim)
        self.eps = float(eps)
        self.weight = Parameter(np.ones(dim, dtype=dtype))   # (C,)
        # bias=False: no parameter, no shift (the op takes b=None; a host array of zeros here
        # would put a CPU input into a GPU model's layernorm)
        self.bias = Parameter(np.zeros(dim, dtype=dtype)) if bias else None  # (C,)

    def forward(self, x):
        return ops.layernorm(x, self.weight, self.bias, eps=self.eps)

    def __repr__(self) -> str:
        return f"LayerNorm({self.dim}, eps={self.eps})"


class Dropout(Module):
    """Inverted dropout while training; the identity in eval mode (and when p == 0).

    It owns a seeded Generator so a training run's masks are reproducible.
    """

    def __init__(self, p: float = 0.0, rng=None):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p = float(p)
        self.rng = as_rng(rng)

    def forward(self, x):
        if not self.training or self.p == 0.0:
            return x
        return ops.dropout(x, self.p, rng=self.rng, training=True)

    def __repr__(self) -> str:
        return f"Dropout(p={self.p})"
