"""Devices: "cpu" (NumPy arrays) and "cuda" (numba.cuda device arrays).

This module answers "is there a GPU?", moves arrays between devices and names the device of an
array (``array_device``: the one place that tells a device array from a NumPy one). Ops do not
look at devices themselves: ``Function.apply`` (autograd/function.py) asks ``array_device``
and runs the op's implementation registered for that device.

It is also the ONE place that imports ``numba.cuda`` (``cuda_module``). Three answers to
"what runs CUDA here?" (``cuda_kind``):
  - "gpu":        a real NVIDIA GPU, through the numba-cuda package (the ``gpu`` extra);
  - "simulator":  ``NUMBA_ENABLE_CUDASIM=1``: numba.cuda's simulator runs every CUDA thread as a
                  Python thread on the CPU — slow, but it checks the kernels' indexing and
                  results anywhere (the tests use it; ``--sim`` on the commands that take one);
  - None:         neither; ``check_device("cuda")`` then says so in one line.
The CUDA op implementations (``ops/*_cuda.py``) are imported the first time an array goes to
the GPU (``load_cuda_ops``), never when scratchgpt is imported.
"""
from __future__ import annotations

import functools
import os

import numpy as np

from .errors import ConfigError, DataError

DEVICES = ("cpu", "cuda")


def simulator_enabled() -> bool:
    return os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"


def enable_simulator() -> None:
    """Switch numba.cuda to its simulator (what ``--sim`` does). Must run before numba.cuda is
    first imported: numba reads the variable once."""
    import sys
    if "numba.cuda" in sys.modules and not simulator_enabled():
        raise ConfigError("--sim must be chosen before numba.cuda is imported (set NUMBA_ENABLE_CUDASIM=1)")
    os.environ["NUMBA_ENABLE_CUDASIM"] = "1"
    import numba     # numba read its config when scratchgpt imported it: set the flag there too
    numba.config.ENABLE_CUDASIM = True
    cuda_kind.cache_clear()


def cuda_module():
    """``numba.cuda`` (numba-cuda's when installed; numba's built-in copy otherwise)."""
    import warnings
    if not hasattr(np, "row_stack"):
        # numba-cuda 0.30 registers an overload for np.row_stack, which NumPy 2.5 removed (it was
        # an alias of np.vstack): give it the alias back so its module imports
        np.row_stack = np.vstack
    with warnings.catch_warnings():
        # numba's built-in numba.cuda warns that it is deprecated in favour of numba-cuda
        warnings.simplefilter("ignore", DeprecationWarning)
        from numba import cuda
    if simulator_enabled():
        _lock_simulator_shared_arrays()
        from .cuda_simulator import install
        install()                 # pooled threads and a real barrier: several times faster blocks
    else:
        # A real GPU: device memory from the caching allocator (cuda_memory.py), installed here,
        # on the first import of numba.cuda, so before any CUDA context exists (a context keeps
        # the memory manager it was created with). SCRATCHGPT_CUDA_POOL=0 opts out. Never under
        # the simulator: it has no External Memory Management interface to plug into.
        from .cuda_memory import install as install_pool
        install_pool(cuda)
    return cuda


def _lock_simulator_shared_arrays() -> None:
    """Make the simulator's ``cuda.shared.array`` thread-safe.

    numba-cuda 0.30's simulator gives the threads of a block one shared array per source line by
    "look it up; if missing, create and store it" — without a lock. Two threads that reach the
    line together can both miss and each get a private array: the block then computes with two
    "shared" arrays and the kernel's result is wrong (seen: whole gradients wrong in 1 of ~3 runs
    with a 0.1 ms thread switch interval on a loaded machine). Same lookup key (the caller's file
    and line), under a lock."""
    import sys
    import threading
    try:
        from numba.cuda.simulator import kernelapi
    except ImportError:
        return
    shared = kernelapi.FakeCUDAShared
    if getattr(shared, "_scratchgpt_locked", False):
        return
    lock = threading.Lock()
    unlocked = shared.array

    def array(self, shape, dtype, alignment=None):
        if shape == 0 or alignment is not None:        # dynamic shared memory / alignment: as before
            return unlocked(self, shape, dtype, alignment)
        from numba.core import types
        from numba.np import numpy_support
        if isinstance(dtype, types.Type):
            dtype = numpy_support.as_dtype(dtype)
        frame = sys._getframe(1)                       # the kernel line that asked for the array
        caller = (frame.f_code.co_filename, frame.f_lineno)
        with lock:
            res = self._allocations.get(caller)
            if res is None:
                res = np.empty(shape, dtype)
                self._allocations[caller] = res
        return res

    shared.array = array
    shared._scratchgpt_locked = True


