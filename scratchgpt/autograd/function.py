"""Function: one differentiable operation, written as a forward/backward pair.

Subclasses implement two static methods on plain NumPy arrays:

    forward(ctx, *inputs, **kwargs) -> np.ndarray
    backward(ctx, grad_out)         -> tuple of gradients, one per positional input
                                       (None for inputs that are not Tensors or need no grad)

``ctx`` is a small object where forward stores what backward needs (``ctx.save(...)`` or
plain attributes). ``ctx.needs_input_grad`` tells backward which gradients are wanted, so it
can skip work (e.g. the gradient w.r.t. token ids, or a frozen base weight under LoRA).

``Function.apply(*args)`` unwraps Tensors to arrays, runs forward, and — when grad mode is
on and some input requires grad — records (Function, ctx, parents) on the output Tensor.
"""
from __future__ import annotations

import numpy as np

from .grad_mode import is_grad_enabled
from .tensor import Tensor


class Context:
    __slots__ = ("saved", "needs_input_grad", "__dict__")

    def __init__(self):
        self.saved = ()
        self.needs_input_grad = ()

    def save(self, *arrays):
        self.saved = arrays


class Function:
    @staticmethod
    def forward(ctx: Context, *args, **kwargs):  # pragma: no cover - interface
        raise TypeError("Function subclasses must define forward(ctx, ...)")

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray):  # pragma: no cover - interface
        raise TypeError("Function subclasses must define backward(ctx, grad)")

    @classmethod
    def apply(cls, *args, **kwargs) -> Tensor:
        ctx = Context()
        arrays = []
        parents = []
        needs = []
        for a in args:
            if isinstance(a, Tensor):
                arrays.append(a.data)
                parents.append(a)
                needs.append(a.requires_grad)
            else:
                arrays.append(a)
                parents.append(None)
                needs.append(False)
        record = is_grad_enabled() and any(needs)
        ctx.needs_input_grad = tuple(needs)
        ctx.grad_enabled = record
        out = cls.forward(ctx, *arrays, **kwargs)
        result = Tensor.__new__(Tensor)
        result.data = out
        result.grad = None
        result.requires_grad = record
        result.name = None
        result._retain = False
        result._ctx = (cls, ctx, tuple(parents)) if record else None
        return result
