"""Argument checks shared by the reference and the Cython sampler.

Both samplers call :func:`check_args` first, so they reject exactly the same inputs with exactly
the same messages, and they receive the same normalized values (float64 logits, int64 history,
a ``np.random.Generator`` factory).
"""
from __future__ import annotations

import numbers

import numpy as np

from ..errors import ConfigError

# Below this temperature sampling is replaced by argmax: logits / 1e-5 already puts every
# non-maximal token at least e^(-1e5 * gap) below the best one, i.e. greedy in all but name,
# and dividing by an even smaller number only risks overflow.
GREEDY_TEMPERATURE = 1e-5


def _is_real(x) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


def check_logits(logits) -> np.ndarray:
    """Return ``logits`` as a 1-D array (float32 or float64, not copied when already one)."""
    arr = np.asarray(logits)
    if arr.ndim != 1:
        raise ConfigError(f"logits: expected a 1-D array of shape (V,), got shape {arr.shape}")
    if arr.size == 0:
        raise ConfigError("logits: expected at least one token, got an empty array")
    if arr.dtype.kind not in "fiu":
        raise ConfigError(f"logits: expected a real-valued array, got dtype {arr.dtype}")
    if arr.dtype not in (np.float32, np.float64):
        arr = arr.astype(np.float64)
    return arr


def check_args(temperature, top_k, top_p, min_p, repetition_penalty, frequency_penalty,
               presence_penalty, history, vocab_size: int):
    """Validate the sampling knobs; return them normalized as a tuple in the same order.

    history comes back as an int64 array (possibly empty); top_k/top_p/min_p as None when they
    would keep every token (top_k >= V, top_p == 1, min_p == 0), so callers can skip that step.
    """
    if not _is_real(temperature) or not np.isfinite(temperature) or temperature < 0:
        raise ConfigError(f"temperature: expected a finite number >= 0, got {temperature!r}")
    if top_k is not None:
        if not isinstance(top_k, numbers.Integral) or isinstance(top_k, bool) or top_k < 1:
            raise ConfigError(f"top_k: expected None or an integer >= 1, got {top_k!r}")
        top_k = int(top_k)
        if top_k >= vocab_size:
            top_k = None
    if top_p is not None:
        if not _is_real(top_p) or not (0.0 < top_p <= 1.0):
            raise ConfigError(f"top_p: expected None or a number in (0, 1], got {top_p!r}")
        top_p = float(top_p)
        if top_p == 1.0:
            top_p = None
    if min_p is not None:
        if not _is_real(min_p) or not (0.0 <= min_p <= 1.0):
            raise ConfigError(f"min_p: expected None or a number in [0, 1], got {min_p!r}")
        min_p = float(min_p)
        if min_p == 0.0:
            min_p = None
    if not _is_real(repetition_penalty) or not np.isfinite(repetition_penalty) or repetition_penalty <= 0:
        raise ConfigError(f"repetition_penalty: expected a finite number > 0 (1 = off), got {repetition_penalty!r}")
    for name, val in (("frequency_penalty", frequency_penalty), ("presence_penalty", presence_penalty)):
        if not _is_real(val) or not np.isfinite(val):
            raise ConfigError(f"{name}: expected a finite number (0 = off), got {val!r}")
    if history is None:
        hist = np.zeros(0, dtype=np.int64)
    else:
        hist = np.asarray(history)
        if hist.size == 0:
            hist = np.zeros(0, dtype=np.int64)
        elif hist.ndim != 1 or hist.dtype.kind not in "iu":
            raise ConfigError(f"history: expected a 1-D sequence of token ids, got shape {hist.shape} dtype {hist.dtype}")
        hist = hist.astype(np.int64, copy=False)
        if hist.size and (hist.min() < 0 or hist.max() >= vocab_size):
            raise ConfigError(f"history: token ids must lie in [0, {vocab_size}), got min {hist.min()} max {hist.max()}")
    return (float(temperature), top_k, top_p, min_p, float(repetition_penalty),
            float(frequency_penalty), float(presence_penalty), hist)


def make_rng(rng) -> np.random.Generator:
    """np.random.Generator as is; an int seed -> default_rng(seed); None -> fresh OS entropy."""
    if rng is None or isinstance(rng, np.random.Generator):
        return np.random.default_rng(rng) if rng is None else rng
    if isinstance(rng, numbers.Integral) and not isinstance(rng, bool):
        if rng < 0:
            raise ConfigError(f"rng: an integer seed must be >= 0, got {rng}")
        return np.random.default_rng(int(rng))
    raise ConfigError(f"rng: expected None, an int seed or a numpy.random.Generator, got {type(rng).__name__}")


def bad_logits_message(z: np.ndarray) -> str | None:
    """Why these logits cannot be sampled from, or None when they can (NaN / +inf / all -inf)."""
    if np.isnan(z).any():
        return f"logits: contains NaN at index {int(np.flatnonzero(np.isnan(z))[0])}"
    if np.isposinf(z).any():
        return f"logits: contains +inf at index {int(np.flatnonzero(np.isposinf(z))[0])} (use -inf to mask tokens)"
    if np.isneginf(z).all():
        return "logits: every token is -inf (masked); nothing can be sampled"
    return None
