"""Weight-only quantized matmul: out = x @ W (+ b) computed straight from int8 / int4 weights.

Math (symmetric, one float32 scale per group of G consecutive *input* features, like llama.cpp's
Q8_0 and Q4_0). W is (K, N) in GPT-2's Conv1D layout (K = in_features, N = out_features). For
output feature n and group g (input features k in [g*G, (g+1)*G)):
    d[n, g]  = max_k |W[k, n]| / QMAX          QMAX = 127 (int8) or 7 (int4)
    q[n, k]  = clip(rint(W[k, n] / d[n, g]), -QMAX, QMAX)      (q = 0 where d = 0)
    W~[k, n] = d[n, g] * q[n, k]               |W - W~| <= d / 2 per element
    out[m, n] = Σ_g d[n, g] · Σ_{k in g} x[m, k] q[n, k]  (+ b[n])
Rounding to nearest makes the error at most half a quantization step d/2. int4 uses the
symmetric range [-7, 7] (not llama.cpp's [-8, 7] with d = max/-8): with -8 in play, the side
of the group opposite the extreme value can round to +8 and be clipped to 7, an error of a
whole step; the symmetric range keeps the d/2 bound at the price of one unused code.

Storage (C-contiguous, one row per OUTPUT feature, so a matrix-vector product reads each row
once, front to back — the transpose of the float (K, N) layout, like llama.cpp's ggml rows):
    int8:  q      (N, Kp) int8         Kp = ceil(K / G) * G
           scales (N, Kp / G) float32
    int4:  packed (N, Kp / 2) uint8    in blocks of 32 values (Q4_0's block, whatever G is):
           block b of row n is the 16 bytes packed[n, 16b : 16b + 16]; its byte i holds
               low nibble  = q[n, 32b + i]      + 8
               high nibble = q[n, 32b + 16 + i] + 8
           (offset 8 makes the nibble unsigned, 1..15; 0 never occurs). Splitting a block into
           a first and a second half, as Q4_0 does, lets the kernel unpack 16 low and 16 high
           nibbles with two contiguous, vectorisable loops instead of an even/odd shuffle.
           scales (N, Kp / G) float32
G is a multiple of 32 in [32, 256] (default 32; G = 64 halves the scale bytes). Bytes per
weight: int8 1 + 4/G (1.125 at G = 32), int4 0.5 + 4/G (0.625).
Odd shapes: K need not be a multiple of G. The rule is PAD: the last group is padded with
zero weights (which quantize exactly to 0), its scale comes from its real elements only, and
the kernels never read x past column K-1 (the last partial block of 32 runs in a small tail
kernel; GPT shapes never need it).

Fast path (why two of them):
- ``M <= ROWS_MAX_M`` (decode: one row per live sequence, up to 32): a Numba kernel, parallel
  over output features, that walks each packed row once and keeps x in cache (with
  ``act_quant``, the int8-activation kernels below). Decode is memory
  bound — float32 weights cost 4 bytes per multiply-add, int8 1.125, int4 0.625 — so reading
  fewer bytes is the whole speed-up (if the arithmetic keeps up: see the kernel comments).
- ``ROWS_MAX_M < M < BLAS_MIN_ROWS`` (short prefills): compute bound. Each
  parallel job dequantizes its JOB (16) output features into a small float32 scratch (16 x Kp:
  48-192 KiB, in L2) and multiplies it by all M rows in 4 x 4 register blocks — one parallel
  region per call, no BLAS. It replaced tile + BLAS here: OpenBLAS threads every gemm and on
  the shared machine each of the ~200 tile calls of a GPT-2 lm_head waited for its second
  thread (measured under load: 11.4 s for the 32-token prefill of GPT-2 124M int8, float32
  0.22 s).
- ``M >= BLAS_MIN_ROWS`` (long prefills): a hand loop loses to BLAS by ~5x. Each
  block of ``TILE_N`` output features is dequantized by a Numba kernel into one reused
  (TILE_N, Kp) float32 buffer and multiplied by BLAS. No dequantized copy of the matrix exists
  at any time: the buffer is TILE_N rows (256 x 3072 x 4 B = 3 MiB at most for GPT-2 124M).
Both are tested against ``*_linear_ref`` (float64, dequantize then matmul).
"""
from __future__ import annotations

import numpy as np
from numba import prange

from ..errors import ConfigError
from ._numba import STRICT, SUMS, njit_helper, njit_inline, njit_pair
from .decode_matmul import block_product
from .int_dot import dot4_q4, dot4_q8, dot4x4_q4, dot4x4_q8

INT8_QMAX = 127
INT4_QMAX = 7
INT4_OFFSET = 8
DEFAULT_GROUP_SIZE = 32
ROWS_MAX_M = 32        # up to this many rows: the row kernels (infer/forward.py's CPU_DECODE_CHUNK)
BLAS_MIN_ROWS = 256    # rows of x from which the tile-dequantize + BLAS path runs (= DenseLinear's)
TILE_N = 256           # output features dequantized per BLAS tile
BLOCK = 32             # values per kernel block (and per int4 packing block)
JOB = 16               # output features per parallel job
HALF = BLOCK // 2


