"""GPU array plumbing shared by the CUDA ops, the autograd engine and the optimizers.

Imported only once the "cuda" device is in use (``backend.load_cuda_ops``), never by
``import scratchgpt``. Holds:
  - ``launch``: every CUDA kernel in scratchgpt starts through it. It refuses a NumPy array
    argument: numba would silently copy it to the GPU and back on every launch (the hidden
    transfer that makes a "GPU" training step slower than the CPU one), so inside ops a host
    array is a bug and raises DeviceError;
  - ``empty`` / ``zeros`` / ``full_like`` / ``copy`` / ``add`` / ``add_into`` / ``scale``: the few
    array operations the autograd engine and the optimizers need on the device (NumPy's would
    copy to the host), each a one-thread-per-element kernel;
  - the launch geometry: ``THREADS`` per block for 1-D kernels and ``blocks(n)``.

Rules every kernel here and in ops/*_cuda.py follows (the simulator cannot check them, real
hardware punishes them): every load and store behind a bounds guard; no ``return`` or
``syncthreads()`` inside a branch that only some threads of a block take, before a barrier;
one ``cuda.shared.array`` per line; float32 literals (``np.float32(0.5)``) and accumulators, so a
float32 kernel never computes in float64 (float64 inputs, used by the gradient checks, promote
the same code to float64).
"""
from __future__ import annotations

import numpy as np

import os

from .backend import cuda_module, is_device_array, simulator_enabled
from .errors import DeviceError

cuda = cuda_module()

# Warp shuffles: a warp's 32 threads can pass registers to each other (``shfl_*_sync``) with no
# shared memory and no barrier. The simulator has no shuffles, so there the flag is off and the
# shared-memory trees run — the path CI tests; the shuffle paths are checked on a real GPU (tests
# marked gpu, benchmarks/gpu_check.py). SCRATCHGPT_CUDA_SHUFFLE=0 turns them off on a GPU too
# (read when the kernels compile). Used by block_sum / block_max below and decode_matmul_cuda.
WARP_SHUFFLE = not simulator_enabled() and os.environ.get("SCRATCHGPT_CUDA_SHUFFLE", "1") != "0"
FULL_MASK = 0xFFFFFFFF

THREADS = 128   # threads per block of a 1-D kernel: 4 warps; the simulator runs each as a thread


