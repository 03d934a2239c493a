"""``--threads auto``: a training run that times its own steps and uses 1 thread or all cores,
whichever is faster right now.

Why: on a quiet 2-core machine two threads make a step of the demo's model ~1.45x faster; with
any other job on the cores they make it 3-4x SLOWER (measured, benchmarks/demo_threads.py:
every parallel region — each OpenBLAS GEMM and Numba kernel, hundreds per step — waits for its
slowest thread, and a thread that shares its core with another process waits for a time
slice). Which one wins changes while a run goes on, so it is measured, not guessed from the
load average.

How: a probe runs ``probe`` steps at each candidate count, the current one first (each after one
unmeasured step to let the pools settle), and keeps the count with the lower median step time
until the next probe, ``period`` steps later; a challenger whose first step is 1.5x slower than
the current count's median is dropped at once (under load a 2-thread step can take 4x longer). When a probe confirms the current choice the period doubles (up to
``max_period``): on a steady machine probing costs a few steps, under load it stays cheap.

Allowed only because it changes no number: every op gives the same bits at any thread count
(tests/test_threads.py trains with 1, 2 and switching threads and compares exactly), so a run
with ``auto`` trains exactly the model a 1-thread run trains.
"""
from __future__ import annotations

import os
import statistics
from collections import Counter

AUTO_ENV = "SCRATCHGPT_THREADS"       # "auto" in a process started with --threads auto


def auto_threads_enabled() -> bool:
    return os.environ.get(AUTO_ENV) == "auto"


def most_threads() -> int:
    """The largest count auto mode tries: the process's cores, at most Numba's pool size."""
    import numba
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:          # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, numba.config.NUMBA_NUM_THREADS))


class ThreadTuner:
    """Call ``before_step()`` / ``after_step(seconds)`` around every training step."""

    GIVE_UP = 1.5      # a challenger step this many times slower than the current count ends the probe

    def __init__(self, most: int, probe: int = 3, period: int = 100, max_period: int = 800, log=None):
        from ..runtime import set_compute_threads
        self._set = set_compute_threads
        self.candidates = [most, 1] if most > 1 else [1]
        self.probe, self.base_period, self.period, self.max_period = probe, period, period, max_period
        self.log = log
        self.choice = 1                # start on 1 thread: under load the first probe of `most` then stops early
        self.current = None
        self.plan: list = []           # [(threads, measured)] for the probe in progress
        self.samples: dict = {}
        self.next_probe = 0            # step count at which the next probe starts
        self.steps = 0
        self.steps_at: Counter = Counter()
        self.last_medians: dict = {}
        self._measured = False

    @classmethod
    def from_env(cls, log=None):
        """A tuner when this process runs with ``--threads auto`` and has more than one core, else None."""
        if not auto_threads_enabled():
            return None
        most = most_threads()
        return cls(most, log=log) if most > 1 else None

    def before_step(self) -> int:
        if not self.plan and self.steps >= self.next_probe:
            order = [self.choice] + [c for c in self.candidates if c != self.choice]   # the current count first
            self.plan = [(c, i > 0) for c in order for i in range(self.probe + 1)]
            self.samples = {c: [] for c in self.candidates}
        n, self._measured = self.plan.pop(0) if self.plan else (self.choice, False)
        if n != self.current:
            self.current = self._set(n)
        return self.current

    def after_step(self, seconds: float) -> None:
        self.steps += 1
        self.steps_at[self.current] += 1
        if self._measured:
            self.samples[self.current].append(seconds)
            mine = self.samples[self.choice]
            if self.current != self.choice and mine and seconds > self.GIVE_UP * statistics.median(mine):
                self.plan = []                      # the challenger is far slower: stop paying for it
            if not self.plan:
                self._decide()

    def _decide(self) -> None:
        medians = {c: statistics.median(s) for c, s in self.samples.items()}
        best = min(self.candidates, key=lambda c: medians[c])
        self.period = min(2 * self.period, self.max_period) if best == self.choice else self.base_period
        changed = best != self.choice or not self.last_medians
        self.choice, self.last_medians = best, medians
        self.next_probe = self.steps + self.period
        if changed and self.log is not None:
            per = ", ".join(f"{c} thread{'s' if c > 1 else ''} {medians[c] * 1e3:.0f} ms" for c in self.candidates)
            self.log(f"threads auto: {best} (step time {per}; next check in {self.period} steps)")

    def summary(self) -> dict:
        """{"threads": "auto", "steps_at": {threads: steps}} for logs and eval.json."""
        return {"threads": "auto", "steps_at": {str(k): v for k, v in sorted(self.steps_at.items(), reverse=True)}}
