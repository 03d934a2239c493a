"""Hand-written reverse-mode automatic differentiation over NumPy arrays."""
from .function import Context, Function
from .grad_mode import enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from .gradcheck import gradcheck, numerical_grad
from .tensor import Tensor, tensor, unbroadcast

__all__ = [
    "Tensor", "tensor", "Function", "Context", "no_grad", "enable_grad", "is_grad_enabled",
    "set_grad_enabled", "gradcheck", "numerical_grad", "unbroadcast",
]
