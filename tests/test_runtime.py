"""scratchgpt.allocator.tune_malloc: freed big buffers are reused instead of re-faulted."""
import subprocess
import sys

import pytest

PROBE = r"""
import resource, sys
import numpy as np
from scratchgpt.allocator import tune_malloc
if sys.argv[1] == "tuned":
    assert tune_malloc() is True
    assert tune_malloc() is True   # idempotent
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
def step():                        # like a training step: many activations alive, then all freed
    acts = [np.ones(n, np.float32) for n in (1_500_000, 2_000_000, 500_000) * 4]  # 4-8 MB each
    del acts
for _ in range(3):                 # warm up: the first allocations fault in any case
    step()
f0 = faults()
for _ in range(10):
    step()
print(faults() - f0)
"""


def _faults(mode):
    env = {"SCRATCHGPT_MALLOC_TUNING": "1", "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, env=env, check=True)
    return int(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt tuning is glibc-only")
def test_tuned_malloc_reuses_freed_buffers():
    default, tuned = _faults("default"), _faults("tuned")
    # a step touches 48 MB (~12k pages); by default glibc trims the freed heap top and maps
    # fresh zero pages every step
    assert default > 10 * 5000
    assert tuned < 200


def test_opt_out(monkeypatch):
    import scratchgpt.allocator as alloc
    monkeypatch.setenv("SCRATCHGPT_MALLOC_TUNING", "0")
    monkeypatch.setattr(alloc, "_state", {"done": False, "applied": False})
    assert alloc.tune_malloc() is False
