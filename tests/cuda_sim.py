"""Shared set-up of the CUDA tests: the simulator (or a real GPU), device copies, tolerances.

conftest.py switches numba.cuda to its simulator (NUMBA_ENABLE_CUDASIM=1) unless the variable
is already set, so these tests run in CI without a GPU, and shortens the thread switch interval
for the test_cuda_* modules (the simulator's threads wait at barriers). On a GPU machine,
``NUMBA_ENABLE_CUDASIM=0 python -m pytest -m gpu`` runs the real-hardware tests instead.
"""
import numpy as np
import pytest

from scratchgpt import backend

if not backend.cuda_available():
    pytest.skip("numba.cuda has neither a GPU nor its simulator here", allow_module_level=True)
backend.check_device("cuda")     # imports the CUDA op implementations


def dev(a):
    return backend.to_device(np.ascontiguousarray(a), "cuda")


def host(a):
    return backend.to_host(a)


def assert_close(out, ref, atol, rtol):
    out = host(out) if not isinstance(out, np.ndarray) else out
    np.testing.assert_allclose(out, ref, atol=atol, rtol=rtol)


F32 = dict(atol=2e-5, rtol=2e-4)      # float32 kernels vs the float64 reference
F64 = dict(atol=1e-11, rtol=1e-10)    # float64 builds of the same kernels vs the float64 reference
