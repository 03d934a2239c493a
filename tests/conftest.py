"""Shared test settings: deterministic hypothesis runs sized for 2 CPU cores."""
import os

# pytest runs with -n 2 (two worker processes on two cores): one thread per worker. Parallel
# Numba kernels and OpenBLAS threads in two processes on two cores would oversubscribe them, and
# on tiny test arrays the thread wake-ups cost more than the work (measured: a seq2seq step took
# 17 ms single-threaded vs 1.3 s with default threads on a loaded machine). Set before numpy/numba load.
for _var in ("NUMBA_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
# CUDA tests run on numba.cuda's simulator unless asked otherwise: on a GPU machine,
# NUMBA_ENABLE_CUDASIM=0 python -m pytest -m gpu runs the real-hardware tests (tests/cuda_sim.py).
os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from hypothesis import HealthCheck, settings

# Same examples every run (no flaky CI); no per-example deadline because the first call of a
# Numba kernel includes its compilation.
settings.register_profile(
    "ci",
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile("dev", max_examples=25, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", max_examples=300, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))


def pytest_collection_modifyitems(config, items):
    if not any("gpu" in item.keywords for item in items):
        return                       # no probe of numba.cuda when no gpu test was collected
    from scratchgpt.backend import cuda_kind
    real_gpu = cuda_kind() == "gpu"
    skip_gpu = pytest.mark.skip(reason="needs a real CUDA GPU (run NUMBA_ENABLE_CUDASIM=0 python -m pytest -m gpu "
                                       "on a machine with one); this run has the simulator or nothing")
    for item in items:
        if "gpu" in item.keywords and not real_gpu:
            item.add_marker(skip_gpu)


@pytest.fixture(autouse=True, scope="module")
def _fast_thread_switching_for_cuda_tests(request):
    """Without the greenlet package the CUDA simulator runs every CUDA thread as a Python thread
    that waits at barriers (scratchgpt/cuda_simulator.py's pooled-thread fallback): a short switch
    interval makes those waits shorter and interleaves the threads more. (With greenlet, the
    default, a block runs in one OS thread and the interval does not matter.) Only for the
    tests/test_cuda_*.py modules (a fixture defined in tests/cuda_sim.py would not be collected)."""
    import sys
    if not request.module.__name__.rpartition(".")[2].startswith("test_cuda_"):
        yield
        return
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-4)
    yield
    sys.setswitchinterval(old)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
