"""Causal self-attention on the GPU — the simple, correct version (one thread per query row).

Same math as attention.py, per (batch b, head h, query t), with s = 1/sqrt(HS):
    S_tj = s · q_t·k_j  (j ≤ t),   P_tj = exp(S_tj − lse_t),   lse_t = log Σ_j exp(S_tj)
    y_t = Σ_j P_tj v_j
Backward, with D_t = dy_t·y_t = Σ_j P_tj (dy_t·v_j):
    dS_tj = P_tj (dy_t·v_j − D_t);   dq_t = s Σ_j dS_tj k_j;   dk_j += s dS_tj q_t;   dv_j += P_tj dy_t

Threads: one per (b, h, t), B·NH·T in all, in blocks of 128. The forward keeps the running
maximum and sum of an online softmax (one pass for the statistics, one to accumulate y), so it
never stores the (T, T) matrix P: it caches only lse (B, NH, T) and recomputes P in the backward.
Each thread owns its dq row; dk and dv rows are shared by every later query, so those adds are
``cuda.atomic.add``. This is the readable baseline; ``_attn_forward_tiled`` below is the faster forward (K/V
tiles through shared memory, flash-attention style) and runs by default for head sizes <= 128;
both are tested against the reference. The backward likewise: the simple one below and a tiled
one (``_tiled_backward_kernels``: no atomics) that runs by default. (None has been timed on a
real GPU yet.)
"""
from __future__ import annotations

import functools
import math
import types

import numpy as np

from ..autograd.function import register
from ..cuda_arrays import cuda, launch, launch1, zeros
from .attention import CausalSelfAttentionFunction, _split_qkv_shape


