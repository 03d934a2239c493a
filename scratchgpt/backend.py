"""Devices: "cpu" (NumPy arrays) and "cuda" (numba.cuda device arrays).

This module answers "is there a GPU?", moves arrays between devices and names the device of an
array (``array_device``: the one place that tells a device array from a NumPy one). Ops do not
look at devices themselves: ``Function.apply`` (autograd/function.py) asks ``array_device``
and runs the op's implementation registered for that device.
"""
from __future__ import annotations

import functools
import os

import numpy as np

from .errors import ConfigError, DataError

DEVICES = ("cpu", "cuda")


@functools.lru_cache(maxsize=1)
def cuda_available() -> bool:
    """True when numba.cuda sees a GPU (or the simulator is switched on with NUMBA_ENABLE_CUDASIM=1)."""
    try:
        from numba import cuda
        return bool(cuda.is_available())
    except Exception:  # numba without CUDA libraries raises various errors on probe
        return False


def simulator_enabled() -> bool:
    return os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"


def check_device(device: str) -> str:
    if device not in DEVICES:
        raise ConfigError(f"device must be one of {DEVICES}, got {device!r}")
    if device == "cuda" and not cuda_available():
        raise ConfigError("device 'cuda' requested but numba.cuda sees no GPU (set NUMBA_ENABLE_CUDASIM=1 for the simulator)")
    return device


def array_device(value) -> str | None:
    """"cpu" for a NumPy array, "cuda" for a GPU array (anything with ``__cuda_array_interface__``:
    numba device arrays, CuPy), None for everything else (numbers, shapes, None)."""
    if isinstance(value, np.ndarray):
        return "cpu"
    if hasattr(value, "__cuda_array_interface__"):
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
    from numba import cuda
    if device == "cuda":
        return cuda.to_device(np.ascontiguousarray(array))
    return array.copy_to_host()


def describe() -> dict:
    """Versions and devices, for environment checks (chapter 1, ``scratchgpt demo``)."""
    import platform

    import numba

    info = {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numba": numba.__version__,
        "cpu_threads": numba.config.NUMBA_NUM_THREADS,
        "cuda_available": cuda_available(),
        "cuda_simulator": simulator_enabled(),
    }
    try:
        import Cython
        info["cython"] = Cython.__version__
    except ImportError:
        info["cython"] = None
    return info
