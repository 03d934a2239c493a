# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The fast sampler: the same pipeline and the same answers as ``sample_ref``, in C loops.

Where the time goes in the reference, and what this file does instead:
- float32 -> float64 copy, NaN/inf checks, temperature and the max: one fused pass over V
  (the reference makes ~6 passes and as many temporaries);
- top-k: the k-th largest logit from a size-k min-heap, one pass, no copy (O(V log k), and
  almost every element is rejected by one comparison with the heap's root); np.partition
  only when k is large;
- top-p: the nucleus is usually a few dozen tokens, so instead of sorting all V weights we
  take the best 64, sort those, and only if their mass falls short of top_p look at the best
  256, 1024, ... (the same heap/partition selection each time);
- exp: np.exp on our buffer — the *same* routine the reference calls, so the weights, and
  therefore the token drawn, are bit-identical (libm's exp may differ in the last bit).
Every sum is a left-to-right running sum in the order the reference uses.
"""
import threading

import numpy as np

from libc.stdlib cimport qsort
from libc.math cimport isnan, INFINITY

from ..errors import ConfigError
from ._checks import GREEDY_TEMPERATURE, check_args, check_logits, make_rng

ctypedef fused real_t:
    float
    double

# heap selection below this k, np.partition above (heap cost grows with log k, partition's not)
DEF HEAP_MAX_K = 2048
DEF NUCLEUS_FIRST = 64

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


cdef int _load(const real_t[::1] src, double[::1] dst) noexcept nogil:
    """Copy to float64. Returns 0 ok, 1 NaN, 2 +inf, 3 all -inf."""
    cdef Py_ssize_t i, n = src.shape[0]
    cdef double v
    cdef bint any_finite = False
    for i in range(n):
        v = <double>src[i]
        if isnan(v):
            return 1
        if v == INFINITY:
            return 2
        if v != -INFINITY:
            any_finite = True
        dst[i] = v
    return 0 if any_finite else 3


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
    cdef int status
    (temp, top_k, top_p, min_p, rep, freq, pres, hist) = check_args(
        temperature, top_k, top_p, min_p, repetition_penalty, frequency_penalty, presence_penalty,
        history, V)

    ws = _workspace.get(V)
    cdef double[::1] z = ws.z  # (V,) float64 working copy of the logits
    src = np.ascontiguousarray(arr)
    if src.dtype == np.float32:
        status = _load[float](src, z)
    else:
        status = _load[double](src, z)
    if status == 1:
        raise ConfigError(f"logits: contains NaN at index {int(np.flatnonzero(np.isnan(src))[0])}")
    if status == 2:
        raise ConfigError(f"logits: contains +inf at index {int(np.flatnonzero(np.isposinf(src))[0])} "
                          "(use -inf to mask tokens)")
    if status == 3:
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

    # 2. greedy or temperature (fused with the max)
    if temp < GREEDY_TEMPERATURE:
        j = 0
        for i in range(1, V):
            if z[i] > z[j]:
                j = i
        return int(j)
    zmax = -INFINITY
    for i in range(V):
        z[i] = z[i] / temp
        if z[i] > zmax:
            zmax = z[i]
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
        for i in range(V):
            ids[i] = i
            w[i] = z[i] - zmax
    np.exp(w_arr[:n], out=w_arr[:n])  # the same exp as the reference: bit-identical weights

    # 4. top-p: grow the sorted head (64, 256, ...) until it holds top_p of the mass
    cdef WeightPos[::1] head
    cdef Py_ssize_t[::1] pos
    if top_p is not None:
        total = 0.0
        for i in range(n):
            total += w[i]
        target = top_p * total
        c = min(NUCLEUS_FIRST, n)
        pos = ws.pos
        head = ws.head
        n_keep = n
        while True:
            kth = _kth_largest(w, n, c, scratch)
            m = _collect_top(&w[0], n, c, kth, &pos[0])
            for i in range(m):
                head[i].w = w[pos[i]]
                head[i].pos = pos[i]
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
            if c == n:  # rounding left the full mass a hair below target: keep everything
                n_keep = n
                break
            c = min(4 * c, n)
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
