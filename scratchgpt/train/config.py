"""Training configuration: frozen dataclasses, validated on construction, overridable from the CLI.

Why frozen: a run's config is written next to its checkpoints and must describe exactly what
ran; mutating it mid-run would make that record a lie. To change a value, make a new config
with ``with_overrides`` (type-checked: ``--lr abc`` fails with a ConfigError naming ``lr``).

Three groups:
  ModelConfig  — the GPT's shape (vocab size comes from the tokenizer, not from here);
  TrainConfig  — optimiser, schedule, batch, regularisation, evaluation, checkpoints, precision;
  PeftConfig   — which parameter-efficient method to use for SFT and its hyper-parameters.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import typing
from dataclasses import dataclass, fields

from ..errors import ConfigError
from ..ops.attention import check_heads

_OPTIMIZERS = ("adamw", "adam", "sgd")
_SCHEDULES = ("cosine", "constant")
_PEFT_METHODS = ("none", "lora", "adapter", "prefix")


def _check(cond: bool, name: str, expected: str, value) -> None:
    if not cond:
        raise ConfigError(f"config value {name}={value!r} is invalid: expected {expected}")


@dataclass(frozen=True)
class ModelConfig:
    """Shape of the GPT we pretrain (names as nanoGPT/GPT-2 use them). Dropout is a training
    choice, so it lives in TrainConfig (and can differ between pretraining and SFT)."""
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    block_size: int = 128
    bias: bool = True
    smear: bool = False        # GPTConfig.smear: previous-token gate after the embedding

    def __post_init__(self):
        _check(isinstance(self.smear, bool), "smear", "a bool", self.smear)
        for name in ("n_layer", "n_head", "n_embd", "block_size"):
            v = getattr(self, name)
            _check(isinstance(v, int) and v >= 1, name, "an integer >= 1", v)
        check_heads(self.n_embd, self.n_head, "ModelConfig.")


@dataclass(frozen=True)
class TrainConfig:
    """Everything the training loop needs besides the model and the data."""
    # optimiser
    optimizer: str = "adamw"
    lr: float = 3e-3
    min_lr: float = 3e-4
    beta1: float = 0.9
    beta2: float = 0.99
    eps: float = 1e-8
    momentum: float = 0.9            # SGD only
    weight_decay: float = 0.1        # decoupled for AdamW, L2 for Adam/SGD
    grad_clip: float = 1.0           # max global grad norm; 0 turns clipping off
    # schedule
    schedule: str = "cosine"         # linear warmup then cosine decay to min_lr, or constant after warmup
    warmup_steps: int = 20
    max_steps: int = 500
    # batches: the effective batch is batch_size * grad_accum sequences
    batch_size: int = 16
    grad_accum: int = 1
    seq_len: int = 128               # window length (pretraining) / max conversation length (SFT)
    # regularisation
    dropout: float = 0.0             # overrides the model's dropout for this run
    # evaluation and early stopping
    eval_every: int = 50
    eval_batches: int = 8
    patience: int = 0                # stop after this many evaluations without val-loss improvement; 0 = off
    min_delta: float = 0.0
    # checkpoints and logging
    checkpoint_every: int = 0        # also always written at the end; 0 = only at the end
    log_every: int = 10
    seed: int = 1337
    # mixed precision: float16 forward/backward, float32 master weights, dynamic loss scaling
    mixed_precision: bool = False
    loss_scale: float = 1024.0       # initial dynamic loss scale
    scale_growth_interval: int = 200 # finite steps before the scale doubles
    progress: bool = True

    def __post_init__(self):
        _check(self.optimizer in _OPTIMIZERS, "optimizer", f"one of {_OPTIMIZERS}", self.optimizer)
        _check(self.schedule in _SCHEDULES, "schedule", f"one of {_SCHEDULES}", self.schedule)
        _check(self.lr > 0, "lr", "a float > 0", self.lr)
        _check(0 <= self.min_lr <= self.lr, "min_lr", f"a float in [0, lr={self.lr}]", self.min_lr)
        _check(0 <= self.beta1 < 1, "beta1", "a float in [0, 1)", self.beta1)
        _check(0 <= self.beta2 < 1, "beta2", "a float in [0, 1)", self.beta2)
        _check(self.eps > 0, "eps", "a float > 0", self.eps)
        _check(0 <= self.momentum < 1, "momentum", "a float in [0, 1)", self.momentum)
        _check(self.weight_decay >= 0, "weight_decay", "a float >= 0", self.weight_decay)
        _check(self.grad_clip >= 0, "grad_clip", "a float >= 0 (0 = off)", self.grad_clip)
        _check(self.max_steps >= 1, "max_steps", "an integer >= 1", self.max_steps)
        _check(0 <= self.warmup_steps <= self.max_steps, "warmup_steps",
               f"an integer in [0, max_steps={self.max_steps}]", self.warmup_steps)
        for name in ("batch_size", "grad_accum", "seq_len", "eval_every", "eval_batches", "log_every"):
            v = getattr(self, name)
            _check(v >= 1, name, "an integer >= 1", v)
        for name in ("patience", "checkpoint_every"):
            v = getattr(self, name)
            _check(v >= 0, name, "an integer >= 0", v)
        _check(0.0 <= self.dropout < 1.0, "dropout", "a float in [0, 1)", self.dropout)
        _check(self.loss_scale >= 1, "loss_scale", "a float >= 1", self.loss_scale)
        _check(self.scale_growth_interval >= 1, "scale_growth_interval", "an integer >= 1", self.scale_growth_interval)

    @property
    def tokens_per_step(self) -> int:
        return self.batch_size * self.grad_accum * self.seq_len


@dataclass(frozen=True)
class PeftConfig:
    """Parameter-efficient fine-tuning: which method and its knobs (ignored when method='none')."""
    method: str = "none"
    lora_rank: int = 8
    lora_alpha: float = 16.0
    lora_dropout: float = 0.0
    lora_targets: str = "c_attn,c_proj,c_fc"  # comma-separated Linear names (suffixes) to wrap
    adapter_size: int = 32
    prefix_len: int = 8

    def __post_init__(self):
        _check(self.method in _PEFT_METHODS, "method", f"one of {_PEFT_METHODS}", self.method)
        _check(self.lora_rank >= 1, "lora_rank", "an integer >= 1", self.lora_rank)
        _check(self.lora_alpha > 0, "lora_alpha", "a float > 0", self.lora_alpha)
        _check(0 <= self.lora_dropout < 1, "lora_dropout", "a float in [0, 1)", self.lora_dropout)
        _check(bool(self.target_list), "lora_targets", "a comma-separated list of module names", self.lora_targets)
        _check(self.adapter_size >= 1, "adapter_size", "an integer >= 1", self.adapter_size)
        _check(self.prefix_len >= 1, "prefix_len", "an integer >= 1", self.prefix_len)

    @property
    def target_list(self) -> tuple:
        return tuple(t.strip() for t in self.lora_targets.split(",") if t.strip())


# ------------------------------------------------------------------ conversion helpers
def _field_type(cls, name: str):
    hints = typing.get_type_hints(cls)
    return hints[name]


def parse_value(cls, name: str, value):
    """Convert ``value`` (a str from the command line, or a JSON value) to field ``name``'s type."""
    names = {f.name for f in fields(cls)}
    if name not in names:
        raise ConfigError(f"unknown {cls.__name__} key {name!r}; known keys: {', '.join(sorted(names))}")
    typ = _field_type(cls, name)
    if typ is bool:
        if isinstance(value, bool):
            return value
        s = str(value).strip().lower()
        if s in ("1", "true", "yes", "on"):
            return True
        if s in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{name} expects a boolean (true/false), got {value!r}")
    if typ is int:
        if isinstance(value, bool):
            raise ConfigError(f"{name} expects an integer, got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        try:
            return int(str(value).strip())
        except ValueError:
            raise ConfigError(f"{name} expects an integer, got {value!r}") from None
    if typ is float:
        if isinstance(value, bool):
            raise ConfigError(f"{name} expects a number, got {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{name} expects a number, got {value!r}") from None
    if typ is str:
        if not isinstance(value, str):
            raise ConfigError(f"{name} expects a string, got {value!r}")
        return value
    raise ConfigError(f"{name}: unsupported field type {typ}")  # pragma: no cover


def with_overrides(cfg, overrides: dict | None):
    """A new config equal to ``cfg`` with ``overrides`` applied (each value type-checked)."""
    if not overrides:
        return cfg
    cls = type(cfg)
    parsed = {k: parse_value(cls, k, v) for k, v in overrides.items()}
    return dataclasses.replace(cfg, **parsed)


def from_dict(cls, d: dict):
    """Build a config from a JSON dict; unknown keys are an error (a typo must not pass silently)."""
    if not isinstance(d, dict):
        raise ConfigError(f"{cls.__name__} expects a JSON object, got {type(d).__name__}")
    return with_overrides(cls(), d)


def to_dict(cfg) -> dict:
    return dataclasses.asdict(cfg)


def save_json(cfg, path) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(to_dict(cfg), f, indent=2)


# ------------------------------------------------------------------ argparse integration
# fields that are not a flag of their own: ``progress`` is the shared ``--no-progress`` switch
NOT_FLAGS = ("progress",)


def flag_name(field_name: str, prefix: str = "") -> str:
    """``max_steps`` -> ``--max-steps`` (dashed, as every scratchgpt flag; the CLI also accepts
    ``--max_steps``, see commands/_flags.py)."""
    return f"--{prefix}{field_name}".replace("_", "-")


def add_config_arguments(parser: argparse.ArgumentParser, cls, defaults=None, prefix: str = "",
                         exclude=()) -> None:
    """Add ``--<prefix><field> VALUE`` (dashed) for every field of ``cls``; values stay strings
    here and are type-checked by ``config_from_args`` so the error names the key (argparse's
    would not say why)."""
    group = parser.add_argument_group(f"{cls.__name__} overrides")
    base = defaults if defaults is not None else cls()
    for f in fields(cls):
        if f.name in exclude or f.name in NOT_FLAGS:
            continue
        default = getattr(base, f.name)
        group.add_argument(flag_name(f.name, prefix),
                           dest=f"{cls.__name__}__{f.name}", default=None, metavar=type(default).__name__.upper(),
                           help=f"default {default!r}")


def config_from_args(cls, args: argparse.Namespace, base=None, note=print):
    """The config ``base`` (default: ``cls()``) with every ``--field`` given on the command line applied.

    A short run (``--max-steps`` below the default warmup, ``--warmup-steps`` not given) gets a
    warmup of a tenth of its steps instead of failing validation; ``note`` says so."""
    base = base if base is not None else cls()
    overrides = {}
    for f in fields(cls):
        v = getattr(args, f"{cls.__name__}__{f.name}", None)
        if v is not None:
            try:  # type errors name the flag the user typed: "--max-steps expects an integer, got 'a'"
                overrides[f.name] = parse_value(cls, f.name, v)
            except ConfigError as err:
                raise ConfigError(f"{flag_name(f.name)}{str(err)[len(f.name):]}") from None
    if "progress" in {f.name for f in fields(cls)} and getattr(args, "progress", True) is False:
        overrides["progress"] = False  # --no-progress
    if "max_steps" in overrides and "warmup_steps" not in overrides and hasattr(base, "warmup_steps"):
        steps = parse_value(cls, "max_steps", overrides["max_steps"])
        if 1 <= steps < base.warmup_steps:
            overrides["warmup_steps"] = steps // 10
            note(f"note: --max-steps {steps} is shorter than the default warmup of {base.warmup_steps} steps; "
                 f"using --warmup-steps {steps // 10} (a tenth of the run)")
    return with_overrides(base, overrides)


def explicit_overrides(cls, args: argparse.Namespace) -> dict:
    """Only the fields the user typed (so presets can fill the rest)."""
    out = {}
    for f in fields(cls):
        v = getattr(args, f"{cls.__name__}__{f.name}", None)
        if v is not None:
            out[f.name] = v
    return out