@functools.lru_cache(maxsize=1)
def cuda_kind() -> str | None:
    """"gpu", "simulator" or None (see the module docstring)."""
    try:
        cuda = cuda_module()
        ok = bool(cuda.is_available())
    except Exception:  # numba without CUDA libraries raises various errors on probe
        return None
    if not ok:
        return None
    return "simulator" if simulator_enabled() else "gpu"


def cuda_available() -> bool:
    """True when numba.cuda sees a GPU, or the simulator is switched on (NUMBA_ENABLE_CUDASIM=1)."""
    return cuda_kind() is not None


def check_device(device: str) -> str:
    if device not in DEVICES:
        raise ConfigError(f"device must be one of {DEVICES}, got {device!r}")
    if device == "cuda":
        if not cuda_available():
            raise ConfigError("--device cuda: no CUDA GPU found by numba.cuda (install the 'gpu' extra "
                              "on an NVIDIA machine, or add --sim / NUMBA_ENABLE_CUDASIM=1 for the slow simulator)")
        load_cuda_ops()
    return device


# Loaders that import the CUDA op implementations (ops/__init__.py adds one): run once, the first
# time the "cuda" device is used, so importing scratchgpt never imports numba.cuda.
_CUDA_LOADERS: list = []
_cuda_loaded = False


def on_cuda_first_use(loader) -> None:
    _CUDA_LOADERS.append(loader)


def load_cuda_ops() -> None:
    global _cuda_loaded
    if _cuda_loaded:
        return
    _cuda_loaded = True
    for loader in _CUDA_LOADERS:
        loader()


def is_device_array(value) -> bool:
    """A GPU array: anything with ``__cuda_array_interface__`` (numba device arrays, CuPy), or with
    numba's ``__cuda_ndarray__`` marker, which the simulator's stand-in ``FakeCUDAArray`` (a NumPy
    array in disguise, whose ``__array__`` would copy it to the host without a word) also has."""
    return (hasattr(value, "__cuda_array_interface__") or getattr(value, "__cuda_ndarray__", False) is True
            or type(value).__name__ == "FakeCUDAArray")


def array_device(value) -> str | None:
    """"cpu" for a NumPy array, "cuda" for a GPU array (``is_device_array``), None for everything
    else (numbers, shapes, None)."""
    if isinstance(value, np.ndarray):
        return "cpu"
    if is_device_array(value):
        return "cuda"
    return None


def device_of(array) -> str:
    device = array_device(array)
    if device is None:
        raise DataError(f"expected a NumPy or GPU array, got {type(array).__name__}")
    return device


def to_device(array, device: str):
    """Copy ``array`` to ``device`` ("cpu" -> NumPy, "cuda" -> numba device array)."""
    check_device(device)
    if device == device_of(array):
        return array
    if device == "cuda":
        array = np.asarray(array)
        # np.ascontiguousarray would turn a 0-d array (a loss, a scalar gradient) into shape (1,)
        return cuda_module().to_device(np.ascontiguousarray(array).reshape(array.shape))
    return array.copy_to_host()


def to_host(array) -> np.ndarray:
    """A NumPy array with the values of ``array`` (a copy from the GPU, or ``array`` itself)."""
    return array if isinstance(array, np.ndarray) else array.copy_to_host()


def describe() -> dict:
    """Versions and devices, for environment checks (chapter 1, ``scratchgpt demo``)."""
    import platform

    import numba

    info = {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numba": numba.__version__,
        "cpu_threads": numba.config.NUMBA_NUM_THREADS,
        "cuda": cuda_kind(),
        "cuda_available": cuda_available(),
        "cuda_simulator": simulator_enabled(),
    }
    if info["cuda"] == "gpu":
        from . import cuda_memory
        info["cuda_memory_pool"] = cuda_memory.status
    try:
        import Cython
        info["cython"] = Cython.__version__
    except ImportError:
        info["cython"] = None
    return info
