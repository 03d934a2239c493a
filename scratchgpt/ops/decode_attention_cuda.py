"""Attention over the KV cache on the GPU (decode_attention.py's math, no autograd).

Rows r = (slot s_r, position p_r) first write their k, v into K[s_r, :, p_r], V[s_r, :, p_r];
then each (row, head) attends over t = 0 .. p_r:
    a_t = q · K[s_r, h, t] / sqrt(HS),   y_r[h] = Σ_t softmax(a)_t V[s_r, h, t]

Two launches, because every write must land before any read (a prompt's rows read each
other's keys): (1) one thread per (row, head, d) copies k and v into the cache; (2) one thread
per (row, head) runs an online softmax over the cached positions (running max and sum, y
rescaled when the max grows), so no score buffer is needed.
"""
from __future__ import annotations

import math

import numpy as np

from ..cuda_arrays import cuda, launch1, require_device


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


def cached_attention_cuda(qkv, k_cache, v_cache, slots, positions, n_head, out=None):
    """qkv (R, 3C); k_cache, v_cache (S, NH, Tmax, HS), updated in place; slots, positions (R,)
    int device arrays (positions: cache positions). Returns y (R, C) on the GPU (``out``)."""
    require_device(qkv, k_cache, v_cache, slots, positions, out, where="cached_attention_cuda")
    R = qkv.shape[0]
    HS = k_cache.shape[3]
    C = n_head * HS
    if out is None:
        out = cuda.device_array((R, C), dtype=qkv.dtype)
    launch1(_write_kv_cuda, R * C, qkv, slots, positions, n_head, k_cache, v_cache)
    launch1(_attend_cuda, R * n_head, qkv, slots, positions, k_cache, v_cache, np.float32(1.0 / math.sqrt(HS)), out)
    return out
