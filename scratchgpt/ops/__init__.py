"""Differentiable operations. How one is built (files, the registry line, the tests): README.md here.

Each op module holds, in this order:
  1. the math, in the module docstring;
  2. ``<op>_forward_ref`` / ``<op>_backward_ref``: plain NumPy (float64) — the definition;
  3. ``<op>_forward`` / ``<op>_backward``: the fast CPU path (Numba kernels built with
     ``_numba.njit_pair``, or BLAS through NumPy where that is what is fastest, said in a comment),
     same signature as the ref: ``<op>_forward(...) -> (out, cache)``, ``<op>_backward(dout, cache)``;
  4. the autograd ``<Name>Function`` and the Tensor-level function users call (``gelu(x)``).
Its GPU twin, ``<op>_cuda.py``, holds the numba.cuda kernels and the class registered for
(``<Name>Function``, "cuda"); it is imported on the first use of the "cuda" device (below).

Module names never equal function names (``ops.gelu`` is the function, ``ops.gelu_op`` its
module), so the package needs no import tricks: below, each function is imported from its module.
Importing a module compiles nothing: Numba compiles (or loads from its disk cache) a kernel on
its first call.

This package also gives ``Tensor`` its operators (+ - * / @ [] sum mean reshape transpose .T):
autograd sits below ops and never imports them, so the methods are attached here, once.
"""
from __future__ import annotations

from ..autograd import Tensor
from ..backend import on_cuda_first_use
from .attention import causal_self_attention
from .cross_attention_op import cross_attention
from .cross_entropy_op import IGNORE_INDEX, cross_entropy
from .dropout_op import dropout
from .elementwise import add, div, exp, mul, relu, scale, sub, tanh
from .embedding_op import embedding, token_position_embedding
from .gelu_op import gelu
from .layernorm_op import layernorm
from .matmul_op import linear, matmul
from .reductions import mean, sum  # noqa: A004 - mirrors numpy's name
from .smear_op import smear
from .softmax_op import log_softmax, softmax
from .views import concat, getitem, reshape, transpose

__all__ = [
    "IGNORE_INDEX", "add", "causal_self_attention", "concat", "cross_attention", "cross_entropy", "div", "dropout",
    "embedding", "exp", "gelu", "getitem", "layernorm", "linear", "log_softmax", "matmul", "mean",
    "mul", "relu", "reshape", "scale", "smear", "softmax", "sub", "sum", "tanh", "token_position_embedding",
    "transpose",
]


# The CUDA implementations (ops/*_cuda.py, each registered beside its op's Function) are imported
# the first time the "cuda" device is used: importing scratchgpt never imports numba.cuda.
_CUDA_MODULES = ("adamw_cuda", "attention_cuda", "cross_attention_cuda", "cross_entropy_cuda", "dropout_cuda",
                 "elementwise_cuda", "embedding_cuda", "gelu_cuda", "layernorm_cuda", "matmul_cuda", "reductions_cuda",
                 "smear_cuda", "softmax_cuda", "views_cuda")


def _load_cuda_ops():
    import importlib
    for name in _CUDA_MODULES:
        importlib.import_module(f"{__name__}.{name}")


on_cuda_first_use(_load_cuda_ops)


def _shape_args(args):
    return tuple(args[0]) if len(args) == 1 and isinstance(args[0], (tuple, list)) else args


Tensor.__add__ = lambda self, other: add(self, other)
Tensor.__radd__ = lambda self, other: add(other, self)
Tensor.__sub__ = lambda self, other: sub(self, other)
Tensor.__rsub__ = lambda self, other: sub(other, self)
Tensor.__mul__ = lambda self, other: mul(self, other)
Tensor.__rmul__ = lambda self, other: mul(other, self)
Tensor.__truediv__ = lambda self, other: div(self, other)
Tensor.__rtruediv__ = lambda self, other: div(other, self)
Tensor.__neg__ = lambda self: mul(self, -1.0)
Tensor.__matmul__ = lambda self, other: matmul(self, other)
Tensor.__getitem__ = lambda self, index: getitem(self, index)
Tensor.sum = lambda self, axis=None, keepdims=False: sum(self, axis=axis, keepdims=keepdims)
Tensor.mean = lambda self, axis=None, keepdims=False: mean(self, axis=axis, keepdims=keepdims)
Tensor.reshape = lambda self, *shape: reshape(self, _shape_args(shape))
Tensor.transpose = lambda self, *axes: transpose(self, _shape_args(axes) or None)
Tensor.T = property(lambda self: transpose(self, None))