@functools.cache
def _kernels(dt):
    @cuda.jit
    def _attn_forward_cuda(qkv, NH, scale, out, lse):    # qkv (B, T, 3C); out (B, T, C); lse (B, NH, T)
        i = cuda.grid(1)
        B, T, C3 = qkv.shape
        C = C3 // 3
        HS = C // NH
        if i < B * NH * T:
            t = i % T
            h = (i // T) % NH
            b = i // (T * NH)
            qo = h * HS
            ko = C + h * HS
            vo = 2 * C + h * HS
            m = dt(0.0)
            ssum = dt(0.0)
            for j in range(t + 1):
                sc = dt(0.0)
                for d in range(HS):
                    sc += qkv[b, t, qo + d] * qkv[b, j, ko + d]
                sc *= scale
                if j == 0:
                    m = sc
                    ssum = dt(1.0)
                elif sc > m:
                    ssum = ssum * math.exp(m - sc) + dt(1.0)
                    m = sc
                else:
                    ssum += math.exp(sc - m)
            L = m + math.log(ssum)
            lse[b, h, t] = L
            for d in range(HS):
                out[b, t, qo + d] = dt(0.0)
            for j in range(t + 1):
                sc = dt(0.0)
                for d in range(HS):
                    sc += qkv[b, t, qo + d] * qkv[b, j, ko + d]
                p = math.exp(sc * scale - L)
                for d in range(HS):
                    out[b, t, qo + d] += p * qkv[b, j, vo + d]

    @cuda.jit
    def _attn_backward_cuda(qkv, out, dout, lse, NH, scale, dqkv):   # dqkv (B, T, 3C), zeroed
        i = cuda.grid(1)
        B, T, C3 = qkv.shape
        C = C3 // 3
        HS = C // NH
        if i < B * NH * T:
            t = i % T
            h = (i // T) % NH
            b = i // (T * NH)
            qo = h * HS
            ko = C + h * HS
            vo = 2 * C + h * HS
            D = dt(0.0)
            for d in range(HS):
                D += dout[b, t, qo + d] * out[b, t, qo + d]
            L = lse[b, h, t]
            for j in range(t + 1):
                sc = dt(0.0)
                dp = dt(0.0)
                for d in range(HS):
                    sc += qkv[b, t, qo + d] * qkv[b, j, ko + d]
                    dp += dout[b, t, qo + d] * qkv[b, j, vo + d]
                p = math.exp(sc * scale - L)
                ds = p * (dp - D) * scale
                for d in range(HS):
                    dqkv[b, t, qo + d] += ds * qkv[b, j, ko + d]
                    cuda.atomic.add(dqkv, (b, j, ko + d), ds * qkv[b, t, qo + d])
                    cuda.atomic.add(dqkv, (b, j, vo + d), p * dout[b, t, qo + d])

    return _attn_forward_cuda, _attn_backward_cuda


# ---- the tiled forward: a block of QT threads per (b, h, tile of QT queries), keys and values
# through shared memory. Each thread still owns one query row (its q and running output in local
# memory), but the block's QT threads load one tile of QT keys and values from global memory
# together (thread i loads key j0 + i) and all read it from shared memory: every key row is read
# from global memory once per query *tile* instead of once per query. Causal: the block stops at
# its last query's position, so the upper-triangle tiles are never loaded. All threads of the
# block reach both barriers of every tile (the loop bound is the same for the whole block; rows
# past T only skip the arithmetic).
QT = 32           # queries per block = keys per shared tile
HS_MAX = 128      # head sizes up to this use the tiled kernel (GPT-2: 64); larger ones the simple one


def hs_max(dt) -> int:
    """The largest head size the tiled kernels of dtype ``dt`` take: their two (QT, hs) shared
    tiles must fit the 48 KiB of static shared memory a block gets. float32: HS_MAX = 128, 32 KiB;
    float64: 64, 32 KiB (128 would need 64 KiB: ptxas refuses it — benchmarks/ptx_check.py)."""
    return HS_MAX * 4 // np.dtype(dt).itemsize


@functools.cache
def _tiled_kernel(dt):
    HSM = hs_max(dt)          # a closure constant: the shared and local arrays' size is known at compile time

    @cuda.jit
    def _attn_forward_tiled(qkv, NH, scale, out, lse):   # grid (ceil(T / QT), B * NH), block QT
        sk = cuda.shared.array((QT, HSM), dtype=dt)
        sv = cuda.shared.array((QT, HSM), dtype=dt)
        q = cuda.local.array(HSM, dtype=dt)
        acc = cuda.local.array(HSM, dtype=dt)
        tid = cuda.threadIdx.x
        b = cuda.blockIdx.y // NH
        h = cuda.blockIdx.y % NH
        B, T, C3 = qkv.shape
        C = C3 // 3
        HS = C // NH
        qo = h * HS
        ko = C + h * HS
        vo = 2 * C + h * HS
        t0 = cuda.blockIdx.x * QT
        t = t0 + tid
        live = t < T
        for d in range(HS):
            acc[d] = dt(0.0)
            q[d] = qkv[b, t, qo + d] * scale if live else dt(0.0)
        m = dt(0.0)
        ssum = dt(0.0)
        last = min(t0 + QT, T)                     # keys 0 .. last-1 are all this block needs
        for j0 in range(0, last, QT):
            j = j0 + tid
            for d in range(HS):
                sk[tid, d] = qkv[b, j, ko + d] if j < T else dt(0.0)
                sv[tid, d] = qkv[b, j, vo + d] if j < T else dt(0.0)
            cuda.syncthreads()
            if live:
                for jj in range(QT):
                    if j0 + jj <= t:
                        sc = dt(0.0)
                        for d in range(HS):
                            sc += q[d] * sk[jj, d]
                        if ssum == dt(0.0):            # the first key: start the online softmax
                            m = sc
                            ssum = dt(1.0)
                            for d in range(HS):
                                acc[d] = sv[jj, d]
                        else:
                            m_new = max(m, sc)
                            c_old = math.exp(m - m_new)
                            c_new = math.exp(sc - m_new)
                            ssum = ssum * c_old + c_new
                            for d in range(HS):
                                acc[d] = acc[d] * c_old + c_new * sv[jj, d]
                            m = m_new
            cuda.syncthreads()                     # the tile is read by all before it is overwritten
        if live:
            for d in range(HS):
                out[b, t, qo + d] = acc[d] / ssum
            lse[b, h, t] = m + math.log(ssum)
    return _attn_forward_tiled


# ---- the tiled backward: two kernels shaped like the tiled forward, no atomics. With
# D_t = dy_t·y_t (a small first kernel) and P_tj = exp(s q_t·k_j - lse_t) recomputed:
#   _dq_tiled:  a block per (query tile, b, h), thread = query t (q_t, dy_t and its dq in local
#               memory); key/value tiles pass through shared memory; dq_t = s Σ_j dS_tj k_j.
#   _dkv_tiled: a block per (key tile, b, h), thread = key j (k_j, v_j, dk_j, dv_j local); the
#               query tiles t >= j0 (causal) pass through shared memory with their dy, lse, D;
#               dk_j = s Σ_t dS_tj q_t,  dv_j = Σ_t P_tj dy_t.
# Every output has one writer (the simple backward adds dk/dv with atomics from every query),
# so the result is the same every run; the price is computing P twice, once per kernel.
@functools.cache
def _tiled_backward_kernels(dt):
    HSM = hs_max(dt)

    @cuda.jit
    def _rowdot(dout, out, NH, D):                    # D (B, NH, T) = Σ_d dy·y per head
        i = cuda.grid(1)
        B, T, C = out.shape
        HS = C // NH
        if i < B * NH * T:
            t = i % T
            h = (i // T) % NH
            b = i // (T * NH)
            acc = dt(0.0)
            for d in range(HS):
                acc += dout[b, t, h * HS + d] * out[b, t, h * HS + d]
            D[b, h, t] = acc

    @cuda.jit
    def _dq_tiled(qkv, dout, lse, D, NH, scale, dqkv):
        sk = cuda.shared.array((QT, HSM), dtype=dt)
        sv = cuda.shared.array((QT, HSM), dtype=dt)
        q = cuda.local.array(HSM, dtype=dt)
        dy = cuda.local.array(HSM, dtype=dt)
        dq = cuda.local.array(HSM, dtype=dt)
        tid = cuda.threadIdx.x
        b = cuda.blockIdx.y // NH
        h = cuda.blockIdx.y % NH
        B, T, C3 = qkv.shape
        C = C3 // 3
        HS = C // NH
        qo = h * HS
        t0 = cuda.blockIdx.x * QT
        t = t0 + tid
        live = t < T
        L = lse[b, h, t] if live else dt(0.0)
        Dt = D[b, h, t] if live else dt(0.0)
        for d in range(HS):
            q[d] = qkv[b, t, qo + d] if live else dt(0.0)
            dy[d] = dout[b, t, qo + d] if live else dt(0.0)
            dq[d] = dt(0.0)
        last = min(t0 + QT, T)
        for j0 in range(0, last, QT):
            j = j0 + tid
            for d in range(HS):
                sk[tid, d] = qkv[b, j, C + qo + d] if j < T else dt(0.0)
                sv[tid, d] = qkv[b, j, 2 * C + qo + d] if j < T else dt(0.0)
            cuda.syncthreads()
            if live:
                for jj in range(QT):
                    if j0 + jj <= t:
                        sc = dt(0.0)
                        dp = dt(0.0)
                        for d in range(HS):
                            sc += q[d] * sk[jj, d]
                            dp += dy[d] * sv[jj, d]
                        ds = math.exp(sc * scale - L) * (dp - Dt) * scale
                        for d in range(HS):
                            dq[d] += ds * sk[jj, d]
            cuda.syncthreads()
        if live:
            for d in range(HS):
                dqkv[b, t, qo + d] = dq[d]

    @cuda.jit
    def _dkv_tiled(qkv, dout, lse, D, NH, scale, dqkv):
        sq = cuda.shared.array((QT, HSM), dtype=dt)
        sdy = cuda.shared.array((QT, HSM), dtype=dt)
        sl = cuda.shared.array(QT, dtype=dt)
        sd = cuda.shared.array(QT, dtype=dt)
        k = cuda.local.array(HSM, dtype=dt)
        v = cuda.local.array(HSM, dtype=dt)
        dk = cuda.local.array(HSM, dtype=dt)
        dv = cuda.local.array(HSM, dtype=dt)
        tid = cuda.threadIdx.x
        b = cuda.blockIdx.y // NH
        h = cuda.blockIdx.y % NH
        B, T, C3 = qkv.shape
        C = C3 // 3
        HS = C // NH
        qo = h * HS
        j0 = cuda.blockIdx.x * QT
        j = j0 + tid
        live = j < T
        for d in range(HS):
            k[d] = qkv[b, j, C + qo + d] if live else dt(0.0)
            v[d] = qkv[b, j, 2 * C + qo + d] if live else dt(0.0)
            dk[d] = dt(0.0)
            dv[d] = dt(0.0)
        for t0 in range(j0, T, QT):                   # causal: queries before j0 never see these keys
            t = t0 + tid
            for d in range(HS):
                sq[tid, d] = qkv[b, t, qo + d] if t < T else dt(0.0)
                sdy[tid, d] = dout[b, t, qo + d] if t < T else dt(0.0)
            sl[tid] = lse[b, h, t] if t < T else dt(0.0)
            sd[tid] = D[b, h, t] if t < T else dt(0.0)
            cuda.syncthreads()
            if live:
                for tt in range(QT):
                    if t0 + tt < T and t0 + tt >= j:
                        sc = dt(0.0)
                        dp = dt(0.0)
                        for d in range(HS):
                            sc += sq[tt, d] * k[d]
                            dp += sdy[tt, d] * v[d]
                        p = math.exp(sc * scale - sl[tt])
                        ds = p * (dp - sd[tt]) * scale
                        for d in range(HS):
                            dk[d] += ds * sq[tt, d]
                            dv[d] += p * sdy[tt, d]
            cuda.syncthreads()
        if live:
            for d in range(HS):
                dqkv[b, j, C + qo + d] = dk[d]
                dqkv[b, j, 2 * C + qo + d] = dv[d]

    return _rowdot, _dq_tiled, _dkv_tiled


def causal_self_attention_forward_cuda(qkv, n_head, version="auto"):
    """version: "simple" (one thread per query, every key from global memory), "tiled" (shared
    K/V tiles; head size <= hs_max(dtype)) or "auto" (tiled when it fits). Both cache lse for the same
    backward."""
    # the shape checks of the CPU op, on the shape alone (the simulator's shape object has no [-1])
    B, T, C, NH, HS = _split_qkv_shape(types.SimpleNamespace(ndim=qkv.ndim, shape=tuple(qkv.shape)), n_head)
    out = cuda.device_array((B, T, C), dtype=qkv.dtype)
    lse = cuda.device_array((B, NH, T), dtype=qkv.dtype)
    scale = qkv.dtype.type(1.0 / math.sqrt(HS))
    top = hs_max(qkv.dtype)
    if version == "auto":
        version = "tiled" if HS <= top else "simple"
    if version == "tiled":
        if HS > top:
            raise ValueError(f"the tiled attention kernel takes head sizes <= {top} ({qkv.dtype}), got {HS}")
        launch(_tiled_kernel(qkv.dtype.type), ((T + QT - 1) // QT, B * NH), QT, qkv, NH, scale, out, lse)
    else:
        fwd, _ = _kernels(qkv.dtype.type)
        launch1(fwd, B * NH * T, qkv, NH, scale, out, lse)
    return out, (qkv, out, lse, NH)


def causal_self_attention_backward_cuda(dout, cache, version="auto"):
    """version: "simple" (a thread per query, atomics for dk/dv), "tiled" (shared tiles, no
    atomics; head size <= hs_max(dtype)) or "auto" (tiled when it fits)."""
    qkv, out, lse, NH = cache
    B, T, C3 = qkv.shape
    HS = C3 // 3 // NH
    scale = qkv.dtype.type(1.0 / math.sqrt(HS))
    top = hs_max(qkv.dtype)
    if version == "auto":
        version = "tiled" if HS <= top else "simple"
    if version == "tiled":
        if HS > top:
            raise ValueError(f"the tiled attention kernels take head sizes <= {top} ({qkv.dtype}), got {HS}")
        rowdot, dq_k, dkv_k = _tiled_backward_kernels(qkv.dtype.type)
        D = cuda.device_array((B, NH, T), dtype=qkv.dtype)
        launch1(rowdot, B * NH * T, dout, out, NH, D)
        dqkv = cuda.device_array(tuple(qkv.shape), dtype=qkv.dtype)      # every element written once
        grid = ((T + QT - 1) // QT, B * NH)
        launch(dq_k, grid, QT, qkv, dout, lse, D, NH, scale, dqkv)
        launch(dkv_k, grid, QT, qkv, dout, lse, D, NH, scale, dqkv)
        return dqkv
    dqkv = zeros(tuple(qkv.shape), qkv.dtype)
    _, bwd = _kernels(qkv.dtype.type)
    launch1(bwd, B * NH * T, qkv, out, dout, lse, NH, scale, dqkv)
    return dqkv


@register(CausalSelfAttentionFunction, "cuda")
class CausalSelfAttentionCuda:
    @staticmethod
    def forward(ctx, qkv, n_head):
        return causal_self_attention_forward_cuda(qkv, n_head)

    @staticmethod
    def backward(ctx, grad):
        return (causal_self_attention_backward_cuda(grad, ctx.cache),)
