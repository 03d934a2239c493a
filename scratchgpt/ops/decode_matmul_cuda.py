"""Matrix-vector products for generation on the GPU: y = x Wᵀ (+ b) for a few rows of x, with W
kept output-major (``wt`` (N, K), infer/linear.py's layout), no autograd.

    out[m, n] = Σ_k x[m, k] · wt[n, k]  (+ b[n])          (decode_matmul.py's small_matmul_ref)

Decoding is bound by the bytes of W read once per token, so the kernel is shaped for reading
W fast: a block of LANES × OUTS threads; the OUTS rows of threads each own one output n, and the
LANES threads of a row read that output's weight row together (lane t reads k = t, t + LANES,
..., so neighbouring lanes read neighbouring addresses: coalesced), each keeping a partial sum;
``sum_lanes`` adds the LANES partial sums in shared memory in a fixed tree order (a result never
depends on timing). One block row per output, one grid column per row m of x: a row's result
never depends on how many rows the call holds — the engine's batched == single guarantee.

Geometry (``row_geometry``): on a GPU 32 lanes (one warp per output row of W) × 4 outputs per
block; under the simulator 1 lane × 32 outputs — the simulator runs every thread as a Python
thread and every barrier as a thread rendezvous, so a warp per output costs ~30x more there. The
code path is the same; tests run both geometries on tiny shapes (tests/test_cuda_engine.py).
The int8/int4 products (quantized_matmul_cuda.py) use the same geometry and ``sum_lanes``.
"""
from __future__ import annotations

import numpy as np

from ..backend import simulator_enabled
from ..cuda_arrays import FULL_MASK, WARP_SHUFFLE, cuda, launch, require_device

MAX_THREADS = 128       # LANES * OUTS of a block; the shared partial-sum buffer has this size
GPU_GEOMETRY = (32, 4)  # (lanes per output, outputs per block) on real hardware
SIM_GEOMETRY = (1, 32)  # ... under the simulator (see module docstring)


def row_geometry(geometry=None) -> tuple:
    """(lanes, outs) for the row kernels: ``geometry`` when given (tests), else by device kind."""
    if geometry is not None:
        lanes, outs = (int(g) for g in geometry)
        if lanes < 1 or lanes & (lanes - 1) or outs < 1 or lanes * outs > MAX_THREADS:
            raise ValueError(f"row geometry: lanes must be a power of 2 and lanes*outs <= {MAX_THREADS}, "
                             f"got {geometry}")
        return lanes, outs
    return SIM_GEOMETRY if simulator_enabled() else GPU_GEOMETRY


# Warp shuffles (cuda_arrays.WARP_SHUFFLE: off under the simulator, SCRATCHGPT_CUDA_SHUFFLE=0
# turns them off on a GPU): with 32 lanes (one warp per output row, the GPU geometry) the lanes
# add their partial sums register to register (``shfl_down_sync``: 5 steps, no shared memory, no
# barrier); the shared-memory tree below is what CI tests.


@cuda.jit(device=True)
def sum_lanes(buf, v):
    """Sum of ``v`` over the threadIdx.x lanes of this thread's threadIdx.y row, returned to lane 0
    (other lanes get a partial sum). ``buf``: shared, >= blockDim.x * blockDim.y entries. Every
    thread of the block must call it (it holds barriers); blockDim.x must be a power of 2."""
    lanes = cuda.blockDim.x
    if WARP_SHUFFLE and lanes == 32:        # the same branch for the whole block: no divergent barrier
        off = 16
        while off > 0:
            v += cuda.shfl_down_sync(FULL_MASK, v, off)
            off //= 2
        return v
    tx = cuda.threadIdx.x
    base = cuda.threadIdx.y * lanes
    buf[base + tx] = v
    cuda.syncthreads()
    step = lanes // 2
    while step > 0:
        if tx < step:
            buf[base + tx] += buf[base + tx + step]
        cuda.syncthreads()
        step //= 2
    total = buf[base]
    cuda.syncthreads()          # every lane has read buf[base] before a next call overwrites it
    return total


@cuda.jit
def _dense_rows_cuda(x, wt, bias, has_bias, out):   # x (M, K); wt (N, K); bias (N,); out (M, N)
    buf = cuda.shared.array(MAX_THREADS, dtype=np.float32)
    tx = cuda.threadIdx.x
    n = cuda.blockIdx.x * cuda.blockDim.y + cuda.threadIdx.y
    m = cuda.blockIdx.y
    N = wt.shape[0]
    K = x.shape[1]
    acc = np.float32(0.0)
    if n < N:
        for k in range(tx, K, cuda.blockDim.x):
            acc += x[m, k] * wt[n, k]
    total = sum_lanes(buf, acc)         # outside the guard: every thread reaches the barriers
    if tx == 0 and n < N:
        if has_bias:
            total += bias[n]
        out[m, n] = total


def launch_rows(kernel, x, w, extra, bias, out, geometry=None):
    """Launch a row kernel (this file's or quantized_matmul_cuda's): grid (ceil(N / outs), M)."""
    lanes, outs = row_geometry(geometry)
    M = x.shape[0]
    N = out.shape[1]
    has_bias = bias is not None
    args = (x, w) + tuple(extra) + (bias if has_bias else out.reshape(out.size), has_bias, out)
    launch(kernel, ((N + outs - 1) // outs, M), (lanes, outs), *args)
    return out


def dense_rows_cuda(x, wt, bias=None, out=None, geometry=None):
    """x (M, K) float32 @ wt (N, K)ᵀ (+ bias (N,)) -> out (M, N) float32, all device arrays."""
    require_device(x, wt, bias, out, where="dense_rows_cuda")
    if x.shape[1] != wt.shape[1]:
        raise ValueError(f"dense_rows_cuda: x has {x.shape[1]} features, wt {tuple(wt.shape)} expects {wt.shape[1]}")
    if out is None:
        out = cuda.device_array((x.shape[0], wt.shape[0]), dtype=np.float32)
    return launch_rows(_dense_rows_cuda, x, wt, (), bias, out, geometry)
