"""Model configurations: frozen dataclasses, validated on construction (ConfigError on bad values).

Field names follow nanoGPT (vocab_size, block_size, n_layer, n_head, n_embd, dropout, bias) so
the numbers read the same as in the papers and the tutorial.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ..errors import ConfigError
from ..ops.attention import check_heads


def _check_int(cfg, name: str, minimum: int = 1) -> None:
    value = getattr(cfg, name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{type(cfg).__name__}.{name} must be an int, got {value!r}")
    if value < minimum:
        raise ConfigError(f"{type(cfg).__name__}.{name} must be >= {minimum}, got {value}")


def _check_common(cfg, int_fields) -> None:
    for name in int_fields:
        _check_int(cfg, name)
    if getattr(cfg, "head_dim", None) is None:
        check_heads(cfg.n_embd, cfg.n_head, f"{type(cfg).__name__}.")
    if isinstance(cfg.dropout, bool) or not isinstance(cfg.dropout, (int, float)) \
            or not 0.0 <= cfg.dropout < 1.0:
        raise ConfigError(f"{type(cfg).__name__}.dropout must be a float in [0, 1), got {cfg.dropout!r}")
    if not isinstance(cfg.bias, bool):
        raise ConfigError(f"{type(cfg).__name__}.bias must be a bool, got {cfg.bias!r}")
    if isinstance(cfg.layer_norm_eps, bool) or not isinstance(cfg.layer_norm_eps, (int, float)) \
            or not cfg.layer_norm_eps > 0:
        raise ConfigError(f"{type(cfg).__name__}.layer_norm_eps must be a positive float, "
                          f"got {cfg.layer_norm_eps!r}")


class _ConfigMixin:
    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict):
        """Build from a JSON dict; unknown keys are an error (a typo must not pass silently)."""
        if not isinstance(d, dict):
            raise ConfigError(f"{cls.__name__} expects a dict, got {type(d).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ConfigError(f"unknown {cls.__name__} field(s) {unknown}; expected some of {sorted(names)}")
        return cls(**d)

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class GPTConfig(_ConfigMixin):
    """Decoder-only GPT-2 shape. block_size is the context length (HF's n_positions).

    ``n_inner`` (MLP width, default 4 * n_embd) and ``head_dim`` (default n_embd // n_head) are
    None for GPT-2's shapes; structured pruning (infer/prune.py) sets them to keep fewer MLP
    neurons / attention heads: attention then works in n_head * head_dim dimensions.

    ``smear`` (default False = GPT-2): after the token + position embedding, each position gets a
    gated copy of the previous one, ``x[t] += σ(x[t]·w + b) · x[t-1]`` (``ops/smear_op.py``; two
    parameters ``transformer.smear.weight`` (C,) and ``.bias`` (1,)). A cheap previous-token
    path that lets copy (induction) heads form in one attention layer. HF GPT-2 has no such
    layer: a smear model's config.json is not loadable as ``gpt2`` by transformers.
    """

    vocab_size: int
    block_size: int
    n_layer: int
    n_head: int
    n_embd: int
    dropout: float = 0.0
    bias: bool = True
    layer_norm_eps: float = 1e-5
    n_inner: int | None = None
    head_dim: int | None = None
    smear: bool = False

    def __post_init__(self):
        _check_common(self, ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"))
        for name in ("n_inner", "head_dim"):
            if getattr(self, name) is not None:
                _check_int(self, name)
        if not isinstance(self.smear, bool):
            raise ConfigError(f"GPTConfig.smear must be a bool, got {self.smear!r}")

    @property
    def head_size(self) -> int:
        return self.n_embd // self.n_head if self.head_dim is None else self.head_dim

    @property
    def attn_dim(self) -> int:
        """Width of q, k, v and of c_proj's input: n_head * head_size (= n_embd for GPT-2)."""
        return self.n_head * self.head_size

    @property
    def mlp_dim(self) -> int:
        return 4 * self.n_embd if self.n_inner is None else self.n_inner


@dataclass(frozen=True)
class Seq2SeqConfig(_ConfigMixin):
    """Encoder-decoder (tutorial §4.2): one shared vocabulary for source and target, tied output.

    block_size bounds both the source and the target length.
    """

    vocab_size: int
    block_size: int
    n_encoder_layer: int
    n_decoder_layer: int
    n_head: int
    n_embd: int
    dropout: float = 0.0
    bias: bool = True
    layer_norm_eps: float = 1e-5

    def __post_init__(self):
        _check_common(self, ("vocab_size", "block_size", "n_encoder_layer", "n_decoder_layer",
                             "n_head", "n_embd"))

    @property
    def head_size(self) -> int:
        return self.n_embd // self.n_head
