"""Elementwise ops: add, sub, mul, div (broadcasting), scale, exp, tanh, relu.

Math (y = f(a, b) elementwise, with NumPy broadcasting; g = dL/dy):
    add:  y = a + b        da = g              db = g
    sub:  y = a - b        da = g              db = -g
    mul:  y = a * b        da = g * b          db = g * a
    div:  y = a / b        da = g / b          db = -g * a / b²  (= -g * y / b)
    scale: y = s * x       dx = s * g          (s a Python/NumPy scalar, not differentiated)
    exp:  y = eˣ           dx = g * y
    tanh: y = tanh x       dx = g * (1 - y²)
    relu: y = max(x, 0)    dx = g * [x > 0]
When an input was broadcast, its gradient is summed over the broadcast axes
(``unbroadcast``); the engine also does this for any Function, we do it here so the raw
backward pairs return gradients of exactly the input shapes.

Fast path: NumPy ufuncs. Each op is one memory-bound pass that NumPy already runs as a
compiled SIMD loop with broadcasting; a Numba kernel would have to re-implement broadcasting
and adds ~µs dispatch per call without touching memory any faster. The real speed-up for
elementwise work comes from fusing it into neighbouring ops (layernorm, gelu, softmax,
dropout have their own fused kernels), not from a faster standalone add.
"""
from __future__ import annotations

import numpy as np

from ..autograd import Function, Tensor
from ..autograd.tensor import unbroadcast

_F64 = np.float64


# ----------------------------------------------------------------------------- reference
def _ref_arr(a):
    return np.asarray(a, dtype=_F64)


def add_forward_ref(a, b):
    return _ref_arr(a) + _ref_arr(b), (np.shape(a), np.shape(b))


def add_backward_ref(dout, cache):
    sa, sb = cache
    dout = _ref_arr(dout)
    return unbroadcast(dout, sa), unbroadcast(dout, sb)


def sub_forward_ref(a, b):
    return _ref_arr(a) - _ref_arr(b), (np.shape(a), np.shape(b))


def sub_backward_ref(dout, cache):
    sa, sb = cache
    dout = _ref_arr(dout)
    return unbroadcast(dout, sa), unbroadcast(-dout, sb)


def mul_forward_ref(a, b):
    a, b = _ref_arr(a), _ref_arr(b)
    return a * b, (a, b)


def mul_backward_ref(dout, cache):
    a, b = cache
    dout = _ref_arr(dout)
    return unbroadcast(dout * b, a.shape), unbroadcast(dout * a, b.shape)


def div_forward_ref(a, b):
    a, b = _ref_arr(a), _ref_arr(b)
    return a / b, (a, b)


def div_backward_ref(dout, cache):
    a, b = cache
    dout = _ref_arr(dout)
    return unbroadcast(dout / b, a.shape), unbroadcast(-dout * a / (b * b), b.shape)


def scale_forward_ref(x, s):
    return _ref_arr(x) * float(s), float(s)


def scale_backward_ref(dout, cache):
    return _ref_arr(dout) * cache


def exp_forward_ref(x):
    y = np.exp(_ref_arr(x))
    return y, y


def exp_backward_ref(dout, cache):
    return _ref_arr(dout) * cache


def tanh_forward_ref(x):
    y = np.tanh(_ref_arr(x))
    return y, y


def tanh_backward_ref(dout, cache):
    return _ref_arr(dout) * (1.0 - cache * cache)


def relu_forward_ref(x):
    x = _ref_arr(x)
    return np.maximum(x, 0.0), x


def relu_backward_ref(dout, cache):
    return _ref_arr(dout) * (cache > 0)


# ----------------------------------------------------------------------------- fast CPU path
# NumPy ufuncs (see the module docstring for why not Numba). Inputs keep their dtype.
def add_forward(a, b):
    return np.add(a, b), (np.shape(a), np.shape(b))


def add_backward(dout, cache):
    sa, sb = cache
    return unbroadcast(dout, sa), unbroadcast(dout, sb)


def sub_forward(a, b):
    return np.subtract(a, b), (np.shape(a), np.shape(b))


def sub_backward(dout, cache):
    sa, sb = cache
    return unbroadcast(dout, sa), unbroadcast(np.negative(dout), sb)


def mul_forward(a, b):
    return np.multiply(a, b), (a, b)


def mul_backward(dout, cache):
    a, b = cache
    return unbroadcast(dout * b, np.shape(a)), unbroadcast(dout * a, np.shape(b))


def div_forward(a, b):
    return np.divide(a, b), (a, b)


def div_backward(dout, cache):
    a, b = cache
    da = dout / b
    # db = -g a / b² = -(g / b) * (a / b): reuse da instead of forming b² (no overflow for big b)
    db = -da * (a / b)
    return unbroadcast(da, np.shape(a)), unbroadcast(db, np.shape(b))


def scale_forward(x, s):
    return x * x.dtype.type(s), s


def scale_backward(dout, cache):
    return dout * dout.dtype.type(cache)


