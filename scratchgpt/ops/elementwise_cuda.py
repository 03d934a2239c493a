"""Residual add and elementwise product on the GPU (same-shape operands, one thread per element).

    add: y = a + b,  da = dy,  db = dy          mul: y = a · b,  da = dy · b,  db = dy · a
    scale (a constant s): y = s · x,  dx = s · dy

The CPU ops broadcast like NumPy; on the GPU only equal shapes are supported (what the models
use: the residual stream, gates). A broadcast there raises DeviceError rather than silently
going through the host.
"""
from __future__ import annotations

from ..autograd.function import register
from ..cuda_arrays import _same, add, cuda, flat, launch1, scale
from .elementwise import AddFunction, MulFunction, ScaleFunction


@cuda.jit
def _mul_cuda(a, b, out):             # flat (N,)
    i = cuda.grid(1)
    if i < out.size:
        out[i] = a[i] * b[i]


def mul_cuda(a, b):
    _same(a, b, "mul")
    out = cuda.device_array(a.shape, dtype=a.dtype)
    launch1(_mul_cuda, out.size, flat(a), flat(b), flat(out))
    return out


@register(AddFunction, "cuda")
class AddCuda:
    @staticmethod
    def forward(ctx, a, b):
        return add(a, b), None

    @staticmethod
    def backward(ctx, grad):
        na, nb = ctx.needs_input_grad
        return (grad if na else None), (grad if nb else None)


@register(MulFunction, "cuda")
class MulCuda:
    @staticmethod
    def forward(ctx, a, b):
        return mul_cuda(a, b), (a, b)

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.cache
        na, nb = ctx.needs_input_grad
        return (mul_cuda(grad, b) if na else None), (mul_cuda(grad, a) if nb else None)


@register(ScaleFunction, "cuda")
class ScaleCuda:
    @staticmethod
    def forward(ctx, x, s):
        return scale(x, s), float(s)

    @staticmethod
    def backward(ctx, grad):
        return scale(grad, ctx.cache), None
