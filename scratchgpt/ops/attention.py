"""Causal multi-head self-attention, fused forward and backward.

Input ``qkv`` (B, T, 3C) is the output of GPT-2's ``c_attn``: [q | k | v] along the last dim.
Each of q, k, v is split into NH heads of size HS = C / NH, giving (B, NH, T, HS). Per head:

    S = q k^T · s                    s = 1 / sqrt(HS)                       (T, T)
    S_ij = -inf for j > i            (causal mask: a token sees only itself and the past)
    P = softmax(S) along j                                                   (T, T)
    y = P v                                                                  (T, HS)

and the heads are merged back to (B, T, C) (the input of ``c_proj``).

Backward, with dy the gradient of y (one head):

    dv = P^T dy
    dP = dy v^T
    dS_ij = P_ij (dP_ij - sum_k P_ik dP_ik)      (softmax Jacobian; masked P_ij = 0 -> dS_ij = 0)
    dq = dS k · s,   dk = dS^T q · s

Fast CPU path (chosen by measurement, see the numbers below ``causal_self_attention_forward``):
the matrix products run as batched BLAS calls (``np.matmul`` over (B, NH) on strided views of
``qkv``, no head-split copies; split into causal row blocks so the all-masked upper blocks are
never computed), and everything between them — scale, causal mask, max-subtracted softmax,
and the softmax backward — is one fused Numba pass per row, in place.
Forward caches ``qkv`` (a reference, not a copy) and the probabilities P (B, NH, T, T).
"""
from __future__ import annotations

import math

import numpy as np
from numba import prange

from ..autograd import Function, Tensor
from ..errors import ConfigError, DataError
from ._numba import EXP_ROWS, njit_pair
from ._vexp import _exp_parts, exp_affine_sum_inplace, row_max

# fastmath EXP_ROWS (see _numba.py): vectorised max/sum reductions and SIMD exp; -inf and NaN
# still behave as IEEE says. exp_affine_sum_inplace / row_max: SIMD float32 exp and max (see
# _vexp.py; Numba's own np.exp and max do not vectorise).


def check_heads(n_embd: int, n_head, owner: str = "") -> int:
    """The one check that ``n_embd`` splits into ``n_head`` heads; returns the head size HS.

    Used where a width and a head count enter: GPTConfig / Seq2SeqConfig, the training config,
    the attention layers and these ops. ``owner`` prefixes the message (e.g. "GPTConfig.")."""
    if isinstance(n_head, bool) or not isinstance(n_head, (int, np.integer)) or n_head <= 0:
        raise ConfigError(f"{owner}n_head must be a positive int, got {n_head!r}")
    if n_embd % n_head:
        raise ConfigError(f"{owner}n_embd ({n_embd}) must be divisible by n_head ({n_head})")
    return int(n_embd) // int(n_head)


def _split_qkv_shape(qkv: np.ndarray, n_head: int):
    if qkv.ndim != 3 or qkv.shape[-1] % 3 != 0:
        raise DataError(f"qkv must have shape (B, T, 3C), got {qkv.shape}")
    B, T, C3 = qkv.shape
    C = C3 // 3
    HS = check_heads(C, n_head)
    return B, T, C, int(n_head), HS


def _heads(x: np.ndarray, B: int, T: int, NH: int, HS: int) -> np.ndarray:
    """(B, T, C) view -> (B, NH, T, HS) view (no copy; the rows of each head stay strided)."""
    return x.reshape(B, T, NH, HS).transpose(0, 2, 1, 3)


# ============================================================================ reference (float64)
def causal_self_attention_forward_ref(qkv, n_head):
    """The definition, written plainly in float64. Returns (out (B, T, C), cache)."""
    qkv = np.asarray(qkv, dtype=np.float64)
    B, T, C, NH, HS = _split_qkv_shape(qkv, n_head)
    q = qkv[:, :, :C].reshape(B, T, NH, HS).transpose(0, 2, 1, 3)         # (B, NH, T, HS)
    k = qkv[:, :, C:2 * C].reshape(B, T, NH, HS).transpose(0, 2, 1, 3)    # (B, NH, T, HS)
    v = qkv[:, :, 2 * C:].reshape(B, T, NH, HS).transpose(0, 2, 1, 3)     # (B, NH, T, HS)
    scale = 1.0 / math.sqrt(HS)
    s = q @ k.transpose(0, 1, 3, 2) * scale                               # (B, NH, T, T)
    future = np.triu(np.ones((T, T), dtype=bool), k=1)
    s = np.where(future, -np.inf, s)
    s = s - s.max(axis=-1, keepdims=True)
    e = np.exp(s)
    p = e / e.sum(axis=-1, keepdims=True)                                  # (B, NH, T, T)
    y = p @ v                                                              # (B, NH, T, HS)
    out = y.transpose(0, 2, 1, 3).reshape(B, T, C)                         # (B, T, C)
    return out, (q, k, v, p, scale)


