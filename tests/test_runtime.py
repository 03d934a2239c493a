"""scratchgpt.runtime: idle OpenMP threads sleep; freed big buffers are reused, not re-faulted."""
import os
import subprocess
import sys

import pytest

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc/libgomp settings")

MALLOC_PROBE = r"""
import resource, sys
import numpy as np
from scratchgpt.runtime import tune_malloc
if sys.argv[1] == "tuned":
    assert tune_malloc() is True
    assert tune_malloc() is True   # idempotent
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
def step():                        # like a training step: many activations alive, then all freed
    acts = [np.ones(n, np.float32) for n in (1_500_000, 2_000_000, 500_000) * 4]  # 2-8 MB each
    del acts
for _ in range(3):                 # warm up: the first allocations fault in any case
    step()
f0 = faults()
for _ in range(10):
    step()
print(faults() - f0)
"""

SPIN_PROBE = r"""
import sys, time
from scratchgpt.runtime import tune_threads
applied = tune_threads() if sys.argv[1] == "tuned" else None
import numpy as np
from numba import njit, prange

@njit(parallel=True)
def bump(a):
    for i in prange(a.size):
        a[i] += 1.0

a = np.zeros(100_000)
bump(a)
idle_cpu = 0.0
for _ in range(50):                # after each parallel loop the main thread sleeps 10 ms:
    bump(a)                        # any CPU time meanwhile is a worker spinning
    c0 = time.process_time()
    time.sleep(0.01)
    idle_cpu += time.process_time() - c0
print(applied, idle_cpu)
"""


def _clean_env(**extra):
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "SCRATCHGPT_THREAD_TUNING",
                                                            "SCRATCHGPT_MALLOC_TUNING")
           and not k.startswith("MALLOC_")}
    env.update(NUMBA_NUM_THREADS="2", **extra)
    return env


def _run(probe, mode, **env):
    if mode == "default":  # importing scratchgpt applies the tuning: switch it off for the baseline
        env = {"SCRATCHGPT_MALLOC_TUNING": "0", "SCRATCHGPT_THREAD_TUNING": "0", **env}
    out = subprocess.run([sys.executable, "-c", probe, mode], capture_output=True, text=True,
                         env=_clean_env(**env), check=True)
    return out.stdout.strip().splitlines()[-1]


@linux_only
def test_tuned_malloc_reuses_freed_buffers():
    default, tuned = int(_run(MALLOC_PROBE, "default")), int(_run(MALLOC_PROBE, "tuned"))
    # a step touches 48 MB (~12k pages); by default glibc trims the freed heap top and maps
    # fresh zero pages every step
    assert default > 10 * 5000
    assert tuned < 200


@linux_only
def test_tuned_threads_do_not_spin_when_idle():
    applied, idle = _run(SPIN_PROBE, "tuned").split()
    assert applied == "True"
    # an OpenMP worker left spinning burns ~3 ms per loop here (~0.17 s over the 50 sleeps)
    assert float(idle) < 0.03


def test_user_choice_wins_and_opt_out():
    code = ("import os; from scratchgpt.runtime import tune_runtime; r = tune_runtime(); "
            "print(r['threads'], r['malloc'], os.environ.get('OMP_WAIT_POLICY'))")
    run = lambda **e: subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,  # noqa: E731
                                     env=_clean_env(**e), check=True).stdout.split()
    assert run(OMP_WAIT_POLICY="ACTIVE")[0::2] == ["False", "ACTIVE"]
    assert run(SCRATCHGPT_THREAD_TUNING="0", SCRATCHGPT_MALLOC_TUNING="0") == ["False", "False", "None"]


def test_too_late_is_reported():
    code = ("import numpy as np\nfrom numba import njit, prange\n"
            "@njit(parallel=True)\ndef f(a):\n    for i in prange(a.size):\n        a[i] += 1\n"
            "f(np.zeros(10))\nfrom scratchgpt.runtime import tune_threads\nprint(tune_threads())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_clean_env(), check=True)
    assert out.stdout.split()[-1] == "False"  # libgomp already read its settings
