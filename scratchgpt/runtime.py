"""CPU runtime settings that make a training step several times faster on a small machine.

Two process-wide settings, applied by ``tune_runtime()`` (idempotent, each can be switched off):

1. Threads that sleep when idle (``OMP_WAIT_POLICY=PASSIVE``).
   Numba's parallel kernels run on a GNU OpenMP pool, NumPy's matmuls on OpenBLAS's own pool.
   By default an OpenMP worker keeps spinning on its core for a while after each parallel
   loop, exactly when the next op (usually a matmul) wants both cores for OpenBLAS; a step is
   ~100 such hand-overs. Measured on the 2-core machine, config S (benchmarks/train_step.py,
   2 threads, median tokens/s of 15 steps, machine shared with other jobs):
       default 3,993   OMP_WAIT_POLICY=PASSIVE 17,943   NUMBA_THREADING_LAYER=workqueue 15,249
       NUMBA_NUM_THREADS=1 3,072
   libgomp reads the variable once, when it is loaded (by Numba, at the first parallel
   kernel), so it must be set before that: ``scratchgpt`` should call this on import. A value
   the user already set wins. ``SCRATCHGPT_THREAD_TUNING=0`` skips it.

2. Keep freed activation buffers in the process (glibc ``mallopt``).
   A step allocates and frees the same large arrays every step (activations, gradients:
   0.1-35 MB each). glibc serves big requests with mmap and hands them back with munmap (and
   trims the heap top), so every step the kernel maps fresh pages and zero-fills them on first
   touch. Measured on the 2-core machine, 1 thread (minor page faults, CPU seconds per step):
     config S: 8.6k faults, 0.082 s/step (0.02-0.04 s of it system time) -> 0 faults, 0.060 s
     config M: 45k faults,  2.2-2.5 s/step (0.25-0.85 s system time)     -> 17 faults, 1.95 s
   With the thresholds below freed blocks stay in malloc's free lists and the next step reuses
   them. The price: the process keeps its peak heap until it exits (training needs that peak
   every step anyway). Rejected alternative: a buffer pool inside the ops — every op would
   need an explicit release point, while the autograd engine frees activations by dropping
   them. No-op where glibc's ``mallopt`` is missing (macOS, Windows, musl) or with
   ``SCRATCHGPT_MALLOC_TUNING=0``; ``MALLOC_*_`` variables the user set win.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os

# mallopt parameter numbers from glibc's <malloc.h>
_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_THRESHOLD = -3

# 32 MiB: glibc's ceiling for the mmap threshold on 64-bit (HEAP_MAX_SIZE / 2); requests above
# it are mmapped whatever we ask (NumPy then asks for transparent huge pages, few faults).
MMAP_THRESHOLD = 32 * 1024 * 1024
TRIM_THRESHOLD = 2**31 - 1        # (mallopt takes an int) in effect: never trim the heap top
TOP_PAD = 64 * 1024 * 1024        # grow the heap in big steps

_state = {"done": False, "applied": False}
_thread_state = {"done": False, "applied": False}


def tune_threads() -> bool:
    """Set OMP_WAIT_POLICY=PASSIVE unless the user chose a policy. Returns True when our value
    is in place and Numba's OpenMP pool has not started yet (so libgomp will read it)."""
    if _thread_state["done"]:
        return _thread_state["applied"]
    _thread_state["done"] = True
    if os.environ.get("SCRATCHGPT_THREAD_TUNING", "1") == "0" or "OMP_WAIT_POLICY" in os.environ:
        return False
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    try:
        from numba.np.ufunc import parallel as _numba_parallel
        started = bool(_numba_parallel._is_initialized)
    except (ImportError, AttributeError):  # a Numba without this private flag: assume not started
        started = False
    _thread_state["applied"] = not started
    return not started


def tune_runtime() -> dict:
    """Apply both settings; returns {"threads": bool, "malloc": bool} (True = in effect)."""
    return {"threads": tune_threads(), "malloc": tune_malloc()}


def tune_malloc() -> bool:
    """Apply the thresholds once per process; return True if glibc accepted them."""
    if _state["done"]:
        return _state["applied"]
    _state["done"] = True
    if os.environ.get("SCRATCHGPT_MALLOC_TUNING", "1") == "0":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    ok = True
    for env, param, value in (("MALLOC_MMAP_THRESHOLD_", _M_MMAP_THRESHOLD, MMAP_THRESHOLD),
                              ("MALLOC_TRIM_THRESHOLD_", _M_TRIM_THRESHOLD, TRIM_THRESHOLD),
                              ("MALLOC_TOP_PAD_", _M_TOP_PAD, TOP_PAD)):
        if env in os.environ:
            continue
        ok = bool(mallopt(param, value)) and ok
    _state["applied"] = ok
    return ok


# ---------------------------------------------------------------------------- thread counts at run time
# ``--threads auto`` (train/thread_tuner.py) switches a running process between 1 thread and all
# of its cores, so both pools must be resizable after start: Numba's through
# ``numba.set_num_threads`` (up to the pool size NUMBA_NUM_THREADS fixed at start), OpenBLAS's
# through its C function, found in the OpenBLAS library NumPy loaded (NumPy has no API for it).
# ``openblas_set_num_threads_local`` (OpenBLAS >= 0.3.27, the one symbol name every build
# exports unprefixed) returns the previous count; despite its name it sets the count used by
# later calls from any thread (OpenBLAS 0.3.31, benchmarks/attention_split.py). It can also
# raise the count above OPENBLAS_NUM_THREADS (the pool grows).
_blas_setter: list = []


def _find_blas_setter():
    import ctypes
    import glob

    paths = []
    try:
        import numpy as np
        paths += sorted(glob.glob(os.path.join(os.path.dirname(np.__file__), os.pardir, "numpy.libs", "*openblas*")))
    except ImportError:
        pass
    try:   # Linux: whatever OpenBLAS this process has mapped (a system NumPy links its own)
        with open("/proc/self/maps") as f:
            paths += sorted({ln.split()[-1] for ln in f if "openblas" in ln.lower() and ln.split()[-1].startswith("/")})
    except OSError:
        pass
    for path in paths:
        try:
            fn = ctypes.CDLL(path).openblas_set_num_threads_local
        except (OSError, AttributeError):
            continue
        fn.argtypes = [ctypes.c_int]
        fn.restype = ctypes.c_int
        return fn
    return None


def blas_thread_setter():
    """OpenBLAS's ``openblas_set_num_threads_local`` (returns the previous count), or None when
    NumPy's BLAS is not an OpenBLAS that has it."""
    if not _blas_setter:
        _blas_setter.append(_find_blas_setter())
    return _blas_setter[0]


def set_compute_threads(n: int) -> int:
    """Run Numba kernels and BLAS calls on ``n`` threads from now on (Numba: at most its pool
    size). Returns the Numba count in effect. Results do not depend on it (tests/test_threads.py)."""
    import numba
    n = max(1, min(int(n), numba.config.NUMBA_NUM_THREADS))
    numba.set_num_threads(n)
    setter = blas_thread_setter()
    if setter is not None:
        setter(n)
    return n