def causal_self_attention_backward_ref(dout, cache):
    """Gradient w.r.t. qkv (B, T, 3C), float64."""
    q, k, v, p, scale = cache
    B, NH, T, HS = q.shape
    C = NH * HS
    dy = np.asarray(dout, dtype=np.float64).reshape(B, T, NH, HS).transpose(0, 2, 1, 3)
    dv = p.transpose(0, 1, 3, 2) @ dy                                      # (B, NH, T, HS)
    dp = dy @ v.transpose(0, 1, 3, 2)                                      # (B, NH, T, T)
    ds = p * (dp - (p * dp).sum(axis=-1, keepdims=True))                   # (B, NH, T, T)
    dq = ds @ k * scale
    dk = ds.transpose(0, 1, 3, 2) @ q * scale
    merge = lambda t: t.transpose(0, 2, 1, 3).reshape(B, T, C)             # noqa: E731
    return np.concatenate([merge(dq), merge(dk), merge(dv)], axis=-1)      # (B, T, 3C)


# ============================================================================ fast CPU path
@njit_pair(fastmath=EXP_ROWS)
def _causal_softmax_inplace(att, scale):
    """att (BH, T, T) raw scores q k^T in; causal softmax(scale * scores) out, in place.

    BH*T rows in contiguous chunks over the threads; the upper triangle is written as 0.
    """
    BH, T, _ = att.shape
    zero = np.zeros(1, dtype=att.dtype)[0]  # a 0 of the input dtype keeps float32 math float32
    R = BH * T
    n_chunks = min(R, 64)                   # rows in contiguous chunks: scratch allocated per chunk
    for c in prange(n_chunks):
        ibuf = np.empty(T, dtype=np.int32)
        acc = np.empty(16, dtype=att.dtype)
        sc = np.empty(1, dtype=att.dtype)
        for r in range(c * R // n_chunks, (c + 1) * R // n_chunks):
            bh = r // T
            i = r - bh * T
            row = att[bh, i]
            live = row[:i + 1]                  # keys 0..i; the rest is the future
            m = row_max(live, acc) * scale
            total = exp_affine_sum_inplace(live, scale, m, ibuf)
            sc[0] = 1.0 / total                 # 1/total cast to the row's dtype (SIMD multiply)
            inv = sc[0]
            for j in range(i + 1):
                live[j] *= inv
            for j in range(i + 1, T):
                row[j] = zero


@njit_pair(fastmath=EXP_ROWS)
def _causal_softmax_inplace_f32(att, scale):
    """float32 only: the same result as ``_causal_softmax_inplace`` (to ~1 ulp), faster.

    Differences, each measured (1 thread, process CPU, median of 100, (48, T, T) scores):
    parallel over heads instead of row chunks, and every row is processed over its full
    width T with the future masked inside the exp loop (exp input -1e30 -> exactly 0), so
    the SIMD loops have one fixed length and no ragged scalar tails; _vexp's exp is inlined
    per element instead of called per row. T=64 (config S): 0.269 -> 0.189 ms;
    T=256 (config M): 3.35-3.62 -> 2.80-3.03 ms, although M's rows do twice the exp work.
    """
    BH, T, _ = att.shape
    masked = np.float32(-1e30)
    for bh in prange(BH):
        ibuf = np.empty(T, dtype=np.int32)      # bit patterns of 2^k, per row
        pow2 = ibuf.view(np.float32)
        acc = np.empty(16, dtype=np.float32)
        for i in range(T):
            row = att[bh, i]
            m = row_max(row[:i + 1], acc) * scale
            for j in range(T):
                x = row[j] * scale - m
                x = x if j <= i else masked
                row[j], ibuf[j] = _exp_parts(x)
            total = np.float32(0.0)
            for j in range(T):
                e = row[j] * pow2[j]
                row[j] = e
                total += e
            inv = np.float32(1.0) / total
            for j in range(T):
                row[j] *= inv


def _causal_softmax(att, scale):
    """att (BH, T, T) in place: the float32 kernel, or the dtype-generic one (float64 checks)."""
    if att.dtype == np.float32:
        _causal_softmax_inplace_f32.pick(att.size)(att, np.float32(scale))
    else:
        _causal_softmax_inplace.pick(att.size)(att, att.dtype.type(scale))


@njit_pair(fastmath=EXP_ROWS)
def _softmax_backward_inplace(p, dp, scale):
    """dp (R, N) gradient of the probabilities p (R, N) in; scale * dS out, in place.

    dS_ij = p_ij (dp_ij - sum_k p_ik dp_ik). Masked entries have p = 0, so they get dS = 0
    without the kernel knowing the mask. Used by cross attention (any mask); causal attention
    has its own kernel that skips the future.
    """
    R, N = p.shape
    for r in prange(R):
        prow = p[r]
        grow = dp[r]
        dot = prow[0] * grow[0]
        for j in range(1, N):
            dot += prow[j] * grow[j]
        for j in range(N):
            grow[j] = prow[j] * (grow[j] - dot) * scale


@njit_pair(fastmath=EXP_ROWS)
def _causal_softmax_backward_inplace(p, dp, scale):
    """dp (BH, T, T) gradient of the causal probabilities p in; scale * dS out, in place.

    dS_ij = p_ij (dp_ij - sum_k p_ik dp_ik) for j <= i; the future j > i is written as 0
    (the blocked products never filled it, so it may hold garbage — hence selects, not p = 0).
    Parallel over heads; each row is swept over its full width T with the mask as a select,
    so both loops are fixed-length SIMD loops without ragged tails. Measured (1 thread,
    process CPU, median of 100, (48, T, T) float32), vs the previous row-chunked kernel that
    looped over keys 0..i only: T=64 (config S) 0.127-0.134 -> 0.063 ms; T=256 (config M)
    3.27-3.32 -> 1.30-1.34 ms.
    """
    BH, T, _ = p.shape
    zero = np.zeros(1, dtype=p.dtype)[0]   # a 0 of the input dtype keeps float32 math float32
    for bh in prange(BH):
        for i in range(T):
            prow = p[bh, i]
            grow = dp[bh, i]
            dot = zero
            for j in range(T):
                t = prow[j] * grow[j]
                dot += t if j <= i else zero
            for j in range(T):
                t = prow[j] * (grow[j] - dot) * scale
                grow[j] = t if j <= i else zero


# Block size of the causal blocking: the products are split into row blocks of this many
# queries, and block r only multiplies against keys 0 .. end of block r — the all-masked
# upper blocks are never computed. With nb blocks the work is (nb+1)/(2 nb) of the dense
# products (T=256: 4 blocks -> 62.5%). Smaller blocks waste less but make smaller, slower GEMMs.
# Config M forward+backward, 1 thread, CPU time: no blocking 42.2 ms, block 128: 37.8 ms,
# 64: 35.5 ms, 32: 36.5 ms.
_CAUSAL_BLOCK = 64


def _blocks(T: int, block: int):
    """[(start, stop)] row blocks covering 0..T."""
    return [(s, min(s + block, T)) for s in range(0, T, block)]


def causal_self_attention_forward(qkv, n_head):
    """Fast path: batched BLAS for q k^T and P v (causally blocked), fused Numba softmax between.

    Returns (out (B, T, C), cache); cache = (qkv, P, n_head).

    Design, measured (forward+backward, float32, min over repeats; benchmarks/attention_design.py
    and benchmarks/fused_ops.py). The shared 2-core machine was heavily loaded by parallel jobs,
    so these are 1-thread process-CPU times, which waiting does not inflate:
                                              config S            config M
                                              B=12 T=64 C=128     B=8 T=256 C=384
                                              NH=4                NH=6
      (a) BLAS + fused Numba softmax (chosen)   1.3 ms             32.5 ms
      (b) one fully fused Numba kernel         17.7 ms            520 ms
      (a) without causal blocking              (T=64 = one block)  42.2 ms
      torch 2.13 sdpa (is_causal=True)          1.8 ms             39.6 ms
      torch explicit composition                2.6 ms             53.5 ms
    (b) loses because Numba's loop dot products do not reach BLAS's register-blocked FMA
    throughput, and its backward scatters into dk/dv rows; it is kept in the benchmark only.
    Earlier 2-thread wall times, at lighter load: S (a) 1.36 ms vs (b) 14.0 ms; M (a) 53 ms
    vs (b) 398 ms (before causal blocking); torch sdpa 6.1 / 25.5 ms. Final 2-thread wall
    (load ~2): S (a) 1.14 ms vs sdpa 1.57 ms; M (a) 28.1 ms vs sdpa 24.0 ms — M scales poorly
    to 2 threads because each (b, h) GEMM is too small for OpenBLAS to thread.
    Not adopted: (c) split the batch over Python threads, each running serial nogil kernels
    and 1-thread BLAS; it did not pay on the shared 2-core machine (numbers and code in
    benchmarks/attention_split.py).
    """
    B, T, C, NH, HS = _split_qkv_shape(qkv, n_head)
    att = np.empty((B, NH, T, T), dtype=qkv.dtype)                         # (B, NH, T, T)
    out = np.empty((B, T, C), dtype=qkv.dtype)                             # (B, T, C)
    forward_into(qkv, att, out, NH, HS)
    return out, (qkv, att, NH)


def causal_self_attention_backward(dout, cache):
    """Gradient w.r.t. qkv (B, T, 3C), same dtype as the forward input."""
    qkv, att, NH = cache
    B, T, C3 = qkv.shape
    C = C3 // 3
    HS = C // NH
    dt = qkv.dtype
    dout = dout.astype(dt, copy=False)                                     # (B, T, C)
    dqkv = np.empty((B, T, C3), dtype=dt)                                  # (B, T, 3C)
    datt = np.empty((B, NH, T, T), dtype=dt)                               # (B, NH, T, T)
    backward_into(qkv, att, dout, dqkv, datt, NH, HS)
    return dqkv


# ---------------------------------------------------------------------------- the two passes
# Written into caller-owned buffers, so a caller can also run them on batch slices
# (benchmarks/attention_split.py does, one slice per Python thread).
def forward_into(qkv, att, out, NH, HS):
    """Forward into att (B, NH, T, T) and out (B, T, C); qkv (B, T, 3C). Views are fine."""
    B, T, C3 = qkv.shape
    C = C3 // 3
    q = _heads(qkv[:, :, :C], B, T, NH, HS)                                # (B, NH, T, HS) view
    kT = _heads(qkv[:, :, C:2 * C], B, T, NH, HS).transpose(0, 1, 3, 2)    # (B, NH, HS, T) view
    v = _heads(qkv[:, :, 2 * C:], B, T, NH, HS)                            # (B, NH, T, HS) view
    blocks = _blocks(T, _CAUSAL_BLOCK)
    for r0, r1 in blocks:                                                  # scores of keys <= r1
        np.matmul(q[:, :, r0:r1], kT[:, :, :, :r1], out=att[:, :, r0:r1, :r1])
    a3 = att.reshape(B * NH, T, T)
    _causal_softmax(a3, 1.0 / math.sqrt(HS))
    y = _heads(out, B, T, NH, HS)                                          # heads merged in place
    for r0, r1 in blocks:
        np.matmul(att[:, :, r0:r1, :r1], v[:, :, :r1], out=y[:, :, r0:r1])


def backward_into(qkv, att, dout, dqkv, datt, NH, HS):
    """Backward into dqkv (B, T, 3C), using datt (B, NH, T, T) as scratch. Views are fine."""
    B, T, C3 = qkv.shape
    C = C3 // 3
    q = _heads(qkv[:, :, :C], B, T, NH, HS)
    k = _heads(qkv[:, :, C:2 * C], B, T, NH, HS)
    v = _heads(qkv[:, :, 2 * C:], B, T, NH, HS)
    dy = _heads(dout, B, T, NH, HS)                                        # (B, NH, T, HS)
    dq = _heads(dqkv[:, :, :C], B, T, NH, HS)
    dk = _heads(dqkv[:, :, C:2 * C], B, T, NH, HS)
    dv = _heads(dqkv[:, :, 2 * C:], B, T, NH, HS)
    blocks = _blocks(T, _CAUSAL_BLOCK)
    attT = att.transpose(0, 1, 3, 2)
    # dv[keys c0:c1] = sum over queries i >= c0 of P_ic dy_i  (queries before c0 cannot see them)
    for c0, c1 in blocks:
        np.matmul(attT[:, :, c0:c1, c0:], dy[:, :, c0:], out=dv[:, :, c0:c1])
    vT = v.transpose(0, 1, 3, 2)
    for r0, r1 in blocks:
        np.matmul(dy[:, :, r0:r1], vT[:, :, :, :r1], out=datt[:, :, r0:r1, :r1])
    kern = _causal_softmax_backward_inplace.pick(att.size)
    kern(att.reshape(B * NH, T, T), datt.reshape(B * NH, T, T), qkv.dtype.type(1.0 / math.sqrt(HS)))
    for r0, r1 in blocks:
        np.matmul(datt[:, :, r0:r1, :r1], k[:, :, :r1], out=dq[:, :, r0:r1])
    dattT = datt.transpose(0, 1, 3, 2)
    for c0, c1 in blocks:
        np.matmul(dattT[:, :, c0:c1, c0:], q[:, :, c0:], out=dk[:, :, c0:c1])


# ---- numba.cuda kernel: ops/attention_cuda.py (its class is registered for device "cuda") ----


# ============================================================================ autograd
class CausalSelfAttentionFunction(Function):
    @staticmethod
    def forward(ctx, qkv, n_head):
        return causal_self_attention_forward(qkv, n_head)

    @staticmethod
    def backward(ctx, grad):
        dqkv = causal_self_attention_backward(grad, ctx.cache)
        return (dqkv,)


def causal_self_attention(qkv, n_head: int) -> Tensor:
    """qkv (B, T, 3C) = [q | k | v] -> (B, T, C): causal multi-head attention, heads merged."""
    if not isinstance(qkv, Tensor):
        qkv = Tensor(qkv)
    return CausalSelfAttentionFunction.apply(qkv, n_head=n_head)