def blocks(n: int, threads: int = THREADS) -> int:
    return max(1, (int(n) + threads - 1) // threads)


def launch1(kernel, n: int, *args):
    """A 1-D launch over ``n`` elements: blocks of up to THREADS threads, fewer (a multiple of a
    32-thread warp) when ``n`` is small — no idle threads, which the simulator pays for dearly."""
    threads = min(THREADS, 32 * max(1, (int(n) + 31) // 32))
    launch(kernel, blocks(n, threads), threads, *args)


def launch(kernel, grid, block, *args):
    """``kernel[grid, block](*args)`` after checking that no argument is a host NumPy array."""
    for i, a in enumerate(args):
        if isinstance(a, np.ndarray) and a.ndim > 0:
            raise DeviceError(f"{getattr(kernel, '__name__', 'kernel')}: argument {i} is a host NumPy array "
                              f"{a.shape}; CUDA op bodies take device arrays only (no hidden copies)")
    kernel[grid, block](*args)


def require_device(*arrays, where: str = "CUDA op") -> None:
    for a in arrays:
        if a is not None and not is_device_array(a):
            raise DeviceError(f"{where}: expected GPU arrays, got {type(a).__name__}")


def flat(a):
    """A 1-D view of a contiguous device array (no copy)."""
    return a.reshape(a.size)


# ------------------------------------------------------------------------------ kernels
@cuda.jit
def _fill(out, value):
    i = cuda.grid(1)
    if i < out.size:
        out[i] = value


@cuda.jit
def _copy(src, out):
    i = cuda.grid(1)
    if i < out.size:
        out[i] = src[i]


@cuda.jit
def _add(a, b, out):
    i = cuda.grid(1)
    if i < out.size:
        out[i] = a[i] + b[i]


@cuda.jit
def _axpby(a, alpha, b, beta, out):
    i = cuda.grid(1)
    if i < out.size:
        out[i] = alpha * a[i] + beta * b[i]


@cuda.jit
def _sum_rows(x, out):
    # x (N, M) -> out (M,) = sum over rows; one thread per column, rows in a fixed order, so the
    # result is the same every run (atomics would add in whatever order threads arrive)
    j = cuda.grid(1)
    if j < out.size:
        acc = np.float32(0.0)
        for n in range(x.shape[0]):
            acc += x[n, j]
        out[j] = acc


@cuda.jit
def _sumsq_partial(x, out):
    # out[block] = sum of x^2 over the block's elements: shared-memory tree reduction
    buf = cuda.shared.array(THREADS, dtype=np.float64)
    tid = cuda.threadIdx.x
    i = cuda.grid(1)
    v = np.float64(0.0)
    if i < x.size:
        v = np.float64(x[i]) * np.float64(x[i])
    buf[tid] = v
    cuda.syncthreads()
    step = THREADS // 2
    while step > 0:
        if tid < step:
            buf[tid] += buf[tid + step]
        cuda.syncthreads()
        step //= 2
    if tid == 0:
        out[cuda.blockIdx.x] = buf[0]


# Row kernels (layernorm, softmax, cross-entropy) run one block of ROW_THREADS threads per row;
# the threads stride over the row and meet in a shared-memory tree reduction.
ROW_THREADS = 32


@cuda.jit(device=True)
def block_sum(buf, v):
    """Sum of ``v`` over the block's threads, returned to every thread. ``buf``: a shared array of
    ROW_THREADS entries. Every thread of the block must call it (it holds barriers).

    With WARP_SHUFFLE (a real GPU; ROW_THREADS = 32 is one warp) a butterfly of ``shfl_xor_sync``
    instead: step ``off`` adds lane i ^ off's value, so after 16, 8, 4, 2, 1 every lane holds the
    sum, added in the same pairs and order as the tree below (lane 0: ((v0+v16)+(v8+v24))+...)
    — the same bits either way."""
    if WARP_SHUFFLE:                    # a compile-time constant: the same branch for every thread
        off = ROW_THREADS // 2
        while off > 0:
            v += cuda.shfl_xor_sync(FULL_MASK, v, off)
            off //= 2
        return v
    tid = cuda.threadIdx.x
    buf[tid] = v
    cuda.syncthreads()
    step = ROW_THREADS // 2
    while step > 0:
        if tid < step:
            buf[tid] += buf[tid + step]
        cuda.syncthreads()
        step //= 2
    total = buf[0]
    cuda.syncthreads()          # everyone has read buf[0] before the next call overwrites it
    return total


@cuda.jit(device=True)
def block_max(buf, v):
    """Maximum of ``v`` over the block's threads (same protocol as block_sum, shuffles too)."""
    if WARP_SHUFFLE:
        off = ROW_THREADS // 2
        while off > 0:
            v = max(v, cuda.shfl_xor_sync(FULL_MASK, v, off))
            off //= 2
        return v
    tid = cuda.threadIdx.x
    buf[tid] = v
    cuda.syncthreads()
    step = ROW_THREADS // 2
    while step > 0:
        if tid < step:
            buf[tid] = max(buf[tid], buf[tid + step])
        cuda.syncthreads()
        step //= 2
    total = buf[0]
    cuda.syncthreads()
    return total


# ------------------------------------------------------------------------------ helpers
def empty(shape, dtype=np.float32):
    return cuda.device_array(shape, dtype=dtype)


def full(shape, value, dtype=np.float32):
    out = cuda.device_array(shape, dtype=dtype)
    if out.size:
        launch1(_fill, out.size, flat(out), np.dtype(dtype).type(value))
    return out


def zeros(shape, dtype=np.float32):
    return full(shape, 0, dtype)


def full_like(a, value):
    return full(a.shape, value, a.dtype)


def copy(a):
    out = cuda.device_array(a.shape, dtype=a.dtype)
    if out.size:
        launch1(_copy, out.size, flat(a), flat(out))
    return out


_CONSTANTS: dict = {}
_CONSTANTS_MAX = 512


def int_constants(values):
    """A read-only int64 device array holding ``values`` (kernel launch metadata: strides, view
    offsets, broadcast dims), uploaded once per distinct content and cached: the views and
    broadcasts of a training step repeat the same shapes every step, and a fresh upload each time
    was a hidden host -> device copy per op per step. Kernels must never write into it."""
    key = tuple(int(v) for v in np.asarray(values).reshape(-1))
    dev = _CONSTANTS.get(key)
    if dev is None:
        if len(_CONSTANTS) >= _CONSTANTS_MAX:
            _CONSTANTS.clear()
        dev = _CONSTANTS[key] = cuda.to_device(np.array(key, np.int64))
    return dev


def _same(a, b, what):
    if a.shape != b.shape or a.dtype != b.dtype:
        raise DeviceError(f"{what}: GPU arrays must share shape and dtype, got {a.shape} {a.dtype} "
                          f"and {b.shape} {b.dtype} (no broadcasting on the GPU)")


def add(a, b):
    """a + b, a new device array (same shape and dtype)."""
    _same(a, b, "add")
    out = cuda.device_array(a.shape, dtype=a.dtype)
    if out.size:
        launch1(_add, out.size, flat(a), flat(b), flat(out))
    return out


def add_into(a, b):
    """a += b in place."""
    _same(a, b, "add_into")
    if a.size:
        launch1(_add, a.size, flat(a), flat(b), flat(a))
    return a


def axpby(a, alpha, b, beta):
    """alpha * a + beta * b, a new device array."""
    _same(a, b, "axpby")
    out = cuda.device_array(a.shape, dtype=a.dtype)
    t = a.dtype.type
    if out.size:
        launch1(_axpby, out.size, flat(a), t(alpha), flat(b), t(beta), flat(out))
    return out


def axpby_into(a, alpha, b, beta):
    """a <- alpha * a + beta * b in place (each element reads its own a and b first)."""
    _same(a, b, "axpby_into")
    t = a.dtype.type
    if a.size:
        launch1(_axpby, a.size, flat(a), t(alpha), flat(b), t(beta), flat(a))
    return a


def copy_into(src, out):
    """out[...] = src, device to device."""
    _same(src, out, "copy_into")
    if out.size:
        launch1(_copy, out.size, flat(src), flat(out))
    return out


def scale(a, s):
    """s * a, a new device array."""
    return axpby(a, s, a, 0)


def scale_into(a, s):
    """a *= s in place."""
    if a.size:
        launch1(_axpby, a.size, flat(a), a.dtype.type(s), flat(a), a.dtype.type(0), flat(a))
    return a


def sum_rows(x2d):
    """(N, M) -> (M,): the column sums (bias gradients)."""
    out = cuda.device_array(x2d.shape[1], dtype=x2d.dtype)
    launch1(_sum_rows, out.size, x2d, out)
    return out


def sum_of_squares(a) -> float:
    """Σ a² as a Python float (one small copy of per-block partial sums to the host)."""
    return sums_of_squares([a])[0]


def sums_of_squares(arrays) -> list:
    """[Σ a² for a in arrays] as Python floats, with ONE device -> host copy for all of them: every
    array's per-block partial sums go into its own slice of one device buffer (float64), which is
    copied once and summed per array on the host. The global gradient norm of a training step
    needs this for all parameters; a copy per parameter was a dozen hidden transfers per step
    (tests/test_cuda_transfers.py counts them)."""
    nbs = [blocks(a.size) if a.size else 0 for a in arrays]
    total = sum(nbs)
    if total == 0:
        return [0.0] * len(arrays)
    part = cuda.device_array(total, dtype=np.float64)
    off = 0
    for a, nb in zip(arrays, nbs):
        if nb:
            launch(_sumsq_partial, nb, THREADS, flat(a), part[off:off + nb])
        off += nb
    host = part.copy_to_host()
    out, off = [], 0
    for nb in nbs:
        out.append(float(host[off:off + nb].sum()) if nb else 0.0)
        off += nb
    return out
