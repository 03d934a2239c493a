"""Thread counts change no number: training at 1 thread, at 2 and switching between them per step
(``--threads auto``, train/thread_tuner.py) gives the same bits; and the tuner's choices."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numba
import numpy as np

from scratchgpt.models import GPT, GPTConfig
from scratchgpt.optim import AdamW, clip_grad_norm, decay_groups
from scratchgpt.runtime import blas_thread_setter, set_compute_threads
from scratchgpt.train.thread_tuner import ThreadTuner


def _train(thread_plan, steps=3):
    """``steps`` AdamW steps of a small GPT whose arrays are big enough for the parallel kernel
    builds (>= 2**17 elements: (B*T, C) = (2048, 64), attention (8, 2, 256, 256)) and for
    OpenBLAS to split its GEMMs; thread_plan[i] threads at step i. Returns the weights and losses."""
    cfg = GPTConfig(vocab_size=256, block_size=256, n_layer=1, n_head=2, n_embd=64, dropout=0.0, smear=True)
    model = GPT(cfg, seed=3)
    opt = AdamW(decay_groups(model, 0.1), lr=3e-3, betas=(0.9, 0.99), eps=1e-8)
    rng = np.random.default_rng(5)
    x = rng.integers(0, 256, (8, 256))
    y = rng.integers(0, 256, (8, 256))
    mask = (rng.random((8, 256)) < 0.5).astype(np.float32)
    losses = []
    for i in range(steps):
        set_compute_threads(thread_plan[i])
        opt.zero_grad()
        _, loss = model(x, y, loss_mask=mask)
        loss.backward()
        clip_grad_norm(model.parameters(), 0.5)     # clipping on: the global norm is a reduction too
        opt.step()
        losses.append(float(loss.data))
    return {k: p.data.copy() for k, p in model.named_parameters()}, losses


def _digests(thread_plan) -> dict:
    import hashlib
    weights, losses = _train(thread_plan)
    h = hashlib.sha256(repr(losses).encode())
    for k in sorted(weights):
        h.update(weights[k].tobytes())
    return {"plan": thread_plan, "sha256": h.hexdigest(), "losses": losses}


def test_training_gives_the_same_bits_at_1_2_and_switching_threads():
    """In a subprocess whose pools have 2 threads (this suite's workers run on one, conftest.py)."""
    root = str(Path(__file__).resolve().parents[1])       # this checkout's package, not an installed one
    env = {**os.environ, "PYTHONPATH": root,
           **{v: "2" for v in ("NUMBA_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")}}
    proc = subprocess.run([sys.executable, __file__], capture_output=True, text=True, env=env, timeout=300, cwd=root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = json.loads(proc.stdout.strip().splitlines()[-1])
    assert runs["numba_threads"] == 2
    assert [r["plan"] for r in runs["runs"]] == [[1, 1, 1], [2, 2, 2], [2, 1, 2]]
    assert len({r["sha256"] for r in runs["runs"]}) == 1, runs


def test_set_compute_threads_sets_numba_and_blas():
    prev = numba.get_num_threads()
    try:
        assert set_compute_threads(1) == 1 and numba.get_num_threads() == 1
        setter = blas_thread_setter()
        if setter is not None:
            assert setter(1) == 1               # returns the count set_compute_threads put in place
        assert set_compute_threads(10**6) == numba.config.NUMBA_NUM_THREADS   # clamped to the pool
    finally:
        set_compute_threads(prev)


class _FakeTuner(ThreadTuner):
    """A tuner whose thread switches are recorded instead of applied."""

    def __init__(self, **kw):
        super().__init__(2, **kw)
        self.switches = []
        self._set = lambda n: self.switches.append(n) or n


def _run(tuner, step_time, steps):
    used = []
    for _ in range(steps):
        n = tuner.before_step()
        used.append(n)
        tuner.after_step(step_time[n])
    return used


def test_tuner_picks_the_faster_count_and_checks_less_often_when_confirmed():
    t = _FakeTuner(probe=3, period=10, max_period=40)
    used = _run(t, {1: 1.0, 2: 0.6}, 100)
    # probe: 1 settle + 3 measured steps at 1 thread (the start), then the same at 2 threads
    assert used[:8] == [1, 1, 1, 1, 2, 2, 2, 2]
    assert t.choice == 2 and used[8:18] == [2] * 10
    assert t.period == 40                       # 10 -> (confirmed) 20 -> 40 (cap)
    assert t.summary()["steps_at"]["2"] > 80


def test_tuner_drops_a_much_slower_challenger_after_one_step():
    t = _FakeTuner(probe=3, period=10)
    used = _run(t, {1: 1.0, 2: 4.0}, 12)
    # 4 steps on 1 thread, then 2 threads: settle + one measured step 4x slower -> back to 1
    assert used[:6] == [1, 1, 1, 1, 2, 2] and used[6:] == [1] * 6
    assert t.choice == 1 and t.period == 20


def test_tuner_follows_a_machine_that_gets_busy():
    t = _FakeTuner(probe=2, period=5, max_period=5)
    times = {1: 1.0, 2: 0.5}
    used = _run(t, times, 20)
    assert used[-1] == 2
    times[2] = 3.0                              # another job starts: 2 threads now lose
    used = _run(t, times, 20)
    assert used[-1] == 1


if __name__ == "__main__":      # the subprocess of the first test: 2-thread pools
    print(json.dumps({"numba_threads": numba.config.NUMBA_NUM_THREADS,
                      "runs": [_digests(p) for p in ([1, 1, 1], [2, 2, 2], [2, 1, 2])]}))