def exp_forward(x):
    y = np.exp(x)
    return y, y


def exp_backward(dout, cache):
    return dout * cache


def tanh_forward(x):
    y = np.tanh(x)
    return y, y


def tanh_backward(dout, cache):
    y = cache
    d = 1.0 - y * y
    d *= dout  # in place on our own temporary
    return d


def relu_forward(x):
    return np.maximum(x, 0), x


def relu_backward(dout, cache):
    return np.where(cache > 0, dout, 0).astype(dout.dtype, copy=False)


# ---- numba.cuda kernel: ops/elementwise_cuda.py (its class is registered for device "cuda") ----


# ----------------------------------------------------------------------------- autograd
class _BinaryFunction(Function):
    fwd = None
    bwd = None

    @classmethod
    def forward(cls, ctx, a, b):
        return cls.fwd(a, b)

    @classmethod
    def backward(cls, ctx, grad):
        da, db = cls.bwd(grad, ctx.cache)
        na, nb = ctx.needs_input_grad
        return (da if na else None), (db if nb else None)


class AddFunction(_BinaryFunction):
    fwd = staticmethod(add_forward)
    bwd = staticmethod(add_backward)


class SubFunction(_BinaryFunction):
    fwd = staticmethod(sub_forward)
    bwd = staticmethod(sub_backward)


class MulFunction(_BinaryFunction):
    fwd = staticmethod(mul_forward)
    bwd = staticmethod(mul_backward)


class DivFunction(_BinaryFunction):
    fwd = staticmethod(div_forward)
    bwd = staticmethod(div_backward)


class _UnaryFunction(Function):
    fwd = None
    bwd = None

    @classmethod
    def forward(cls, ctx, x):
        return cls.fwd(x)

    @classmethod
    def backward(cls, ctx, grad):
        return (cls.bwd(grad, ctx.cache),)


class ExpFunction(_UnaryFunction):
    fwd = staticmethod(exp_forward)
    bwd = staticmethod(exp_backward)


class TanhFunction(_UnaryFunction):
    fwd = staticmethod(tanh_forward)
    bwd = staticmethod(tanh_backward)


class ReLUFunction(_UnaryFunction):
    fwd = staticmethod(relu_forward)
    bwd = staticmethod(relu_backward)


class ScaleFunction(Function):
    @staticmethod
    def forward(ctx, x, s):
        return scale_forward(x, s)

    @staticmethod
    def backward(ctx, grad):
        return scale_backward(grad, ctx.cache), None


# ----------------------------------------------------------------------------- Tensor-level
def _operands(a, b, opname):
    """Make the pair Function-ready: at least one Tensor; constants take the Tensor's dtype.

    A float64 constant must not silently promote a float32 activation to float64 (that would
    double every later op's cost), so plain numbers/arrays are cast to the Tensor's dtype.
    """
    ta, tb = isinstance(a, Tensor), isinstance(b, Tensor)
    if ta and tb:
        return a, b
    if ta:
        return a, _const(b, a.data.dtype, opname)
    if tb:
        return _const(a, b.data.dtype, opname), b
    a = Tensor(a)
    return a, _const(b, a.data.dtype, opname)


def _const(v, dtype, opname):
    try:
        return np.asarray(v, dtype=dtype)
    except (TypeError, ValueError) as e:
        raise TypeError(f"{opname}: operand must be a Tensor, number or array, got {type(v).__name__}") from e


def add(a, b) -> Tensor:
    """a + b with broadcasting."""
    return AddFunction.apply(*_operands(a, b, "add"))


def sub(a, b) -> Tensor:
    """a - b with broadcasting."""
    return SubFunction.apply(*_operands(a, b, "sub"))


def mul(a, b) -> Tensor:
    """a * b with broadcasting."""
    for t, c in ((a, b), (b, a)):
        # a GPU Tensor times a number: the scale op (a host constant array would be a second device)
        if isinstance(t, Tensor) and t.device != "cpu" and isinstance(c, (int, float, np.number)) \
                and not isinstance(c, bool):
            return scale(t, c)
    return MulFunction.apply(*_operands(a, b, "mul"))


def div(a, b) -> Tensor:
    """a / b with broadcasting."""
    return DivFunction.apply(*_operands(a, b, "div"))


def scale(x, s) -> Tensor:
    """s * x for a constant scalar s."""
    if not isinstance(x, Tensor):
        x = Tensor(x)
    if isinstance(s, Tensor) or np.ndim(s) != 0:
        raise TypeError(f"scale: s must be a scalar constant, got {type(s).__name__}; use mul() for tensors")
    return ScaleFunction.apply(x, float(s))


def exp(x) -> Tensor:
    return ExpFunction.apply(x if isinstance(x, Tensor) else Tensor(x))


def tanh(x) -> Tensor:
    return TanhFunction.apply(x if isinstance(x, Tensor) else Tensor(x))


def relu(x) -> Tensor:
    return ReLUFunction.apply(x if isinstance(x, Tensor) else Tensor(x))
