"""Global-norm gradient clipping.

    total = sqrt(sum over every parameter p of sum(p.grad ** 2))
    if total > max_norm:  p.grad <- p.grad * max_norm / (total + 1e-6)   for every p

One norm over all parameters (not one per tensor) keeps the direction of the full gradient
and only shortens it. The 1e-6 keeps the division finite for a zero gradient and, as in
torch.nn.utils.clip_grad_norm_, leaves the clipped norm a hair under max_norm.

A non-finite norm (an inf or nan somewhere in the gradients) is returned as is and nothing
is scaled: multiplying by max_norm / inf would zero every gradient — or spread nan — and
hide the problem. The trainer checks ``math.isfinite`` on the result and skips the step.
"""
from __future__ import annotations

import math
import numbers

import numpy as np

from ..autograd import Tensor
from ..errors import ConfigError


def _flatten_params(params) -> list:
    if isinstance(params, Tensor):
        return [params]
    out = []
    for item in params:
        if isinstance(item, dict):  # a param group
            out.extend(item["params"])
        elif isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], Tensor):
            out.append(item[1])  # (name, param) from named_parameters()
        elif isinstance(item, Tensor):
            out.append(item)
        else:
            raise ConfigError(f"clip_grad_norm: expected Tensors, got {type(item).__name__}")
    return out


def _sum_squares(g: np.ndarray) -> float:
    flat = g.reshape(-1)
    # BLAS dot: one fast pass; float32 accumulation over SIMD lanes is accurate to ~1e-6 rel.
    with np.errstate(over="ignore", invalid="ignore"):
        s = float(np.dot(flat, flat))
    if not math.isfinite(s) and g.dtype != np.float64:
        # float32 can overflow (|g| > ~1e19) while every entry is finite: redo in float64 so
        # only a real inf/nan in the gradient reports a non-finite norm.
        flat64 = flat.astype(np.float64)
        s = float(np.dot(flat64, flat64))
    return s


def squared_norms(grads) -> list:
    """Σ g² of every gradient. GPU gradients are reduced on the GPU, all of them with one copy of
    their partial sums to the host (``cuda_arrays.sums_of_squares``): one transfer per step, not
    one per parameter."""
    out = [_sum_squares(g) for g in grads if isinstance(g, np.ndarray)]
    on_gpu = [g for g in grads if not isinstance(g, np.ndarray)]
    if on_gpu:
        from ..cuda_arrays import sums_of_squares
        out += sums_of_squares(on_gpu)
    return out


def clip_grad_norm(params, max_norm: float) -> float:
    """Scale gradients in place so their global L2 norm is at most ``max_norm``.

    ``params``: Tensors, (name, Tensor) pairs or param-group dicts; those without a gradient
    are skipped. Returns the norm *before* clipping (inf/nan when a gradient is not finite,
    in which case nothing is changed).
    """
    if not isinstance(max_norm, numbers.Real) or isinstance(max_norm, bool) or not max_norm > 0.0:
        raise ConfigError(f"clip_grad_norm: max_norm must be a number > 0, got {max_norm!r}")
    grads = [p.grad for p in _flatten_params(params) if p.grad is not None]
    total = math.sqrt(math.fsum(squared_norms(grads))) if grads else 0.0
    if not math.isfinite(total):
        return total
    coef = max_norm / (total + 1e-6)
    if coef < 1.0:
        for g in grads:
            if isinstance(g, np.ndarray):
                g *= g.dtype.type(coef)
            else:
                from ..cuda_arrays import scale_into
                scale_into(g, coef)
    return total
