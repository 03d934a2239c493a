"""Shared Numba helpers for the op kernels: one kernel body compiled serial AND parallel.

Why two builds: a ``parallel=True`` kernel wakes the thread pool on every call. On a quiet
2-core machine that costs ~10-30 µs; on a busy one (other processes on the cores, OpenMP
threads spin-waiting) we measured 13-29 ms per call for a 100-10k element kernel against
0.5-8 µs serially. Small arrays — gradient checks, tiny models, single-token decoding — gain
nothing from threads, so ``KernelPair`` runs the serial build below ``PARALLEL_MIN_ELEMENTS``
and the parallel build above it. Inside a serial build ``prange`` is a plain ``range``.

Both builds are cached on disk (``cache=True``); the serial copy gets its own qualified
name so the two cache entries never collide. Numba's on-disk cache is keyed on the source
file of the kernel, not on this file: after changing the compile options here, delete
``scratchgpt/ops/__pycache__/*.nbi`` / ``*.nbc`` or the old machine code is reused.
"""
from __future__ import annotations

import contextlib
import types

from numba import njit

# Work (in array elements) below which the serial build runs. 2**17 floats = 512 KiB. Measured
# (serial, vectorised): layernorm on (768, 128) float32 takes 0.037 ms forward / 0.073 ms
# backward on one core — the same order as waking a second thread — so arrays of the small
# benchmark config's (B*T, C) size stay serial, while its (B*T, 4C) MLP activations and every
# activation of the larger config go parallel.
PARALLEL_MIN_ELEMENTS = 1 << 17


class KernelPair:
    """A kernel compiled twice; ``pick(n)`` returns the build to use for ``n`` elements of work."""

    __slots__ = ("parallel", "serial", "__name__")

    def __init__(self, parallel, serial, name):
        self.parallel = parallel
        self.serial = serial
        self.__name__ = name

    def pick(self, n_elements: int):
        return self.parallel if n_elements >= PARALLEL_MIN_ELEMENTS else self.serial

    def __call__(self, *args):
        raise TypeError(f"call {self.__name__}.pick(n)(...) to choose the serial or parallel build")


def njit_pair(fastmath=False):
    """Decorator: compile ``fn`` as ``njit(parallel=True)`` and as a serial ``njit``."""
    def deco(fn):
        serial_fn = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__ + "_serial",
                                       fn.__defaults__, fn.__closure__)
        serial_fn.__qualname__ = fn.__qualname__ + "_serial"
        serial_fn.__module__ = fn.__module__
        # error_model="numpy": a float division by zero gives inf/NaN as in NumPy instead of
        # raising ZeroDivisionError; the per-element zero check of the default "python" model
        # stops LLVM from vectorising any loop that divides (measured: scalar divss vs
        # 16-wide vdivps). Parallel builds already use the numpy model.
        par = njit(cache=True, parallel=True, fastmath=fastmath, error_model="numpy")(fn)
        ser = njit(cache=True, parallel=False, fastmath=fastmath, error_model="numpy")(serial_fn)
        return KernelPair(par, ser, fn.__name__)
    return deco


@contextlib.contextmanager
def force_build(parallel: bool):
    """Within the block every KernelPair runs its parallel (True) or serial (False) build.

    For tests (both builds must match the reference on small arrays) and for benchmarks.
    """
    global PARALLEL_MIN_ELEMENTS
    prev = PARALLEL_MIN_ELEMENTS
    PARALLEL_MIN_ELEMENTS = 0 if parallel else 1 << 62
    try:
        yield
    finally:
        PARALLEL_MIN_ELEMENTS = prev