def check_group_size(group_size, bits: int = 8) -> int:
    """A multiple of BLOCK (32) in [32, 256]: the kernels work in blocks of 32 values."""
    if isinstance(group_size, bool) or not isinstance(group_size, (int, np.integer)) \
            or not BLOCK <= group_size <= 256 or group_size % BLOCK:
        raise ConfigError(f"int{bits} group size must be a multiple of {BLOCK} in [{BLOCK}, 256], "
                          f"got {group_size!r}")
    return int(group_size)


def _groups(k: int, group_size: int) -> int:
    return -(-k // group_size)


# ----------------------------------------------------------------------------- reference
def _quantize_ref(w, group_size, qmax):
    """W (K, N) float -> (q (N, Kp) int64 in [-qmax, qmax], scales (N, ng) float32)."""
    group_size = check_group_size(group_size, 8 if qmax == INT8_QMAX else 4)
    w = np.asarray(w, dtype=np.float64)
    if w.ndim != 2:
        raise ConfigError(f"quantize: weight must be 2-D (in, out), got shape {w.shape}")
    k, n = w.shape
    ng = _groups(k, group_size)
    wt = np.zeros((n, ng * group_size), dtype=np.float64)
    wt[:, :k] = w.T                                                  # (N, Kp), zero padded
    g = wt.reshape(n, ng, group_size)                                # (N, ng, G)
    # the stored scale is float32: quantize with the rounded scale, so the d/2 bound holds
    # for the numbers the kernels actually multiply by
    scales = (np.abs(g).max(axis=2) / qmax).astype(np.float32)       # (N, ng)
    d = scales.astype(np.float64)[:, :, None]
    inv = np.divide(1.0, d, out=np.zeros_like(d), where=d > 0)
    q = np.clip(np.rint(g * inv), -qmax, qmax).astype(np.int64)
    return q.reshape(n, ng * group_size), scales


def quantize_int8(w, group_size: int = DEFAULT_GROUP_SIZE):
    """W (K, N) -> (q (N, Kp) int8, scales (N, Kp/G) float32). Offline, float64 arithmetic."""
    q, s = _quantize_ref(w, group_size, INT8_QMAX)
    return q.astype(np.int8), s


def quantize_int4(w, group_size: int = DEFAULT_GROUP_SIZE):
    """W (K, N) -> (packed (N, Kp/2) uint8, scales (N, Kp/G) float32). Offline, float64 arithmetic."""
    q, s = _quantize_ref(w, group_size, INT4_QMAX)
    return pack_int4_ref(q), s


def pack_int4_ref(q):
    """q (N, Kp) ints in [-8, 7], Kp a multiple of 32 -> packed (N, Kp/2) uint8 (layout above)."""
    q = np.asarray(q)
    n, kp = q.shape
    if kp % BLOCK:
        raise ConfigError(f"pack_int4: row length {kp} is not a multiple of {BLOCK}")
    if q.size and (q.min() < -INT4_OFFSET or q.max() > INT4_OFFSET - 1):
        raise ConfigError("pack_int4: values must lie in [-8, 7]")
    u = (q.astype(np.int64) + INT4_OFFSET).reshape(n, kp // BLOCK, BLOCK)
    packed = u[:, :, :HALF] | (u[:, :, HALF:] << 4)                  # (N, Kp/32, 16)
    return packed.reshape(n, kp // 2).astype(np.uint8)


def unpack_int4_ref(packed):
    """packed (N, Kp/2) uint8 -> q (N, Kp) int64 in [-8, 7]; the inverse of ``pack_int4_ref``."""
    p = np.asarray(packed).astype(np.int64)
    n, half_kp = p.shape
    if half_kp % HALF:
        raise ConfigError(f"unpack_int4: {half_kp} bytes per row is not a multiple of {HALF}")
    p = p.reshape(n, half_kp // HALF, HALF)
    q = np.concatenate([p & 0xF, p >> 4], axis=2) - INT4_OFFSET     # (N, Kp/32, 32)
    return q.reshape(n, 2 * half_kp)


def dequantize_int8_ref(q, scales, in_features: int):
    """-> W~ (K, N) float64: the weight the int8 kernels compute with."""
    q = np.asarray(q, dtype=np.float64)
    n, kp = q.shape
    g = kp // scales.shape[1]
    w = q.reshape(n, -1, g) * np.asarray(scales, dtype=np.float64)[:, :, None]
    return w.reshape(n, kp)[:, :in_features].T


def dequantize_int4_ref(packed, scales, in_features: int):
    """-> W~ (K, N) float64: the weight the int4 kernels compute with."""
    return dequantize_int8_ref(unpack_int4_ref(packed), scales, in_features)


def int8_linear_ref(x, q, scales, bias=None):
    """x (M, K) @ W~ (+ b) in float64."""
    x = np.asarray(x, dtype=np.float64)
    y = x @ dequantize_int8_ref(q, scales, x.shape[1])
    return y if bias is None else y + np.asarray(bias, dtype=np.float64)


def int4_linear_ref(x, packed, scales, bias=None):
    x = np.asarray(x, dtype=np.float64)
    y = x @ dequantize_int4_ref(packed, scales, x.shape[1])
    return y if bias is None else y + np.asarray(bias, dtype=np.float64)



def quantize_rows_ref(x):
    """Activation rows -> (xq (M, 32·nb) int64 in [-127, 127], dx (M, nb) float32), nb = ceil(K/32).

    Per block of 32 features of a row: dx = max|x| / 127 and xq = rint(x / dx), both computed in
    float32 exactly as the kernel does (so kernel and reference quantize to the same integers);
    a block of zeros gets dx = 0, xq = 0; a block holding inf/NaN gets xq = 0 and dx = NaN or
    inf, so that every output it touches comes out NaN, as the float path's would."""
    x = np.asarray(x, dtype=np.float32)
    m, k = x.shape
    nb = _groups(k, BLOCK)
    xp = np.zeros((m, nb * BLOCK), dtype=np.float32)
    xp[:, :k] = x
    g = xp.reshape(m, nb, BLOCK)
    amax = np.abs(g).max(axis=2)                                     # (M, nb), NaN propagates
    d = (amax / np.float32(INT8_QMAX)).astype(np.float32)
    ok = (d > 0) & (d < np.inf)
    with np.errstate(all="ignore"):
        v = np.rint(g / np.where(ok, d, np.float32(1))[:, :, None])   # float32 division, as the kernel
    v = np.clip(v, -INT8_QMAX, INT8_QMAX)
    v[~ok] = 0
    return v.astype(np.int64).reshape(m, nb * BLOCK), d


def _act_rows_ref(x):
    xq, dx = quantize_rows_ref(x)
    k = np.asarray(x).shape[1]
    return (xq.reshape(len(xq), -1, BLOCK) * dx.astype(np.float64)[:, :, None]).reshape(len(xq), -1)[:, :k]


def int8_act_linear_ref(x, q, scales, bias=None):
    """x quantized to int8 per block of 32 (``quantize_rows_ref``), then @ W~ (+ b) in float64."""
    return int8_linear_ref(_act_rows_ref(x), q, scales, bias)


def int4_act_linear_ref(x, packed, scales, bias=None):
    return int4_linear_ref(_act_rows_ref(x), packed, scales, bias)


# ----------------------------------------------------------------------------- Numba kernels
# Why the loops look like this. Decode is memory-bound in float32 but the quantized kernels are
# compute-bound (GPT-2 124M's int8 weights, 140 MB, are read in a few ms), so what counts is
# instructions per weight. Measured, 1 thread, the 48 block matrices of GPT-2 124M, one token
# (benchmarks/generate.py --qkernels; the machine shared with other jobs, min of 7):
# * a plain "part += x*q over the group, then acc += part*d" loop: 31-48 ms — LLVM vectorises a
#   loop 64 elements at a time, a 32-element group never reaches the vector body, and every
#   group ends in a horizontal sum. So each output row keeps BLOCK (32) partial sums in a small
#   array, folds the scale in per element, and the block loop has a compile-time trip count:
#   vector multiply-adds, one horizontal sum per row.
# * int4 packed as "byte i = low nibble q[i], high nibble q[16+i]": the old loop that unpacked
#   both nibbles into one expression of 16 lanes was NOT vectorised (scalar cvtsi2ss on xmm:
#   49-93 ms, slower than float32). What vectorises: the nibble ops done on uint8 (``byte &
#   uint8(15)``, ``byte >> uint8(4)``) and the two halves accumulated into lanes [0, 16) and
#   [16, 32) of the block's partial sums (zero-extend, convert, scale, FMA on 16-wide vectors).
# * 4 output rows per pass (4 x 32 partial sums, ``acc``): each x element loaded once per 4
#   rows, 4 independent FMA chains. int8 12-19 ms -> 10-16 ms, int4 (vectorised) 15-20 ->
#   12-15 ms (float32's row kernel: 22-23 ms). Rows past the job's end repeat its last row
#   (results rewritten with the same value), so every row runs through the same code: a row's
#   result does not depend on N, M or the thread.
# * tried and dropped: folding int4's "-8" into a per-group sum of x (5 % faster, but the
#   subtraction cancels digits: 4x the error against the float64 reference); unpacking a block
#   once into a scratch row shared by all M inputs (the (M, 4, 32) accumulator with a run-time
#   M did not vectorise: 5x slower).
# With G a run-time value, any loop between the group loop and the constant inner loop (or a
# "block // blocks_per_group" in the scale index) cost 1.3x-3x, so G = 32 (block = group) has
# its own kernels, and the general ones first copy the 4 rows' scales per block into ``ds``.
# fastmath SUMS (see _numba.py) lets LLVM reorder the float sums; the kernel-vs-ref tests bound
# the effect. The dequantising tiles only multiply: STRICT.
ROWS = 4               # output features per pass of the row kernels


@njit_helper(fastmath=STRICT)
def _sum_lanes(acc, r):
    # acc[r, 0:32] summed in one fixed (pairwise) order: under the kernels' 'reassoc' LLVM
    # summed the lanes differently in the serial and the parallel build (results 1-2 ulp apart),
    # and the engine may switch builds between decode steps (infer/build_choice.py)
    s0 = (acc[r, 0] + acc[r, 16]) + (acc[r, 8] + acc[r, 24])
    s1 = (acc[r, 1] + acc[r, 17]) + (acc[r, 9] + acc[r, 25])
    s2 = (acc[r, 2] + acc[r, 18]) + (acc[r, 10] + acc[r, 26])
    s3 = (acc[r, 3] + acc[r, 19]) + (acc[r, 11] + acc[r, 27])
    s4 = (acc[r, 4] + acc[r, 20]) + (acc[r, 12] + acc[r, 28])
    s5 = (acc[r, 5] + acc[r, 21]) + (acc[r, 13] + acc[r, 29])
    s6 = (acc[r, 6] + acc[r, 22]) + (acc[r, 14] + acc[r, 30])
    s7 = (acc[r, 7] + acc[r, 23]) + (acc[r, 15] + acc[r, 31])
    return ((s0 + s4) + (s2 + s6)) + ((s1 + s5) + (s3 + s7))


@njit_pair(fastmath=SUMS)
def _int8_rows32(x, q, scales, bias, out):
    # G == 32. x (M, K) f32, q (N, Kp) i8, scales (N, ng) f32, bias (N,) f32, out (M, N) f32
    M, K = x.shape
    N = q.shape[0]
    nfull = K // BLOCK                               # blocks without padding (tail: _int8_tail)
    for j in prange((N + JOB - 1) // JOB):
        acc = np.empty((ROWS, BLOCK), dtype=np.float32)   # once per job, not per row
        n = j * JOB
        nend = min(n + JOB, N)
        while n < nend:
            for m in range(M):
                for r in range(ROWS):
                    for i in range(BLOCK):
                        acc[r, i] = 0.0
                for g in range(nfull):
                    k0 = g * BLOCK
                    for r in range(ROWS):
                        nr = min(n + r, nend - 1)
                        d = scales[nr, g]
                        for i in range(BLOCK):
                            acc[r, i] += x[m, k0 + i] * (np.float32(q[nr, k0 + i]) * d)
                for r in range(ROWS):
                    nr = min(n + r, nend - 1)
                    out[m, nr] = _sum_lanes(acc, r) + bias[nr]
            n += ROWS


@njit_pair(fastmath=SUMS)
def _int8_rows(x, q, scales, bias, out):
    # any G (a multiple of 32); the same loop with each block's scale looked up first
    M, K = x.shape
    N = q.shape[0]
    per_group = q.shape[1] // scales.shape[1] // BLOCK
    nfull = K // BLOCK
    for j in prange((N + JOB - 1) // JOB):
        acc = np.empty((ROWS, BLOCK), dtype=np.float32)
        ds = np.empty((ROWS, max(nfull, 1)), dtype=np.float32)
        n = j * JOB
        nend = min(n + JOB, N)
        while n < nend:
            for r in range(ROWS):
                nr = min(n + r, nend - 1)
                for b in range(nfull):
                    ds[r, b] = scales[nr, b // per_group]
            for m in range(M):
                for r in range(ROWS):
                    for i in range(BLOCK):
                        acc[r, i] = 0.0
                for b in range(nfull):
                    k0 = b * BLOCK
                    for r in range(ROWS):
                        nr = min(n + r, nend - 1)
                        d = ds[r, b]
                        for i in range(BLOCK):
                            acc[r, i] += x[m, k0 + i] * (np.float32(q[nr, k0 + i]) * d)
                for r in range(ROWS):
                    nr = min(n + r, nend - 1)
                    out[m, nr] = _sum_lanes(acc, r) + bias[nr]
            n += ROWS


@njit_pair(fastmath=SUMS)
def _int8_tail(x, q, scales, out):
    # adds columns [32 * (K // 32), K) — the last, partial block — to out
    M, K = x.shape
    N = q.shape[0]
    G = q.shape[1] // scales.shape[1]
    for n in prange(N):
        for m in range(M):
            acc = np.float32(0.0)
            for k in range(K // BLOCK * BLOCK, K):
                acc += x[m, k] * (np.float32(q[n, k]) * scales[n, k // G])
            out[m, n] += acc


@njit_pair(fastmath=SUMS)
def _int4_rows32(x, packed, scales, bias, out):
    # G == 32. x (M, K) f32, packed (N, Kp/2) u8, scales (N, ng) f32, bias (N,) f32, out (M, N) f32
    M, K = x.shape
    H = BLOCK // 2                                   # a local: as a global it ran 1.7x slower
    N = packed.shape[0]
    nfull = K // BLOCK
    lo4 = np.uint8(15)
    for j in prange((N + JOB - 1) // JOB):
        acc = np.empty((ROWS, BLOCK), dtype=np.float32)
        n = j * JOB
        nend = min(n + JOB, N)
        while n < nend:
            for m in range(M):
                for r in range(ROWS):
                    for i in range(BLOCK):
                        acc[r, i] = 0.0
                for g in range(nfull):
                    b0 = g * H
                    k0 = g * BLOCK
                    for r in range(ROWS):
                        nr = min(n + r, nend - 1)
                        d = scales[nr, g]
                        for i in range(H):
                            byte = packed[nr, b0 + i]
                            acc[r, i] += x[m, k0 + i] * (np.float32(np.int32(byte & lo4) - 8) * d)
                            acc[r, H + i] += x[m, k0 + H + i] * (np.float32(np.int32(byte >> np.uint8(4)) - 8) * d)
                for r in range(ROWS):
                    nr = min(n + r, nend - 1)
                    out[m, nr] = _sum_lanes(acc, r) + bias[nr]
            n += ROWS


@njit_pair(fastmath=SUMS)
def _int4_rows(x, packed, scales, bias, out):
    M, K = x.shape
    H = BLOCK // 2                                   # a local: as a global it ran 1.7x slower
    N = packed.shape[0]
    per_group = 2 * packed.shape[1] // scales.shape[1] // BLOCK
    nfull = K // BLOCK
    lo4 = np.uint8(15)
    for j in prange((N + JOB - 1) // JOB):
        acc = np.empty((ROWS, BLOCK), dtype=np.float32)
        ds = np.empty((ROWS, max(nfull, 1)), dtype=np.float32)
        n = j * JOB
        nend = min(n + JOB, N)
        while n < nend:
            for r in range(ROWS):
                nr = min(n + r, nend - 1)
                for b in range(nfull):
                    ds[r, b] = scales[nr, b // per_group]
            for m in range(M):
                for r in range(ROWS):
                    for i in range(BLOCK):
                        acc[r, i] = 0.0
                for b in range(nfull):
                    b0 = b * H
                    k0 = b * BLOCK
                    for r in range(ROWS):
                        nr = min(n + r, nend - 1)
                        d = ds[r, b]
                        for i in range(H):
                            byte = packed[nr, b0 + i]
                            acc[r, i] += x[m, k0 + i] * (np.float32(np.int32(byte & lo4) - 8) * d)
                            acc[r, H + i] += x[m, k0 + H + i] * (np.float32(np.int32(byte >> np.uint8(4)) - 8) * d)
                for r in range(ROWS):
                    nr = min(n + r, nend - 1)
                    out[m, nr] = _sum_lanes(acc, r) + bias[nr]
            n += ROWS


@njit_pair(fastmath=SUMS)
def _int4_tail(x, packed, scales, out):
    M, K = x.shape
    H = BLOCK // 2                                   # a local: as a global it ran 1.7x slower
    N = packed.shape[0]
    G = 2 * packed.shape[1] // scales.shape[1]
    k0 = K // BLOCK * BLOCK
    b0 = k0 // 2
    d_col = k0 // G
    for n in prange(N):
        d = scales[n, d_col]
        for m in range(M):
            acc = np.float32(0.0)
            for i in range(H):
                byte = np.int32(packed[n, b0 + i])
                if k0 + i < K:
                    acc += x[m, k0 + i] * np.float32((byte & 15) - 8)
                if k0 + H + i < K:
                    acc += x[m, k0 + H + i] * np.float32((byte >> 4) - 8)
            out[m, n] += acc * d


@njit_pair(fastmath=SUMS)
def _int8_block(x, q, scales, bias, out):
    # 8 < M < 256 rows. Per job: dequantize JOB rows (w~ = q * d, one multiply: the same value
    # as _int8_dequant_tile) into scratch, then the 4 x 4 block product (the tail of a partial
    # last group is in the scratch too: padding is zero, and only K columns are read)
    N, Kp = q.shape
    ng = scales.shape[1]
    G = Kp // ng
    for j in prange((N + JOB - 1) // JOB):
        n0 = j * JOB
        rows = min(JOB, N - n0)
        w = np.empty((JOB, Kp), dtype=np.float32)
        for r in range(rows):
            for g in range(ng):
                d = scales[n0 + r, g]
                for i in range(G):
                    w[r, g * G + i] = np.float32(q[n0 + r, g * G + i]) * d
        block_product(x, w, rows, n0, bias, True, out)


@njit_pair(fastmath=SUMS)
def _int4_block(x, packed, scales, bias, out):
    H = BLOCK // 2
    N = packed.shape[0]
    Kp = 2 * packed.shape[1]
    G = Kp // scales.shape[1]
    lo4 = np.uint8(15)
    for j in prange((N + JOB - 1) // JOB):
        n0 = j * JOB
        rows = min(JOB, N - n0)
        w = np.empty((JOB, Kp), dtype=np.float32)
        for r in range(rows):
            for b in range(Kp // BLOCK):
                d = scales[n0 + r, b * BLOCK // G]
                for i in range(H):
                    byte = packed[n0 + r, b * H + i]
                    w[r, b * BLOCK + i] = np.float32(np.int32(byte & lo4) - 8) * d
                    w[r, b * BLOCK + H + i] = np.float32(np.int32(byte >> np.uint8(4)) - 8) * d
        block_product(x, w, rows, n0, bias, True, out)


@njit_pair(fastmath=STRICT)
def _int8_dequant_tile(q, scales, n0, n1, buf):
    # rows n0..n1-1 of W~ transposed: buf[r, k] = q[n0 + r, k] * scales[n0 + r, k // G]
    ng = scales.shape[1]
    G = q.shape[1] // ng
    for r in prange(n1 - n0):
        for g in range(ng):
            d = scales[n0 + r, g]
            for i in range(G):
                buf[r, g * G + i] = np.float32(q[n0 + r, g * G + i]) * d


@njit_pair(fastmath=STRICT)
def _int4_dequant_tile(packed, scales, n0, n1, buf):
    H = BLOCK // 2
    G = 2 * packed.shape[1] // scales.shape[1]
    for r in prange(n1 - n0):
        for b in range(packed.shape[1] // H):
            d = scales[n0 + r, b * BLOCK // G]
            for i in range(H):
                byte = np.int32(packed[n0 + r, b * H + i])
                buf[r, b * BLOCK + i] = np.float32((byte & 15) - 8) * d
                buf[r, b * BLOCK + H + i] = np.float32((byte >> 4) - 8) * d


# ---- activation-quantized row kernels (llama.cpp's Q8_0 x Q8_0 and Q4_0 x Q8_0)
# For M <= ROWS_MAX_M rows with ``act_quant``: each row of x is first quantized to int8 per block
# of 32 (quantize_rows), then every block product is an exact integer sum times dx·dw (ops/int_dot.py:
# one PMADDWD per 32 weights, float accumulators in registers). Measured, 1 thread, GPT-2 124M's
# 48 block matrices + the 50257-row head, one token (cache-warm microbenchmark, machine under
# load): weight-only float kernels 18.7 ms -> 7.7 ms. Extra error: each activation moves by at
# most dx/2 (tests/test_ops_quantized_matmul.py bounds it).
@njit_inline(fastmath=STRICT)
def quantize_rows(x, xq, dx):
    # x (M, K) f32 -> xq[:M, :32·nb] int8 (zero past K), dx[:M] (M, nb) f32; see quantize_rows_ref
    M, K = x.shape
    nb = dx.shape[1]
    qmax = np.float32(INT8_QMAX)
    for m in range(M):
        for b in range(nb):
            k0 = b * BLOCK
            k1 = min(k0 + BLOCK, K)
            amax = np.float32(0.0)
            bad = False
            for k in range(k0, k1):
                a = abs(x[m, k])
                if a > amax:
                    amax = a
                elif a != a:
                    bad = True
            if bad:
                amax = np.float32(np.nan)
            d = amax / qmax
            dx[m, b] = d
            ok = d > 0 and d < np.inf
            for k in range(k0, k0 + BLOCK):
                v = np.float32(0.0)
                if ok and k < k1:
                    v = min(max(np.rint(x[m, k] / d), -qmax), qmax)
                xq[m, k] = np.int8(v)


@njit_pair(fastmath=STRICT)
def _int8_act_rows(x, xq, dx, q, bscales, bias, out):
    # x (M, K) f32; xq (>= M, 32·nb) i8, dx (>= M, nb) f32 scratch; q (N, 32·nb) i8; bscales (N, nb)
    # f32: the weight scale of every block of 32; out (M, N). 4 output rows per intrinsic call;
    # past the job's end the last row repeats (same value rewritten), as in _int8_rows32.
    quantize_rows(x, xq, dx)
    M = x.shape[0]
    N = q.shape[0]
    nb = bscales.shape[1]
    xa, xs = xq.ctypes.data, xq.strides[0]
    da, ds = dx.ctypes.data, dx.strides[0]
    qa, qs = q.ctypes.data, q.strides[0]
    sa, ss = bscales.ctypes.data, bscales.strides[0]
    for j in prange((N + JOB - 1) // JOB):
        n = j * JOB
        nend = min(n + JOB, N)
        while n < nend:
            n1, n2, n3 = min(n + 1, nend - 1), min(n + 2, nend - 1), min(n + 3, nend - 1)
            ns = (n, n1, n2, n3)
            m = 0
            while m + 4 <= M:            # 4 input rows per call: each weight block loaded once for 4
                t = dot4x4_q8(xa + m * xs, xa + (m + 1) * xs, xa + (m + 2) * xs, xa + (m + 3) * xs,
                                da + m * ds, da + (m + 1) * ds, da + (m + 2) * ds, da + (m + 3) * ds,
                                qa + n * qs, qa + n1 * qs, qa + n2 * qs, qa + n3 * qs,
                                sa + n * ss, sa + n1 * ss, sa + n2 * ss, sa + n3 * ss, nb)
                for i in range(4):
                    for r in range(4):
                        out[m + i, ns[r]] = t[4 * i + r] + bias[ns[r]]
                m += 4
            while m < M:                 # the rest one by one: the same bits per element
                a0, a1, a2, a3 = dot4_q8(xa + m * xs, da + m * ds, qa + n * qs, qa + n1 * qs, qa + n2 * qs,
                                         qa + n3 * qs, sa + n * ss, sa + n1 * ss, sa + n2 * ss, sa + n3 * ss, nb)
                out[m, n] = a0 + bias[n]
                out[m, n1] = a1 + bias[n1]
                out[m, n2] = a2 + bias[n2]
                out[m, n3] = a3 + bias[n3]
                m += 1
            n += ROWS


@njit_pair(fastmath=STRICT)
def _int4_act_rows(x, xq, dx, packed, bscales, bias, out):
    # the same with packed int4 rows (N, 16·nb) u8
    quantize_rows(x, xq, dx)
    M = x.shape[0]
    N = packed.shape[0]
    nb = bscales.shape[1]
    xa, xs = xq.ctypes.data, xq.strides[0]
    da, ds = dx.ctypes.data, dx.strides[0]
    qa, qs = packed.ctypes.data, packed.strides[0]
    sa, ss = bscales.ctypes.data, bscales.strides[0]
    for j in prange((N + JOB - 1) // JOB):
        n = j * JOB
        nend = min(n + JOB, N)
        while n < nend:
            n1, n2, n3 = min(n + 1, nend - 1), min(n + 2, nend - 1), min(n + 3, nend - 1)
            ns = (n, n1, n2, n3)
            m = 0
            while m + 4 <= M:            # 4 input rows per call: each weight block loaded once for 4
                t = dot4x4_q4(xa + m * xs, xa + (m + 1) * xs, xa + (m + 2) * xs, xa + (m + 3) * xs,
                                da + m * ds, da + (m + 1) * ds, da + (m + 2) * ds, da + (m + 3) * ds,
                                qa + n * qs, qa + n1 * qs, qa + n2 * qs, qa + n3 * qs,
                                sa + n * ss, sa + n1 * ss, sa + n2 * ss, sa + n3 * ss, nb)
                for i in range(4):
                    for r in range(4):
                        out[m + i, ns[r]] = t[4 * i + r] + bias[ns[r]]
                m += 4
            while m < M:                 # the rest one by one: the same bits per element
                a0, a1, a2, a3 = dot4_q4(xa + m * xs, da + m * ds, qa + n * qs, qa + n1 * qs, qa + n2 * qs,
                                         qa + n3 * qs, sa + n * ss, sa + n1 * ss, sa + n2 * ss, sa + n3 * ss, nb)
                out[m, n] = a0 + bias[n]
                out[m, n1] = a1 + bias[n1]
                out[m, n2] = a2 + bias[n2]
                out[m, n3] = a3 + bias[n3]
                m += 1
            n += ROWS


def _check_call(x, qrows, scales, bias, out, name):
    if x.ndim != 2 or x.dtype != np.float32 or not x.flags.c_contiguous:
        raise ValueError(f"{name}: x must be a C-contiguous float32 (M, in) array, got {x.dtype} {x.shape}")
    if out.shape != (x.shape[0], qrows.shape[0]) or out.dtype != np.float32:
        raise ValueError(f"{name}: out must be float32 {(x.shape[0], qrows.shape[0])}, got {out.dtype} {out.shape}")
    ng = scales.shape[1]
    if scales.shape[0] != qrows.shape[0] or _groups(x.shape[1], _group_of(qrows, scales, name)) != ng:
        raise ValueError(f"{name}: x has {x.shape[1]} input features, the weight holds {ng} groups")
    if bias is not None and bias.shape != (qrows.shape[0],):
        raise ValueError(f"{name}: bias must have shape ({qrows.shape[0]},), got {bias.shape}")


def _group_of(qrows, scales, name):
    per_row = qrows.shape[1] * (2 if qrows.dtype == np.uint8 else 1)
    return per_row // scales.shape[1]


class PackedMatmul:
    """out = x @ W~ (+ b) for one packed weight, with everything per-call precomputed: the
    engine calls a decode matmul ~10 times per token, where 5-10 µs of Python per call (checks,
    a zero-bias allocation) was measured to halve a small model's tokens/s. Shapes are checked
    once here; ``__call__`` trusts x (M, in) float32 C-contiguous and out (M, out) float32."""

    def __init__(self, kernels, w, scales, bias, in_features: int, act_kernel=None):
        rows32, rows, self._tail, self._tile, self._block = kernels
        self.w, self.scales = w, scales
        self.in_features, self.out_features = int(in_features), w.shape[0]
        group = _group_of(w, scales, "PackedMatmul")
        if _groups(self.in_features, group) != scales.shape[1] or scales.shape[0] != w.shape[0]:
            raise ValueError(f"PackedMatmul: {in_features} input features do not fit {scales.shape[1]} groups "
                             f"of {group}")
        self._rows = rows32 if group == BLOCK else rows
        self.bias = bias
        self._b = np.zeros(self.out_features, np.float32) if bias is None else bias
        self._has_tail = self.in_features % BLOCK != 0
        self._kp = scales.shape[1] * group
        self._buf = None
        # act_kernel (``act_quant``): rows of up to ROWS_MAX_M go through the int8-activation kernel;
        # its scratch (quantized rows, their scales, the weight scale of every 32-block) is made once
        self._act = act_kernel
        if act_kernel is not None:
            # the intrinsic reads rows by address: they must be contiguous (a no-op for our arrays)
            self.w, scales = np.ascontiguousarray(self.w), np.ascontiguousarray(scales, dtype=np.float32)
            nb = self._kp // BLOCK
            self._bscales = scales if group == BLOCK else np.ascontiguousarray(np.repeat(scales, group // BLOCK, axis=1))
            self._xq = np.zeros((ROWS_MAX_M, self._kp), dtype=np.int8)       # (32, Kp)
            self._dx = np.zeros((ROWS_MAX_M, nb), dtype=np.float32)          # (32, Kp/32)

    @property
    def act_quant(self) -> bool:
        return self._act is not None

    def __call__(self, x, out):
        M = x.shape[0]
        work = M * self.out_features * self.in_features
        if M <= ROWS_MAX_M and self._act is not None:
            self._act.pick(work)(x, self._xq, self._dx, self.w, self._bscales, self._b, out)
            return out
        if M <= ROWS_MAX_M:
            self._rows.pick(work)(x, self.w, self.scales, self._b, out)
            if self._has_tail:
                self._tail.pick(work)(x, self.w, self.scales, out)
            return out
        if M < BLAS_MIN_ROWS:
            self._block.pick(work)(x, self.w, self.scales, self._b, out)
            return out
        N, K = self.out_features, self.in_features
        if self._buf is None:
            self._buf = np.empty((min(TILE_N, N), self._kp), dtype=np.float32)   # (TILE_N, Kp), kept
        for n0 in range(0, N, TILE_N):
            n1 = min(n0 + TILE_N, N)
            tile = self._buf[: n1 - n0]
            # serial: the parallel build is launched once per tile, and each launch cost 13-29 ms of
            # thread wake-ups on the loaded machine (a 32-token prefill of the 6 x 384 model took
            # 1.5 s parallel, 50 ms serial); BLAS below brings its own threads
            self._tile.serial(self.w, self.scales, n0, n1, tile)
            out[:, n0:n1] = x @ tile[:, :K].T                              # (M, n1-n0): one sgemm
        if self.bias is not None:
            out += self.bias
        return out


def _run(kernels, x, w, scales, bias, out, name, act_kernel=None):
    _check_call(x, w, scales, bias, out, name)
    return PackedMatmul(kernels, w, scales, bias, x.shape[1], act_kernel)(x, out)


_INT8 = (_int8_rows32, _int8_rows, _int8_tail, _int8_dequant_tile, _int8_block)
_INT4 = (_int4_rows32, _int4_rows, _int4_tail, _int4_dequant_tile, _int4_block)


def int8_matmul(q, scales, bias, in_features: int, act_quant: bool = False) -> PackedMatmul:
    """The reusable form of ``int8_linear`` (what Int8Linear holds). ``act_quant``: decode rows
    (M <= ROWS_MAX_M) are quantized to int8 per block of 32 and multiplied in integers."""
    return PackedMatmul(_INT8, q, scales, bias, in_features, _int8_act_rows if act_quant else None)


def int4_matmul(packed, scales, bias, in_features: int, act_quant: bool = False) -> PackedMatmul:
    return PackedMatmul(_INT4, packed, scales, bias, in_features, _int4_act_rows if act_quant else None)


def int8_linear(x, q, scales, bias=None, out=None, act_quant: bool = False):
    """out (M, N) = x (M, K) float32 @ W~ (+ bias), from int8 q (N, Kp) and scales (N, Kp/G).
    ``act_quant``: for M <= ROWS_MAX_M, x is quantized first (``int8_act_linear_ref``)."""
    if out is None:
        out = np.empty((x.shape[0], q.shape[0]), dtype=np.float32)
    return _run(_INT8, x, q, scales, bias, out, "int8_linear", _int8_act_rows if act_quant else None)


def int4_linear(x, packed, scales, bias=None, out=None, act_quant: bool = False):
    """out (M, N) = x (M, K) float32 @ W~ (+ bias), from packed int4 (N, Kp/2) and scales (N, Kp/G)."""
    if out is None:
        out = np.empty((x.shape[0], packed.shape[0]), dtype=np.float32)
    return _run(_INT4, x, packed, scales, bias, out, "int4_linear", _int4_act_rows if act_quant else None)

# ---- numba.cuda kernel ----
# Not written: the GPU path (a later issue) would keep the packed rows and give each thread
# block one output feature's row.
