"""Add, subtract and multiply on the GPU, broadcasting like NumPy (up to 4 dimensions).

    add: y = a + b,  da = unb(dy),  db = unb(dy)         mul: y = a · b,  da = unb(dy · b),  db = unb(dy · a)
    sub: y = a - b,  da = unb(dy),  db = -unb(dy)        scale (a constant s): y = s · x,  dx = s · dy
where unb(g) sums g over the axes broadcasting stretched (autograd/tensor.py's ``unbroadcast``).

Same shapes (the residual stream, gates) take the flat one-thread-per-element kernels. Broadcast
operands (a bias (C,) over (B, T, C), a prefix (1, NH, P, HS) over the batch, an attention bias
(T, T) over (B, NH, T, T)) take ``_broadcast_cuda``: shapes padded on the left to 4-D, each
operand read through its element strides with stride 0 on a broadcast axis, so nothing is
expanded in memory. The backward reduction ``unbroadcast_cuda`` gives each element of the small
shape one thread, which sums the stretched axes in a fixed loop order (no atomics: the same
result every run).
"""
from __future__ import annotations

import numpy as np

from ..autograd.function import register
from ..cuda_arrays import _same, add, axpby, cuda, flat, launch1, scale
from ..errors import DeviceError
from .elementwise import AddFunction, MulFunction, ScaleFunction, SubFunction

MAX_DIMS = 4
ADD, SUB, MUL = 0, 1, 2


@cuda.jit
def _mul_cuda(a, b, out):             # flat (N,)
    i = cuda.grid(1)
    if i < out.size:
        out[i] = a[i] * b[i]


@cuda.jit
def _broadcast_cuda(a, b, op, sa, sb, dims, out):   # a, b, out flat; sa, sb, dims (4,) int64
    i = cuda.grid(1)
    if i < out.size:
        r = i
        ia = 0
        ib = 0
        for d in range(MAX_DIMS - 1, -1, -1):       # unravel i over the padded out shape
            k = r % dims[d]
            r //= dims[d]
            ia += k * sa[d]
            ib += k * sb[d]
        x = a[ia]
        y = b[ib]
        if op == ADD:
            out[i] = x + y
        elif op == SUB:
            out[i] = x - y
        else:
            out[i] = x * y


@cuda.jit
def _unbroadcast_cuda(g, gdims, tdims, out):        # g flat over gdims (4,); out flat over tdims (4,)
    i = cuda.grid(1)
    if i < out.size:
        r = i
        idx = cuda.local.array(MAX_DIMS, dtype=np.int64)
        span = cuda.local.array(MAX_DIMS, dtype=np.int64)
        for d in range(MAX_DIMS - 1, -1, -1):
            idx[d] = r % tdims[d]
            r //= tdims[d]
            span[d] = gdims[d] if tdims[d] == 1 else 1      # a stretched axis: sum over all of it
        acc = g[0] * 0
        for j0 in range(span[0]):
            for j1 in range(span[1]):
                for j2 in range(span[2]):
                    for j3 in range(span[3]):
                        k = (((idx[0] + j0) * gdims[1] + idx[1] + j1) * gdims[2] + idx[2] + j2) * gdims[3] \
                            + idx[3] + j3
                        acc += g[k]
        out[i] = acc


def _pad4(shape):
    shape = tuple(int(s) for s in shape)
    if len(shape) > MAX_DIMS:
        raise DeviceError(f"broadcasting on the GPU: at most {MAX_DIMS} dimensions, got shape {shape}")
    return (1,) * (MAX_DIMS - len(shape)) + shape


def _strides(shape, out_dims):
    """Element strides of a contiguous array of ``shape`` read as ``out_dims`` (0 where broadcast)."""
    dims = _pad4(shape)
    st = [0] * MAX_DIMS
    step = 1
    for d in range(MAX_DIMS - 1, -1, -1):
        st[d] = 0 if dims[d] == 1 and out_dims[d] != 1 else step
        step *= dims[d]
    return np.array(st, np.int64)


