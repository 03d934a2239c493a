"""Softmax cross-entropy with ``ignore_index`` on the GPU (same math as cross_entropy_op.py).

    lse_n = m_n + log Σ_j exp(z_nj − m_n),  loss_n = lse_n − z_{n,t_n} (0 if t_n = ignore_index)
    L = Σ_n loss_n / N_valid ("mean") or Σ_n loss_n ("sum")
    dL/dz_nj = w (softmax(z_n)_j − [j = t_n]) on valid rows, 0 on ignored rows

Three launches: (1) one block counts the valid rows (so w = 1/N_valid is known on the GPU, no
copy to the host); (2) one block of ROW_THREADS per row: shared-memory max, then sum of exp,
then — like the CPU kernel — the gradient row written while the row is at hand (under no_grad
only the loss); (3) one block sums the per-row losses into the 0-d loss. Targets must already
be valid ids or ignore_index: the host checks them before they are copied (GPT.forward does),
and a kernel treats an out-of-range id like ignore_index rather than read out of bounds.
"""
from __future__ import annotations

import functools
import math

import numpy as np

from ..autograd.function import register
from ..cuda_arrays import ROW_THREADS, block_max, block_sum, cuda, flat, launch, launch1
from ..errors import ConfigError, DataError
from .cross_entropy_op import _REDUCTIONS, CrossEntropyFunction


@functools.cache
def _kernels(dt):
    @cuda.jit
    def _count_valid(t, V, ignore_index, count):    # one block; count (1,) = number of valid rows
        buf = cuda.shared.array(ROW_THREADS, dtype=dt)
        c = dt(0.0)
        for n in range(cuda.threadIdx.x, t.size, ROW_THREADS):
            if t[n] != ignore_index and t[n] >= 0 and t[n] < V:
                c += dt(1.0)
        total = block_sum(buf, c)
        if cuda.threadIdx.x == 0:
            count[0] = total

    @cuda.jit
    def _ce_rows(z, t, ignore_index, mean, count, compute_grad, grad, losses):
        # z, grad (N, V); t (N,); losses (N,); one block per row
        buf = cuda.shared.array(ROW_THREADS, dtype=dt)
        n = cuda.blockIdx.x
        tid = cuda.threadIdx.x
        V = z.shape[1]
        tn = t[n]
        valid = tn != ignore_index and tn >= 0 and tn < V
        w = dt(1.0)
        if mean:
            w = dt(0.0)
            if count[0] > dt(0.0):
                w = dt(1.0) / count[0]
        m = z[n, 0]
        for j in range(tid, V, ROW_THREADS):
            m = max(m, z[n, j])
        m = block_max(buf, m)
        s = dt(0.0)
        for j in range(tid, V, ROW_THREADS):
            s += math.exp(z[n, j] - m)
        s = block_sum(buf, s)
        lse = m + math.log(s)
        if tid == 0:
            losses[n] = lse - z[n, tn] if valid else dt(0.0)
        if compute_grad:
            for j in range(tid, V, ROW_THREADS):
                g = dt(0.0)
                if valid:
                    g = math.exp(z[n, j] - lse)
                    if j == tn:
                        g -= dt(1.0)
                    g *= w
                grad[n, j] = g

    @cuda.jit
    def _finish(losses, mean, count, loss):         # one block: loss (1,) = Σ losses (/ count)
        buf = cuda.shared.array(ROW_THREADS, dtype=dt)
        s = dt(0.0)
        for n in range(cuda.threadIdx.x, losses.size, ROW_THREADS):
            s += losses[n]
        total = block_sum(buf, s)
        if cuda.threadIdx.x == 0:
            if mean:
                total = total / count[0] if count[0] > dt(0.0) else dt(0.0)
            loss[0] = total

    return _count_valid, _ce_rows, _finish


def cross_entropy_forward_cuda(logits, targets, ignore_index=-100, reduction="mean", compute_grad=True):
    if reduction not in _REDUCTIONS:
        raise ConfigError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    lshape = tuple(logits.shape)
    V = lshape[-1]
    if tuple(targets.shape) != lshape[:-1] or not np.issubdtype(targets.dtype, np.integer):
        raise DataError(f"targets must be an integer array of shape {lshape[:-1]}, got {targets.dtype} {tuple(targets.shape)}")
    N = logits.size // V
    z = logits.reshape(N, V)
    t = targets.reshape(N)
    dt = logits.dtype
    count_k, rows_k, finish_k = _kernels(dt.type)
    count = cuda.device_array(1, dtype=dt)
    losses = cuda.device_array(max(N, 1), dtype=dt)
    grad = cuda.device_array((N, V) if compute_grad else (1, 1), dtype=dt)
    loss = cuda.device_array(1, dtype=dt)
    mean = reduction == "mean"
    launch(count_k, 1, ROW_THREADS, t, V, ignore_index, count)
    if N:
        launch(rows_k, N, ROW_THREADS, z, t, ignore_index, mean, count, compute_grad, grad, losses)
    launch(finish_k, 1, ROW_THREADS, losses[:N], mean, count, loss)
    return loss.reshape(()), ((grad.reshape(*lshape) if compute_grad else None), lshape)


def cross_entropy_backward_cuda(dloss, cache):
    grad, lshape = cache
    if grad is None:
        raise RuntimeError("cross_entropy_backward needs a forward run with compute_grad=True")
    # dL is a GPU scalar: scale on the GPU (reading it would be a copy to the host per step)
    return _scale_by(grad, dloss)


@cuda.jit
def _scale_by_kernel(x, s, out):
    i = cuda.grid(1)
    if i < x.size:
        out[i] = x[i] * s[0]


def _scale_by(x, s):
    out = cuda.device_array(tuple(x.shape), dtype=x.dtype)
    launch1(_scale_by_kernel, x.size, flat(x), s.reshape(1), flat(out))
    return out


@register(CrossEntropyFunction, "cuda")
class CrossEntropyCuda:
    @staticmethod
    def forward(ctx, logits, targets, ignore_index=-100, reduction="mean", weights=None):
        if weights is not None:
            from ..errors import ConfigError
            raise ConfigError("per-token loss weights (a weighted loss mask) run on the CPU only; "
                              "the CUDA cross-entropy kernel takes 0/1 masks")
        return cross_entropy_forward_cuda(logits, targets, ignore_index, reduction, compute_grad=ctx.grad_enabled)

    @staticmethod
    def backward(ctx, grad):
        return cross_entropy_backward_cuda(grad, ctx.cache), None
