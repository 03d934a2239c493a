"""Keep freed activation buffers in the process instead of handing them back to the kernel.

Why: a training step allocates and frees the same large arrays every step (activations,
gradients: 0.1-35 MB each). glibc's malloc serves big requests with mmap and returns them with
munmap (and trims the heap top once 128 kB are free), so every step the kernel maps fresh
pages and zero-fills them on first touch. Measured on the 2-core machine with 1 thread
(benchmarks/train_step.py configs, minor page faults and CPU seconds per step):
  config S: 8.6k faults, 0.082 s/step (0.02-0.04 s of it system time) -> 0 faults, 0.060 s
  config M: 45k faults,  2.2-2.5 s/step (0.25-0.85 s system time)     -> 17 faults, 1.95 s
With the thresholds below, freed blocks stay in malloc's free lists and the next step reuses
them. The price: the process keeps its peak heap size until it exits (it does anyway during
training, whose steps all need the same peak).

Rejected alternative: our own buffer pool inside the ops — every op would need an explicit
release point, and the autograd engine frees cached activations simply by dropping them.

``tune_malloc()`` is idempotent and a no-op where glibc's ``mallopt`` is missing (macOS,
Windows, musl) or when ``SCRATCHGPT_MALLOC_TUNING=0``. Environment variables the user already
set (``MALLOC_MMAP_THRESHOLD_`` ...) win: glibc reads them at start-up and we do not override them.
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
