"""Function: one differentiable operation, written as a forward/backward pair, and the small
registry that picks which implementation of it runs for the device of its inputs.

The contract (the same one the ops' ``<op>_forward`` / ``<op>_backward`` follow):

    forward(ctx, *inputs, **kwargs) -> (out, cache)   arrays in, arrays out; ``cache`` is
                                                      exactly what backward needs
    backward(ctx, grad_out) -> tuple of gradients, one per positional input
                               (None for inputs that are not Tensors or need no grad)

``ctx`` carries ``needs_input_grad`` (which gradients backward should compute: it can skip the
gradient w.r.t. token ids, or a frozen base weight under LoRA), ``grad_enabled`` (whether this
call records a graph: a fused loss can skip forming its gradient when it does not) and, in
backward, ``cache``. ``Function.apply`` keeps the cache only when it records a graph, so no op
can hold activations alive under ``no_grad`` by forgetting a check.

Devices: a Function subclass is its op's CPU implementation (NumPy arrays in and out). Another
device registers its own implementation of the same op:

    @register(GELUFunction, "cuda")
    class GELUCuda:                       # static forward/backward, same contract, device arrays
        ...

``apply`` finds the device of the inputs in one place (``backend.array_device``), looks up
(op, device) in ``IMPLEMENTATIONS`` and runs that implementation, so an op body only ever sees
arrays of its own device and never converts them. Inputs on two devices, or a device the op has
no implementation for, raise DeviceError before any body runs.
"""
from __future__ import annotations

import numpy as np

from ..backend import DEVICES, array_device, load_cuda_ops
from ..errors import DeviceError
from .grad_mode import is_grad_enabled
from .tensor import Tensor

# (op Function class, device) -> the class whose static forward/backward run it there
IMPLEMENTATIONS: dict[tuple[type, str], type] = {}


def register(op: type, device: str):
    """Class decorator: ``impl`` (static ``forward`` and ``backward``) runs ``op`` on ``device``."""
    if device not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, got {device!r}")

    def deco(impl):
        for name in ("forward", "backward"):
            if name not in vars(impl):   # inheriting the CPU body would feed it device arrays
                raise TypeError(f"{impl.__name__} must define its own {name} to run {op.__name__} on {device}")
        IMPLEMENTATIONS[(op, device)] = impl
        return impl
    return deco


def implementation(op: type, device: str) -> type:
    if device == "cuda":
        load_cuda_ops()     # imports ops/*_cuda.py once (registers their classes); no-op after
    impl = IMPLEMENTATIONS.get((op, device))
    if impl is None:
        raise DeviceError(f"{op.__name__} has no implementation for device {device!r} "
                          f"(it has: {', '.join(d for (o, d) in IMPLEMENTATIONS if o is op)})")
    return impl


class Context:
    __slots__ = ("needs_input_grad", "grad_enabled", "cache")

    def __init__(self, needs_input_grad: tuple, grad_enabled: bool):
        self.needs_input_grad = needs_input_grad
        self.grad_enabled = grad_enabled
        self.cache = None


class Function:
    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        IMPLEMENTATIONS[(cls, "cpu")] = cls   # a Function subclass is its op's CPU implementation

    @staticmethod
    def forward(ctx: Context, *args, **kwargs):  # pragma: no cover - interface
        raise TypeError("Function subclasses must define forward(ctx, ...) -> (out, cache)")

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray):  # pragma: no cover - interface
        raise TypeError("Function subclasses must define backward(ctx, grad)")

    @classmethod
    def apply(cls, *args, **kwargs) -> Tensor:
        arrays = []
        parents = []
        needs = []
        device = None
        for a in args:
            if isinstance(a, Tensor):
                data = a.data
                parents.append(a)
                needs.append(a.requires_grad)
            else:                       # a plain argument; an array (targets, masks) counts too
                data = a
                parents.append(None)
                needs.append(False)
            arrays.append(data)
            d = "cpu" if isinstance(data, np.ndarray) else array_device(data)
            if d is not None and d != device:
                if device is not None:
                    raise DeviceError(f"{cls.__name__}: inputs on several devices ({device}, {d}); "
                                      "move them to one device first")
                device = d
        impl = IMPLEMENTATIONS.get((cls, device or "cpu")) or implementation(cls, device)
        record = any(needs) and is_grad_enabled()
        ctx = Context(tuple(needs), record)
        result = impl.forward(ctx, *arrays, **kwargs)
        if type(result) is not tuple or len(result) != 2:
            raise TypeError(f"{impl.__name__}.forward must return (out, cache)")
        out, cache = result
        if not record:
            return Tensor._from_op(out, None)
        ctx.cache = cache
        return Tensor._from_op(out, (impl, ctx, tuple(parents)))
