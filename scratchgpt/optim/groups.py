"""decay_groups: split parameters into "decay" and "no decay" groups for AdamW.

Weight decay pulls weights towards 0. That is a sensible prior for the weight *matrices*
(linear layers: it limits their scale and so the sharpness of the function), but not for
  - biases and LayerNorm gains/shifts (1-D): decaying a LayerNorm gain towards 0 fights the
    normalisation itself, and biases only shift activations;
  - embeddings (token and position tables): each row is updated only when its token occurs,
    while decay would shrink every row every step, so rare tokens would fade away.
Rule used here: a parameter decays iff it has >= 2 dimensions and its name is not an
embedding table (last module name ``wte``/``wpe`` as in GPT-2, or containing ``emb``).
A tied output head (GPT-2's lm_head = wte) is the same Parameter as wte and so follows it.
"""
from __future__ import annotations

import numbers

from ..autograd import Tensor
from ..errors import ConfigError

_EMBEDDING_MODULE_NAMES = ("wte", "wpe")


def is_embedding_name(name: str) -> bool:
    parts = name.split(".")
    module = parts[-2] if len(parts) >= 2 else parts[-1]
    return module in _EMBEDDING_MODULE_NAMES or "emb" in module.lower()


def should_decay(name: str, param: Tensor) -> bool:
    return param.data.ndim >= 2 and not is_embedding_name(name)


def decay_groups(model_or_named_params, weight_decay: float) -> list[dict]:
    """Return ``[{"params", "names", "weight_decay": weight_decay}, {..., "weight_decay": 0.0}]``.

    ``model_or_named_params``: a Module (its ``named_parameters()`` is used) or an iterable of
    (name, Parameter) pairs. Parameters that do not require grad (frozen) are left out; a
    parameter reached under two names (tied weights) is listed once. Both groups are always
    returned, possibly empty, so the optimizer state has the same layout for every model.
    """
    if not isinstance(weight_decay, numbers.Real) or isinstance(weight_decay, bool) or not weight_decay >= 0.0:
        raise ConfigError(f"decay_groups: weight_decay must be a number >= 0, got {weight_decay!r}")
    if hasattr(model_or_named_params, "named_parameters"):
        named = model_or_named_params.named_parameters()
    else:
        named = model_or_named_params
    decay, decay_names, keep, keep_names = [], [], [], []
    seen: set[int] = set()
    for item in named:
        if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str)
                and isinstance(item[1], Tensor)):
            raise ConfigError("decay_groups: expected a model or (name, Parameter) pairs, "
                              f"got an item of type {type(item).__name__}")
        name, p = item
        if not p.requires_grad or id(p) in seen:
            continue
        seen.add(id(p))
        if should_decay(name, p):
            decay.append(p)
            decay_names.append(name)
        else:
            keep.append(p)
            keep_names.append(name)
    if not seen:
        raise ConfigError("decay_groups: no trainable parameters found")
    return [
        {"params": decay, "names": decay_names, "weight_decay": float(weight_decay)},
        {"params": keep, "names": keep_names, "weight_decay": 0.0},
    ]
