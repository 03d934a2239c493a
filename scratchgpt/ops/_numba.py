"""The one factory for the ops' Numba CPU kernels: every kernel body compiled serial AND parallel,
one size policy that picks between them, and the one place that states the fastmath rule.

Every ``@njit`` in scratchgpt/ops goes through this file: ``njit_pair`` for kernels (called
from Python) and ``njit_inline`` for the small helpers that kernels inline (``_vexp.py``).
``force_build`` therefore switches every kernel at once (tests run both builds).

Why two builds: a ``parallel=True`` kernel wakes the thread pool on every call. On a quiet
2-core machine that costs ~10-30 µs; on a busy one (other processes on the cores, OpenMP
threads spin-waiting) we measured 13-29 ms per call for a 100-10k element kernel against
0.5-8 µs serially. Small arrays — gradient checks, tiny models, single-token decoding — gain
nothing from threads, so ``KernelPair.pick(n)`` returns the serial build below
``PARALLEL_MIN_ELEMENTS`` elements of work and the parallel build from there on. Inside a
serial build ``prange`` is a plain ``range``. Both builds release the GIL (``nogil``), so a
caller may also run serial builds from several Python threads (benchmarks/attention_split.py).
A kernel whose prange splits work into a FIXED number of chunks (never the thread count)
can give the same bits in both builds — but only if LLVM compiles its sums the same way in
both, which 'reassoc' does not promise: the int8/int4 decode kernels' final 32-lane sums came
out in different orders (1-2 ulp apart) until they moved into a ``njit_helper`` with strict
math (infer/build_choice.py switches builds between decode steps and needs the same bits;
tests/test_infer_build_choice.py checks it). The op tests check both builds against the
reference.

Serial builds are cached on disk (``cache=True``; the serial copy gets its own qualified
name so the two cache entries never collide). Parallel builds are cached too, except those whose
flag set has 'reassoc' (SUMS, EXP_ROWS): for them the on-disk copy is NOT the code the compiling
process ran. Numba compiles a ``prange`` body on its own and runs that, but caches a copy that
LLVM optimised again inside the calling function (numba issue #10617), and with 'reassoc' the
two vectorise their sums differently: a fresh checkout's first run and every later run (which
loads the cache) trained to weights that differed in the last bits, so "same seed, same
weights" failed between them. Compiled fresh in every process, such a kernel gives the same
bits every time (and the same bits as its serial build: tests/test_ops_build_bits.py); the
price is compiling them once per process (measured: ~10 s in a shortened demo run, 1 core). Numba's on-disk cache is keyed on the source
file of the kernel, not on this file: after changing the compile options here, delete
``scratchgpt/ops/__pycache__/*.nbi`` / ``*.nbc`` or the old machine code is reused.
"""
from __future__ import annotations

import contextlib
import types

from numba import njit

# ---------------------------------------------------------------------------- size policy
# Work (in array elements) below which the serial build runs. 2**17 floats = 512 KiB. Measured
# (serial, vectorised): layernorm on (768, 128) float32 takes 0.037 ms forward / 0.073 ms
# backward on one core — the same order as waking a second thread — so arrays of the small
# benchmark config's (B*T, C) size stay serial, while its (B*T, 4C) MLP activations and every
# activation of the larger config go parallel. (AdamW once had its own threshold of 2**16; it
# is elementwise like GELU and now follows this one.)
PARALLEL_MIN_ELEMENTS = 1 << 17

