# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The fast sampler: the same pipeline and the same answers as ``sample_ref``, in C loops.

Where the time goes in the reference, and what this file does instead:
- float32 -> float64 copy, NaN/inf checks, temperature: SIMD NumPy calls writing into
  per-thread buffers that are reused across calls (no temporaries, no page faults), and one
  max() does all three checks (NaN propagates, +inf wins, all -inf stays -inf); the
  reference makes ~6 passes and allocates as many temporaries;
- top-k: the k-th largest logit from a size-k min-heap, one pass, no copy (O(V log k), and
  almost every element is rejected by one comparison with the heap's root); np.partition
  only when k is large;
- top-p: the nucleus is usually a few dozen to a few thousand tokens, so instead of sorting all
  V weights one pass sums the mass per power of two of the weight, which bounds the weight of
  the nucleus' last token; only the tokens above that bound are sorted;
- exp: np.exp on our buffer — the *same* routine the reference calls, so the weights, and
  therefore the token drawn, are bit-identical (libm's exp may differ in the last bit).
Every sum is a left-to-right running sum in the order the reference uses.
"""
import threading

import numpy as np

from libc.stdlib cimport qsort
from libc.math cimport INFINITY, ldexp

from ..errors import ConfigError
from ._checks import GREEDY_TEMPERATURE, check_args, check_logits, make_rng

# heap selection below this k, np.partition above (heap cost grows with log k, partition's not)
DEF HEAP_MAX_K = 2048

cdef struct WeightPos:
    double w
    Py_ssize_t pos


cdef int _cmp_weight_desc(const void* a, const void* b) noexcept nogil:
    # higher weight first; equal weights: lower position (= lower token id) first
    cdef const WeightPos* x = <const WeightPos*>a
    cdef const WeightPos* y = <const WeightPos*>b
    if x.w > y.w:
        return -1
    if x.w < y.w:
        return 1
    return (x.pos > y.pos) - (x.pos < y.pos)


cdef int _cmp_pos_asc(const void* a, const void* b) noexcept nogil:
    cdef Py_ssize_t x = (<const Py_ssize_t*>a)[0]
    cdef Py_ssize_t y = (<const Py_ssize_t*>b)[0]
    return (x > y) - (x < y)


cdef void _heap_sift_down(double* h, Py_ssize_t n, Py_ssize_t i) noexcept nogil:
    cdef Py_ssize_t c
    cdef double v = h[i]
    while True:
        c = 2 * i + 1
        if c >= n:
            break
        if c + 1 < n and h[c + 1] < h[c]:
            c += 1
        if h[c] >= v:
            break
        h[i] = h[c]
        i = c
    h[i] = v


cdef void _heap_sift_up(double* h, Py_ssize_t i) noexcept nogil:
    cdef Py_ssize_t p
    cdef double v = h[i]
    while i > 0:
        p = (i - 1) // 2
        if h[p] <= v:
            break
        h[i] = h[p]
        i = p
    h[i] = v


cdef double _kth_largest_heap(const double* x, Py_ssize_t n, Py_ssize_t k, double* heap) noexcept nogil:
    """k-th largest of x[0:n] (1 <= k <= n) with a size-k min-heap in ``heap``."""
    cdef Py_ssize_t i
    for i in range(k):
        heap[i] = x[i]
        _heap_sift_up(heap, i)
    for i in range(k, n):
        if x[i] > heap[0]:
            heap[0] = x[i]
            _heap_sift_down(heap, k, 0)
    return heap[0]


cdef double _kth_largest(double[::1] x, Py_ssize_t n, Py_ssize_t k, double[::1] scratch):
    if k <= HEAP_MAX_K:
        return _kth_largest_heap(&x[0], n, k, &scratch[0])
    # np.partition copies; fine at large k where the copy is a small part of the work
    return float(np.partition(np.asarray(x[:n]), n - k)[n - k])


cdef Py_ssize_t _collect_top(const double* x, Py_ssize_t n, Py_ssize_t k, double kth,
                             Py_ssize_t* out) noexcept nogil:
    """Positions of the k largest of x[0:n] (ties at ``kth`` -> lowest positions), increasing."""
    cdef Py_ssize_t i, n_above = 0, m = 0, ties_left
    for i in range(n):
        if x[i] > kth:
            n_above += 1
    ties_left = k - n_above
    for i in range(n):
        if x[i] > kth:
            out[m] = i
            m += 1
        elif x[i] == kth and ties_left > 0:
            out[m] = i
            m += 1
            ties_left -= 1
    return m


cdef double _nucleus_threshold(const double* w, Py_ssize_t n, double target) noexcept nogil:
    """A weight threshold t such that the nucleus (almost surely) lies within {w >= t}.

    One pass sums the weights per binary exponent (bucket b holds w in [2^-b, 2^-b+1), read
    straight from the float's exponent bits), then walks the buckets from the heaviest weights
    down until their mass reaches ``target``, and returns the lower edge of the *next* bucket:
    one bucket of slack because the bucket sums round differently from the exact running sum.
    The caller checks the exact sums anyway and falls back to t = 0 (all tokens) if short.
    """
    cdef double mass[1025]
    cdef Py_ssize_t i
    cdef int b
    cdef unsigned long long bits
    cdef double run = 0.0
    for b in range(1025):
        mass[b] = 0.0
    for i in range(n):
        bits = (<const unsigned long long*>w)[i]  # w in [0, 1]: sign bit 0
        mass[1023 - <int>(bits >> 52)] += w[i]      # 1.0 -> 0, [0.5, 1) -> 1, ..., subnormal/0 -> 1023
    for b in range(1023):
        run += mass[b]
        if run >= target:
            if b + 1 >= 1022:
                return 0.0
            return ldexp(1.0, -(b + 1))
    return 0.0


class _Workspace(threading.local):
    """Per-thread scratch arrays, grown on demand and reused across calls.

    Why: fresh np.empty buffers of V float64 come from mmap, and first-touching their pages
    cost more than the whole sampling pass (~0.3 ms of page faults at V=50k). Thread-local
    because np.exp releases the GIL on large arrays, so two threads could otherwise interleave.
    """

    def __init__(self):
        self.cap = 0

    def get(self, Py_ssize_t V):
        if V > self.cap:
            self.cap = V
            self.z = np.empty(V, dtype=np.float64)
            self.w = np.empty(V, dtype=np.float64)
            self.ids = np.empty(V, dtype=np.intp)
            self.pos = np.empty(V, dtype=np.intp)
            self.head = np.empty(V, dtype=np.dtype([("w", np.float64), ("pos", np.intp)]))
            self.heap = np.empty(HEAP_MAX_K, dtype=np.float64)
        return self


_workspace = _Workspace()


def sample(logits, temperature=1.0, top_k=None, top_p=None, min_p=None, repetition_penalty=1.0,
           frequency_penalty=0.0, presence_penalty=0.0, history=None, rng=None):
    """Pick the next token id from ``logits`` (V,); same contract and same answers as ``sample_ref``."""
    gen = make_rng(rng)
    arr = check_logits(logits)
    cdef Py_ssize_t V = arr.shape[0]
    cdef double temp, rep, freq, pres, zmax, kth, total, target, run, u, minp
    cdef Py_ssize_t i, j, n, k, c, n_keep, m, t
    (temp, top_k, top_p, min_p, rep, freq, pres, hist) = check_args(
        temperature, top_k, top_p, min_p, repetition_penalty, frequency_penalty, presence_penalty,
        history, V)
    ws = _workspace.get(V)
    z_arr = ws.z[:V]
    cdef double[::1] z = z_arr  # (V,) float64 working copy of the logits
    np.copyto(z_arr, arr)       # SIMD float32 -> float64, the same conversion as astype
    # one SIMD max answers all three checks: NaN propagates, +inf wins, all -inf stays -inf
    zmax = z_arr.max()
    if not (zmax < INFINITY and zmax > -INFINITY):
        if zmax != zmax:
            raise ConfigError(f"logits: contains NaN at index {int(np.flatnonzero(np.isnan(arr))[0])}")
        if zmax == INFINITY:
            raise ConfigError(f"logits: contains +inf at index {int(np.flatnonzero(np.isposinf(arr))[0])} "
                              "(use -inf to mask tokens)")
        raise ConfigError("logits: every token is -inf (masked); nothing can be sampled")

    # 1. penalties, once per distinct token seen
    cdef const long long[::1] seen_v
    cdef const long long[::1] count_v
    if hist.shape[0] and (rep != 1.0 or freq != 0.0 or pres != 0.0):
        seen, counts = np.unique(hist, return_counts=True)
        seen_v = seen.astype(np.int64)
        count_v = counts.astype(np.int64)
        for j in range(seen_v.shape[0]):
            t = seen_v[j]
            if rep != 1.0:
                z[t] = z[t] / rep if z[t] > 0 else z[t] * rep
            if freq != 0.0 or pres != 0.0:
                z[t] = z[t] - <double>count_v[j] * freq - pres

    # 2. greedy, or temperature (vectorized NumPy: the exact IEEE ops of the reference)
    if temp < GREEDY_TEMPERATURE:
        return int(np.argmax(z_arr))
    np.divide(z_arr, temp, out=z_arr)
    zmax = z_arr.max()
    if zmax == INFINITY:
        raise ConfigError(f"logits: too large for temperature {temp} (overflow to inf)")


    # 3. top-k -> ids (increasing) and their logits shifted by the max, packed in w
    w_arr = ws.w
    cdef double[::1] w = w_arr
    cdef Py_ssize_t[::1] ids = ws.ids
    cdef double[::1] scratch = ws.heap
    if top_k is not None:
        k = top_k
        kth = _kth_largest(z, V, k, scratch)
        n = _collect_top(&z[0], V, k, kth, &ids[0])
        for i in range(n):
            w[i] = z[ids[i]] - zmax
    else:
        n = V
        np.subtract(z_arr, zmax, out=w_arr[:V])
        for i in range(V):
            ids[i] = i
    np.exp(w_arr[:n], out=w_arr[:n])  # the same exp as the reference: bit-identical weights

    # 4. top-p: sort only the tokens that can be in the nucleus
    cdef WeightPos[::1] head
    cdef Py_ssize_t[::1] pos
    cdef double thr
    if top_p is not None:
        total = 0.0
        for i in range(n):
            total += w[i]
        target = top_p * total
        pos = ws.pos
        head = ws.head
        thr = _nucleus_threshold(&w[0], n, target)
        while True:
            # {w >= thr} is a prefix of the (weight desc, id asc) order, so the running sums
            # over it, sorted, are exactly the reference's first running sums
            m = 0
            for i in range(n):
                if w[i] >= thr:
                    head[m].w = w[i]
                    head[m].pos = i
                    m += 1
            qsort(&head[0], m, sizeof(WeightPos), _cmp_weight_desc)
            run = 0.0
            j = -1
            for i in range(m):
                run += head[i].w
                if run >= target:
                    j = i
                    break
            if j >= 0:
                n_keep = j + 1
                break
            if thr <= 0.0:  # every token was a candidate: rounding left the mass a hair short
                n_keep = n
                break
            thr = 0.0  # the bucket estimate was off by rounding: take every token
        if n_keep < n:
            for i in range(n_keep):
                pos[i] = head[i].pos
            qsort(&pos[0], n_keep, sizeof(Py_ssize_t), _cmp_pos_asc)  # back to id order
            for i in range(n_keep):  # compact in place: pos[i] >= i, increasing
                ids[i] = ids[pos[i]]
                w[i] = w[pos[i]]
            n = n_keep

    # 5. min-p: weights are p / p_max already
    if min_p is not None:
        minp = min_p
        m = 0
        for i in range(n):
            if w[i] >= minp:
                ids[m] = ids[i]
                w[m] = w[i]
                m += 1
        n = m

    # 6. one uniform draw, inverse CDF in increasing id order
    u = gen.random()
    total = 0.0
    for i in range(n):
        total += w[i]
    target = u * total
    run = 0.0
    for i in range(n):
        run += w[i]
        if run > target:
            return int(ids[i])
    for i in range(n - 1, -1, -1):  # u * total rounded up to total
        if w[i] > 0:
            return int(ids[i])
    return int(ids[0])
