"""Requests, sampling settings and results of the engine (plain dataclasses)."""
from __future__ import annotations

import numbers
from dataclasses import dataclass, field

from ..errors import ConfigError, ScratchGPTError


class EngineFull(ScratchGPTError):
    """Every sequence slot is taken; wait for a step to finish one, or cancel one."""


class ContextLengthError(ConfigError):
    """prompt + max_new_tokens does not fit the model's context window (block_size).

    Every token of a sequence except the last one generated is fed back through the model, so
    a sequence fits when prompt_len + max_new_tokens - 1 <= block_size."""

    def __init__(self, prompt_len: int, max_new_tokens, block_size: int):
        self.prompt_len = int(prompt_len)
        self.max_new_tokens = max_new_tokens
        self.block_size = int(block_size)
        if max_new_tokens is None:
            msg = (f"prompt of {prompt_len} tokens is longer than the model's context window of "
                   f"{block_size} tokens")
        else:
            msg = (f"prompt of {prompt_len} tokens + max_new_tokens {max_new_tokens} needs "
                   f"{prompt_len + max_new_tokens - 1} positions, more than the model's context window of "
                   f"{block_size} tokens")
        super().__init__(msg)


@dataclass(frozen=True)
class SamplingParams:
    """How to pick tokens and when to stop.

    ``max_new_tokens=None`` means "until the context window is full". ``temperature=0`` is
    greedy. ``stop``: strings that end the reply (not included in the text); ``stop_token_ids``:
    extra token ids that end it; the tokenizer's end tokens (<|end|>, <|endoftext|>, role
    tokens) end it too unless ``ignore_eos`` (then exactly max_new_tokens are generated, for
    benchmarks). ``seed`` seeds this request's own generator: same seed, same tokens, whether
    the request runs alone or batched.
    """
    max_new_tokens: int | None = 128
    temperature: float = 0.0
    top_k: int | None = None
    top_p: float | None = None
    min_p: float | None = None
    repetition_penalty: float = 1.0
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    seed: int | None = None
    stop: tuple = ()
    stop_token_ids: tuple = ()
    ignore_eos: bool = False

    def __post_init__(self):
        if isinstance(self.stop, str):
            object.__setattr__(self, "stop", (self.stop,))
        object.__setattr__(self, "stop", tuple(self.stop))
        object.__setattr__(self, "stop_token_ids", tuple(int(t) for t in self.stop_token_ids))
        n = self.max_new_tokens
        if n is not None and (not isinstance(n, numbers.Integral) or isinstance(n, bool) or n < 1):
            raise ConfigError(f"max_new_tokens: expected None or an integer >= 1, got {n!r}")
        for s in self.stop:
            if not isinstance(s, str) or not s:
                raise ConfigError(f"stop: expected non-empty strings, got {s!r}")
        if self.seed is not None and (not isinstance(self.seed, numbers.Integral) or self.seed < 0):
            raise ConfigError(f"seed: expected None or an integer >= 0, got {self.seed!r}")
        # the remaining knobs are checked by the sampler's own check_args (one set of messages)
        from ..sampling._checks import check_args
        check_args(self.temperature, self.top_k, self.top_p, self.min_p, self.repetition_penalty,
                   self.frequency_penalty, self.presence_penalty, None, 2**31)


@dataclass
class GenerationRequest:
    prompt_ids: list
    params: SamplingParams = field(default_factory=SamplingParams)
    id: str | None = None


@dataclass
class StepOutput:
    id: str
    token_id: int | None          # the token sampled this step (None when cancelled)
    text: str                     # new safe text: valid UTF-8, never a possible stop-string prefix
    finished: bool
    finish_reason: str | None     # None | "stop" | "length" | "cancelled"
    prompt_tokens: int
    completion_tokens: int
    logits: object = None         # (V,) float32 copy of the logits sampled from, when the engine
                                  # was made with return_logits=True (tests, log-probabilities)


@dataclass
class Completion:
    text: str
    token_ids: list               # the reply's tokens (a final stop token is not included)
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int        # tokens generated, including a final stop token
