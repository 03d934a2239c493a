"""Differentiable operations, one file per op.

Each op file holds, in this order:
  1. the math, in the module docstring;
  2. ``<op>_forward_ref`` / ``<op>_backward_ref``: plain NumPy (float64) — the definition;
  3. ``<op>_forward`` / ``<op>_backward``: the fast CPU path (Numba ``@njit`` kernels, or BLAS
     through NumPy where that is what is fastest, said in a comment), same signature as the ref:
     ``<op>_forward(...) -> (out, cache)`` and ``<op>_backward(dout, cache) -> grads``;
  4. a section ``# ---- numba.cuda kernel ----`` where the GPU kernel lives (a later issue fills it);
  5. the autograd ``Function`` and the Tensor-level function users call (e.g. ``gelu(x)``).

Names are imported lazily (PEP 562) so that importing one op does not compile every kernel.
"""
from __future__ import annotations

import importlib
import sys
import types

# public name -> module that defines it
_EXPORTS = {
    # linear algebra
    "matmul": "matmul", "linear": "matmul",
    # lookups
    "embedding": "embedding", "token_position_embedding": "embedding",
    # normalisation and activations
    "layernorm": "layernorm", "gelu": "gelu", "softmax": "softmax", "log_softmax": "softmax",
    # attention
    "causal_self_attention": "attention", "cross_attention": "cross_attention",
    # losses
    "cross_entropy": "cross_entropy",
    # regularisation
    "dropout": "dropout",
    # elementwise
    "add": "elementwise", "sub": "elementwise", "mul": "elementwise", "div": "elementwise",
    "scale": "elementwise", "exp": "elementwise", "tanh": "elementwise", "relu": "elementwise",
    # reductions
    "sum": "reductions", "mean": "reductions",
    # views
    "reshape": "views", "transpose": "views", "getitem": "views", "concat": "views",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    mod = _EXPORTS.get(name)
    if mod is None:
        raise AttributeError(f"module 'scratchgpt.ops' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{mod}", __name__), name)
    globals()[name] = value
    return value


class _OpsPackage(types.ModuleType):
    """Keeps ``ops.matmul`` the function when the submodule ``ops/matmul.py`` is imported.

    Importing a submodule (``from scratchgpt.ops.matmul import linear_forward``, or the lazy
    lookup of ``linear``) makes Python set the package attribute ``matmul`` to the module
    object, which would shadow the function of the same name forever after. Op modules named
    like their function (matmul, gelu, layernorm, ...) therefore bind the function instead;
    reach the module itself through ``from scratchgpt.ops.matmul import ...`` or sys.modules.
    """

    def __setattr__(self, name, value):
        if isinstance(value, types.ModuleType) and _EXPORTS.get(name) == name \
                and value.__name__ == f"{__name__}.{name}":
            value = getattr(value, name)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _OpsPackage
