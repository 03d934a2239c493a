"""Attention over the KV cache on the GPU (decode_attention.py's math, no autograd).

Rows r = (slot s_r, position p_r) first write their k, v into K[s_r, :, p_r], V[s_r, :, p_r];
then each (row, head) attends over t = 0 .. p_r:
    a_t = q · K[s_r, h, t] / sqrt(HS),   y_r[h] = Σ_t softmax(a)_t V[s_r, h, t]

Two launches, because every write must land before any read (a prompt's rows read each
other's keys): (1) one thread per (row, head, d) copies k and v into the cache; (2) one thread
per (row, head) runs an online softmax over the cached positions (running max and sum, y
rescaled when the max grows), so no score buffer is needed.

That second launch has only R × NH threads, each walking its whole cache: fine for a prefill
(many rows) or a short cache, but a batch-1 decode step at position 1000 of a 12-head model is
12 threads reading 1000 keys each while the GPU has thousands of cores idle. The split version
(``split=True``, flash-decoding style) cuts the cache into chunks of CHUNK = 32 positions:

    (2') one block of CHUNK threads per (chunk c, row, head); thread j scores position
         t = 32c + j, the block finds the chunk's max m_c (``block_max``), weights
         e_t = exp(a_t - m_c), their sum l_c (``block_sum``), and acc_c[d] = Σ_t e_t V[t, d]
         (the e_t in shared memory, thread j adds up dimension d = j, j + 32, ...);
    (3') a combine: y[d] = Σ_c exp(m_c - M) acc_c[d] / Σ_c exp(m_c - M) l_c,  M = max_c m_c —
         the same online-softmax rescaling as (2), done once across chunks.
Chunks past a row's position hold nothing (m_c = -3e38, l_c = 0, acc_c = 0) and weigh
exp(-3e38 - M) = 0. ``choose_split`` picks it when few (row, head) pairs meet a long cache;
the simple kernel stays the reference-like variant the tests compare it with.
"""
from __future__ import annotations

import math

import numpy as np

from ..cuda_arrays import ROW_THREADS, block_max, block_sum, cuda, launch, launch1, require_device

CHUNK = ROW_THREADS          # cache positions per block of the split kernel (one warp)
NEG = np.float32(-3.0e38)    # "no score": exp(NEG - M) is exactly 0, and NEG - NEG is 0, not NaN
SPLIT_MIN_LEN = 256          # split when the longest cache in the step holds at least this many ...
SPLIT_MAX_PAIRS = 2048       # ... and the step has at most this many (row, head) pairs


@cuda.jit
def _write_kv_cuda(qkv, slots, positions, NH, K, V):   # qkv (R, 3C); K, V (S, NH, Tmax, HS)
    i = cuda.grid(1)
    R = qkv.shape[0]
    HS = K.shape[3]
    C = NH * HS
    if i < R * C:
        r = i // C
        c = i % C
        h = c // HS
        d = c % HS
        K[slots[r], h, positions[r], d] = qkv[r, C + c]
        V[slots[r], h, positions[r], d] = qkv[r, 2 * C + c]


@cuda.jit
def _attend_cuda(qkv, slots, positions, K, V, scale, out):   # out (R, C)
    i = cuda.grid(1)
    R = qkv.shape[0]
    NH = K.shape[1]
    HS = K.shape[3]
    if i < R * NH:
        r = i // NH
        h = i % NH
        s = slots[r]
        p = positions[r]
        o = h * HS
        m = np.float32(0.0)
        l = np.float32(0.0)
        for t in range(p + 1):
            a = np.float32(0.0)
            for d in range(HS):
                a += qkv[r, o + d] * K[s, h, t, d]
            a *= scale
            if t == 0:
                m = a
                l = np.float32(1.0)
                for d in range(HS):
                    out[r, o + d] = V[s, h, t, d]
            else:
                m_new = max(m, a)
                c_old = math.exp(m - m_new)
                c_new = math.exp(a - m_new)
                l = l * c_old + c_new
                for d in range(HS):
                    out[r, o + d] = out[r, o + d] * c_old + c_new * V[s, h, t, d]
                m = m_new
        for d in range(HS):
            out[r, o + d] = out[r, o + d] / l


@cuda.jit
def _attend_chunks_cuda(qkv, slots, positions, K, V, scale, m_out, l_out, acc):
    # grid (n_chunks, R * NH), block CHUNK; m_out, l_out (R, NH, n_chunks); acc (R, NH, n_chunks, HS)
    buf = cuda.shared.array(CHUNK, dtype=np.float32)
    e_sh = cuda.shared.array(CHUNK, dtype=np.float32)
    c = cuda.blockIdx.x
    pair = cuda.blockIdx.y
    j = cuda.threadIdx.x
    NH = K.shape[1]
    HS = K.shape[3]
    R = qkv.shape[0]
    r = pair // NH
    h = pair % NH
    t = c * CHUNK + j
    valid = False
    a = NEG
    if r < R:
        s = slots[r]
        p = positions[r]
        if t <= p and t < K.shape[2]:
            valid = True
            o = h * HS
            a = np.float32(0.0)
            for d in range(HS):
                a += qkv[r, o + d] * K[s, h, t, d]
            a *= scale
    m = block_max(buf, a)                  # every thread reaches the barriers inside
    e = np.float32(0.0)
    if valid:
        e = math.exp(a - m)
    e_sh[j] = e
    l = block_sum(buf, e)
    if r < R:
        s = slots[r]
        for d in range(j, HS, CHUNK):
            acc_d = np.float32(0.0)
            for k in range(CHUNK):
                tk = c * CHUNK + k
                if e_sh[k] != np.float32(0.0) and tk < K.shape[2]:
                    acc_d += e_sh[k] * V[s, h, tk, d]
            acc[r, h, c, d] = acc_d
        if j == 0:
            m_out[r, h, c] = m
            l_out[r, h, c] = l


