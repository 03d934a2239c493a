"""Shared test settings: deterministic hypothesis runs sized for 2 CPU cores."""
import os
import sys

# pytest runs with -n 2 (two worker processes on two cores): one thread per worker. Parallel
# Numba kernels and OpenBLAS threads in two processes on two cores would oversubscribe them, and
# on tiny test arrays the thread wake-ups cost more than the work (measured: a seq2seq step took
# 17 ms single-threaded vs 1.3 s with default threads on a loaded machine). Set before numpy/numba load.
for _var in ("NUMBA_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

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

# The CUDA simulator runs one Python thread per GPU thread; a short switch interval speeds it up ~3x.
if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
    sys.setswitchinterval(1e-4)


def pytest_collection_modifyitems(config, items):
    from scratchgpt.backend import cuda_available, simulator_enabled
    real_gpu = cuda_available() and not simulator_enabled()
    skip_gpu = pytest.mark.skip(reason="needs a real CUDA GPU; numba.cuda sees none")
    for item in items:
        if "gpu" in item.keywords and not real_gpu:
            item.add_marker(skip_gpu)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
