"""Smear on the GPU: smear_op.py's math for training (autograd) and the engine's row form.

Training, x (B, T, C) (g = dL/dy):
    a[b, t] = σ(x[b, t]·w + b₀) (t ≥ 1; a[b, 0] = 0)      y[b, t] = x[b, t] + a[b, t] x[b, t-1]
    ds[b, t] = (g[b, t]·x[b, t-1]) a (1 - a)
    dx[b, t] = g[b, t] + ds[b, t] w + a[b, t+1] g[b, t+1]
    dw = Σ ds[b, t] x[b, t],   db = Σ ds[b, t]
Threads: the gate and ds are one thread per (b, t) (a dot product over C); y and dx one thread
per element; dw one thread per column c, summing over (b, t) in a fixed order. No atomics: every
output has one writer, so the results are the same every run.

Generation (``smear_rows_cuda``): rows r of a step with the pre-smear embeddings x0 (R, C); the
previous position's embedding is row ``src[r]`` of x0 when it is in the same step (src >= 0),
else the slot's kept one ``prev[slots[r]]`` (src = -1); position 0 has none (src = -2, gate 0).
Afterwards ``keep_rows_cuda`` stores the last row of each slot as its kept embedding.
"""
from __future__ import annotations

import functools
import math
import types

import numpy as np

from ..autograd.function import register
from ..cuda_arrays import cuda, launch1, require_device
from ..errors import DataError
from .smear_op import SmearFunction


@functools.cache
def _kernels(dt):
    one = dt(1.0)

    @cuda.jit
    def _row_dot(x, w, b, g, a, out, backward):   # x, g (B, T, C); a, out (B, T)
        # forward: out = σ(x[n, t]·w + b₀) (the gate); backward: out = (g[n, t]·x[n, t-1]) a (1 - a) (ds)
        i = cuda.grid(1)
        B, T, C = x.shape
        if i < B * T:
            n = i // T
            t = i % T
            if t == 0:
                out[n, t] = dt(0.0)
            elif backward:
                s = dt(0.0)
                for c in range(C):
                    s += g[n, t, c] * x[n, t - 1, c]
                out[n, t] = s * a[n, t] * (one - a[n, t])
            else:
                s = b[0]
                for c in range(C):
                    s += x[n, t, c] * w[c]
                out[n, t] = one / (one + math.exp(-s))

    @cuda.jit
    def _mix(x, a, y):                        # y (B, T, C)
        i = cuda.grid(1)
        B, T, C = x.shape
        if i < B * T * C:
            c = i % C
            t = (i // C) % T
            n = i // (T * C)
            v = x[n, t, c]
            if t > 0:
                v += a[n, t] * x[n, t - 1, c]
            y[n, t, c] = v

    @cuda.jit
    def _dx(g, a, ds, w, dx):                 # dx (B, T, C)
        i = cuda.grid(1)
        B, T, C = g.shape
        if i < B * T * C:
            c = i % C
            t = (i // C) % T
            n = i // (T * C)
            v = g[n, t, c] + ds[n, t] * w[c]
            if t + 1 < T:
                v += a[n, t + 1] * g[n, t + 1, c]
            dx[n, t, c] = v

    @cuda.jit
    def _dw(ds, x, dw, db):                   # dw (C,), db (1,): one thread per column
        c = cuda.grid(1)
        B, T, C = x.shape
        if c < C:
            s = dt(0.0)
            for n in range(B):
                for t in range(1, T):
                    s += ds[n, t] * x[n, t, c]
            dw[c] = s
            if c == 0:
                tot = dt(0.0)
                for n in range(B):
                    for t in range(1, T):
                        tot += ds[n, t]
                db[0] = tot

    return types.SimpleNamespace(row_dot=_row_dot, mix=_mix, dx=_dx, dw=_dw)


def smear_forward_cuda(x, w, b):
    if x.ndim != 3 or tuple(w.shape) != (x.shape[2],) or tuple(b.shape) != (1,):
        raise DataError(f"smear expects x (B, T, C), w (C,), b (1,); got {tuple(x.shape)}, {tuple(w.shape)}, "
                        f"{tuple(b.shape)}")
    k = _kernels(x.dtype.type)
    B, T, C = x.shape
    a = cuda.device_array((B, T), dtype=x.dtype)
    y = cuda.device_array((B, T, C), dtype=x.dtype)
    launch1(k.row_dot, B * T, x, w, b, x, a, a, False)
    launch1(k.mix, B * T * C, x, a, y)
    return y, (x, w, a)


def smear_backward_cuda(dout, cache):
    x, w, a = cache
    k = _kernels(x.dtype.type)
    B, T, C = x.shape
    ds = cuda.device_array((B, T), dtype=x.dtype)
    dx = cuda.device_array((B, T, C), dtype=x.dtype)
    dw = cuda.device_array(C, dtype=x.dtype)
    db = cuda.device_array(1, dtype=x.dtype)
    launch1(k.row_dot, B * T, x, w, w, dout, a, ds, True)
    launch1(k.dx, B * T * C, dout, a, ds, w, dx)
    launch1(k.dw, C, ds, x, dw, db)
    return dx, dw, db


@register(SmearFunction, "cuda")
class SmearCuda:
    @staticmethod
    def forward(ctx, x, w, b):
        return smear_forward_cuda(x, w, b)

    @staticmethod
    def backward(ctx, grad):
        dx, dw, db = smear_backward_cuda(grad, ctx.cache)
        nx, nw, nb = ctx.needs_input_grad
        return (dx if nx else None), (dw if nw else None), (db if nb else None)


# ----------------------------------------------------------------------------- generation rows
@cuda.jit
def _row_gate(x0, src, w, b, gate):           # x0 (R, C); src (R,) int; gate (R,)
    r = cuda.grid(1)
    if r < x0.shape[0]:
        if src[r] == -2:
            gate[r] = np.float32(0.0)
        else:
            s = b[0]
            for c in range(x0.shape[1]):
                s += x0[r, c] * w[c]
            gate[r] = np.float32(1.0) / (np.float32(1.0) + math.exp(-s))   # float32 literals: no float64 math


@cuda.jit
def _row_mix(x0, src, slots, prev, gate, x):   # prev (S, C); x (R, C) written
    i = cuda.grid(1)
    C = x.shape[1]
    if i < x.shape[0] * C:
        r = i // C
        c = i % C
        p = src[r]
        before = x0[p, c] if p >= 0 else prev[slots[r], c]
        x[r, c] = x0[r, c] + gate[r] * before


@cuda.jit
def _keep_rows(x0, keep, slots, prev):         # prev[slots[r]] = x0[r] where keep[r] != 0
    i = cuda.grid(1)
    C = x0.shape[1]
    if i < x0.shape[0] * C:
        r = i // C
        if keep[r] != 0:
            prev[slots[r], i % C] = x0[r, i % C]


def smear_rows_cuda(x, x0, src, slots, prev, w, b, gate):
    """x (R, C) <- x0 + σ(x0·w + b) · (previous position's embedding); see the module docstring.
    gate: (>= R,) float32 scratch. All device arrays."""
    require_device(x, x0, src, slots, prev, w, b, gate, where="smear_rows_cuda")
    R = x.shape[0]
    if R:
        launch1(_row_gate, R, x0, src, w, b, gate)
        launch1(_row_mix, x.size, x0, src, slots, prev, gate, x)
    return x


def keep_rows_cuda(x0, keep, slots, prev):
    if x0.size:
        launch1(_keep_rows, x0.size, x0, keep, slots, prev)
    return prev