@cuda.jit
def _combine_chunks_cuda(m_in, l_in, acc, out):   # one thread per (row, head, d); out (R, C)
    i = cuda.grid(1)
    R = acc.shape[0]
    NH = acc.shape[1]
    nc = acc.shape[2]
    HS = acc.shape[3]
    if i < R * NH * HS:
        r = i // (NH * HS)
        h = (i // HS) % NH
        d = i % HS
        M = m_in[r, h, 0]
        for c in range(1, nc):
            M = max(M, m_in[r, h, c])
        num = np.float32(0.0)
        den = np.float32(0.0)
        for c in range(nc):
            w = math.exp(m_in[r, h, c] - M)
            num += w * acc[r, h, c, d]
            den += w * l_in[r, h, c]
        out[r, h * HS + d] = num / den


def choose_split(rows: int, n_head: int, max_len: int) -> bool:
    """The split kernel when few (row, head) pairs meet a long cache (decode at a late position);
    the one-thread-per-pair kernel otherwise (prefill, short caches)."""
    return max_len >= SPLIT_MIN_LEN and rows * n_head <= SPLIT_MAX_PAIRS


_SCRATCH: dict = {}


def _scratch(name, shape):
    """Partial-result buffers of the split kernel, kept per shape (a decode loop reuses them)."""
    key = (name, shape)
    buf = _SCRATCH.get(key)
    if buf is None:
        if len(_SCRATCH) > 24:
            _SCRATCH.clear()
        buf = _SCRATCH[key] = cuda.device_array(shape, dtype=np.float32)
    return buf


def split_scratch_size(rows: int, n_head: int, t_max: int, head_size: int) -> int:
    """float32 elements of the split kernel's partial results (m, l: (R, NH, nc); acc: (R, NH, nc,
    HS)) for up to ``rows`` rows and caches of up to ``t_max`` positions: what a caller that
    decodes step after step preallocates once and passes as ``scratch``."""
    nc = max(1, (int(t_max) + CHUNK - 1) // CHUNK)
    return int(rows) * int(n_head) * nc * (int(head_size) + 2)


def _carve(scratch, R, n_head, nc, HS):
    """m, l, acc as contiguous views of the front of the flat ``scratch`` (None when too small)."""
    n = R * n_head * nc
    if scratch is None or scratch.size < n * (HS + 2):
        return None
    m = scratch[:n].reshape((R, n_head, nc))
    l_ = scratch[n:2 * n].reshape((R, n_head, nc))
    acc = scratch[2 * n:n * (HS + 2)].reshape((R, n_head, nc, HS))
    return m, l_, acc


def cached_attention_cuda(qkv, k_cache, v_cache, slots, positions, n_head, out=None, split=None, max_len=None,
                          scratch=None):
    """qkv (R, 3C); k_cache, v_cache (S, NH, Tmax, HS), updated in place; slots, positions (R,)
    int device arrays (positions: cache positions). Returns y (R, C) on the GPU (``out``).

    ``max_len``: the longest cache length any row reads (max position + 1; the host knows it),
    default Tmax. ``split``: True = the chunked kernel, False = one thread per (row, head),
    None = ``choose_split``. ``scratch``: a flat float32 device array of at least
    ``split_scratch_size`` elements for the split kernel's partial results (the engine's runner
    keeps one, so a decode step allocates nothing); None or too small: buffers kept per shape
    in this module."""
    require_device(qkv, k_cache, v_cache, slots, positions, out, scratch, where="cached_attention_cuda")
    R = qkv.shape[0]
    HS = k_cache.shape[3]
    C = n_head * HS
    if out is None:
        out = cuda.device_array((R, C), dtype=qkv.dtype)
    Tmax = int(k_cache.shape[2])
    max_len = Tmax if max_len is None else min(int(max_len), Tmax)
    if split is None:
        split = choose_split(R, n_head, max_len)
    scale = np.float32(1.0 / math.sqrt(HS))
    launch1(_write_kv_cuda, R * C, qkv, slots, positions, n_head, k_cache, v_cache)
    if not split:
        launch1(_attend_cuda, R * n_head, qkv, slots, positions, k_cache, v_cache, scale, out)
        return out
    nc = max(1, (max_len + CHUNK - 1) // CHUNK)
    parts = _carve(scratch, R, n_head, nc, HS)
    if parts is None:
        parts = _scratch("m", (R, n_head, nc)), _scratch("l", (R, n_head, nc)), _scratch("acc", (R, n_head, nc, HS))
    m, l, acc = parts
    launch(_attend_chunks_cuda, (nc, R * n_head), CHUNK, qkv, slots, positions, k_cache, v_cache, scale, m, l, acc)
    launch1(_combine_chunks_cuda, R * C, m, l, acc, out)
    return out