def _idx(values):
    from ..cuda_arrays import int_constants
    return int_constants(values)             # cached on the device: no upload per step


def binary_cuda(a, b, op):
    """a (op) b with NumPy broadcasting; op: ADD, SUB or MUL. A new device array."""
    if tuple(a.shape) == tuple(b.shape) and a.dtype == b.dtype:
        if op == ADD:
            return add(a, b)
        if op == SUB:
            return axpby(a, 1, b, -1)
        out = cuda.device_array(a.shape, dtype=a.dtype)
        if out.size:
            launch1(_mul_cuda, out.size, flat(a), flat(b), flat(out))
        return out
    if a.dtype != b.dtype:
        raise DeviceError(f"elementwise on the GPU: operands must share a dtype, got {a.dtype} and {b.dtype}")
    try:
        shape = np.broadcast_shapes(tuple(a.shape), tuple(b.shape))
    except ValueError:
        raise DeviceError(f"elementwise on the GPU: shapes {tuple(a.shape)} and {tuple(b.shape)} do not broadcast") \
            from None
    dims = _pad4(shape)
    out = cuda.device_array(shape, dtype=a.dtype)
    if out.size:
        meta = _idx(np.concatenate([_strides(a.shape, dims), _strides(b.shape, dims), dims]))
        launch1(_broadcast_cuda, out.size, flat(a), flat(b), op, meta[0:4], meta[4:8], meta[8:12], flat(out))
    return out


def unbroadcast_cuda(g, shape):
    """Sum the device gradient ``g`` over the axes broadcasting stretched to reach ``shape``."""
    shape = tuple(int(s) for s in shape)
    if tuple(g.shape) == shape:
        return g
    gdims = _pad4(g.shape)
    tdims = _pad4(shape)
    if any(t != gd and t != 1 for t, gd in zip(tdims, gdims)):
        raise DeviceError(f"gradient of shape {tuple(g.shape)} cannot reduce to {shape}")
    out = cuda.device_array(shape, dtype=g.dtype)
    if out.size:
        meta = _idx(np.concatenate([gdims, tdims]))
        launch1(_unbroadcast_cuda, out.size, flat(g), meta[0:4], meta[4:8], flat(out))
    return out


def mul_cuda(a, b):
    """a · b (same shapes: the flat kernel), kept for the callers of the first version."""
    _same(a, b, "mul")
    return binary_cuda(a, b, MUL)


@register(AddFunction, "cuda")
class AddCuda:
    @staticmethod
    def forward(ctx, a, b):
        return binary_cuda(a, b, ADD), (tuple(a.shape), tuple(b.shape))

    @staticmethod
    def backward(ctx, grad):
        na, nb = ctx.needs_input_grad
        sa, sb = ctx.cache
        return (unbroadcast_cuda(grad, sa) if na else None), (unbroadcast_cuda(grad, sb) if nb else None)


@register(SubFunction, "cuda")
class SubCuda:
    @staticmethod
    def forward(ctx, a, b):
        return binary_cuda(a, b, SUB), (tuple(a.shape), tuple(b.shape))

    @staticmethod
    def backward(ctx, grad):
        na, nb = ctx.needs_input_grad
        sa, sb = ctx.cache
        return (unbroadcast_cuda(grad, sa) if na else None), (scale(unbroadcast_cuda(grad, sb), -1) if nb else None)


@register(MulFunction, "cuda")
class MulCuda:
    @staticmethod
    def forward(ctx, a, b):
        return binary_cuda(a, b, MUL), (a, b)

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.cache
        na, nb = ctx.needs_input_grad
        return ((unbroadcast_cuda(binary_cuda(grad, b, MUL), a.shape) if na else None),
                (unbroadcast_cuda(binary_cuda(grad, a, MUL), b.shape) if nb else None))


@register(ScaleFunction, "cuda")
class ScaleCuda:
    @staticmethod
    def forward(ctx, x, s):
        return scale(x, s), float(s)

    @staticmethod
    def backward(ctx, grad):
        return scale(grad, ctx.cache), None
