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
    module = importlib.import_module(f".{mod}", __name__)
    # Bind every name this module exports, not only the one asked for: importing the submodule
    # ``ops.matmul`` (e.g. for ``linear``) makes Python set the package attribute ``matmul`` to
    # the module object, which would shadow the function ``matmul`` forever after.
    for n, m in _EXPORTS.items():
        if m == mod:
            globals()[n] = getattr(module, n)
    return globals()[name]