# ---------------------------------------------------------------------------- fastmath rule
# A kernel may only use one of these flag sets; pick the first that allows what the kernel needs.
# Never 'nnan'/'ninf' in a kernel: inf/NaN must propagate as IEEE says (masked attention scores
# are -inf; a diverging run must show NaN, not garbage).
#   STRICT    elementwise work without reductions: strict IEEE costs nothing there, and the
#             result is bit-identical to the float64-rounded formula order.
#   SUMS      row sums/means (layernorm, softmax): 'reassoc' lets LLVM keep several partial sums
#             and vectorise (layernorm (2048, 384) float32 forward, 1 core: 0.22 ms vs 1.36 ms
#             strict); 'contract' allows FMA. No approximate functions, so the compiled order is
#             fixed and runs are bit-for-bit repeatable.
#   EXP_ROWS  fused softmax/exp rows (attention, cross-attention, cross-entropy, _vexp's exp):
#             SUMS + 'nsz' 'arcp' 'afn' so the hand-written SIMD exp and the 1/total scaling
#             vectorise (see _vexp.py: 2048 x 4096 float32, 14.1 ms scalar exp -> 2.6 ms).
#   UPDATE    the AdamW update: 'arcp' 'afn' 'nsz' 'contract' let the one division and sqrt per
#             element vectorise; no 'reassoc' because there is no reduction to reorder.
#   MAX_HELPER  only ``_vexp.row_max``, an inlined helper: EXP_ROWS + 'nnan' 'ninf' so its 16
#             running maxima drop their NaN checks and vectorise; the exp/sum that follow it
#             still propagate NaN (see its docstring).
STRICT = False
SUMS = frozenset({"reassoc", "contract"})
EXP_ROWS = frozenset({"nsz", "arcp", "contract", "afn", "reassoc"})
UPDATE = frozenset({"nsz", "arcp", "contract", "afn"})
MAX_HELPER = EXP_ROWS | {"nnan", "ninf"}
_KERNEL_RULES = (STRICT, SUMS, EXP_ROWS, UPDATE)


def _checked_fastmath(fastmath, allowed):
    flags = fastmath if fastmath is False else frozenset(fastmath)
    if flags not in allowed:
        raise ValueError(f"fastmath={fastmath!r} is not one of the flag sets in scratchgpt/ops/_numba.py; "
                         "use one of them or add a new one there with the reason")
    return flags if flags is False else set(flags)


class KernelPair:
    """A kernel compiled twice; ``pick(n)`` returns the build to use for ``n`` elements of work."""

    __slots__ = ("parallel", "serial", "__name__", "py_func")

    def __init__(self, parallel, serial, name, py_func):
        self.parallel = parallel
        self.serial = serial
        self.__name__ = name
        self.py_func = py_func

    def pick(self, n_elements: int):
        return self.parallel if n_elements >= PARALLEL_MIN_ELEMENTS else self.serial

    def __call__(self, *args):
        raise TypeError(f"call {self.__name__}.pick(n)(...) to choose the serial or parallel build")


def njit_pair(fastmath=STRICT):
    """Decorator: compile ``fn`` as ``njit(parallel=True)`` and as a serial ``njit`` (a KernelPair).

    ``fastmath``: one of the flag sets above (STRICT, SUMS, EXP_ROWS, UPDATE).
    """
    flags = _checked_fastmath(fastmath, _KERNEL_RULES)

    def deco(fn):
        serial_fn = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__ + "_serial",
                                       fn.__defaults__, fn.__closure__)
        serial_fn.__qualname__ = fn.__qualname__ + "_serial"
        serial_fn.__module__ = fn.__module__
        # error_model="numpy": a float division by zero gives inf/NaN as in NumPy instead of
        # raising ZeroDivisionError; the per-element zero check of the default "python" model
        # stops LLVM from vectorising any loop that divides (measured: scalar divss vs
        # 16-wide vdivps). Parallel builds already use the numpy model.
        opts = dict(cache=True, nogil=True, fastmath=flags, error_model="numpy")
        # no disk cache for a parallel build that reorders sums (see the module docstring)
        par = njit(parallel=True, **dict(opts, cache=not (flags and "reassoc" in flags)))(fn)
        ser = njit(parallel=False, **opts)(serial_fn)
        return KernelPair(par, ser, fn.__name__, fn)
    return deco


def njit_inline(fastmath=STRICT):
    """Decorator for a small helper that kernels call and Numba inlines into them (``_vexp``).

    Helpers are never called from Python, so they have no serial/parallel pair; ``fastmath``
    is one of the flag sets above, MAX_HELPER included.
    """
    flags = _checked_fastmath(fastmath, _KERNEL_RULES + (MAX_HELPER,))
    return njit(fastmath=flags, inline="always", cache=True)


def njit_helper(fastmath=STRICT):
    """Decorator for a small helper that kernels call WITHOUT Numba inlining it into their IR, so
    it keeps its own fastmath flags (they are per instruction, and survive LLVM's own inlining).
    For a sum that must come out in one fixed order in every kernel build (see above)."""
    flags = _checked_fastmath(fastmath, _KERNEL_RULES)
    return njit(fastmath=flags, cache=True, nogil=True, error_model="numpy")


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
