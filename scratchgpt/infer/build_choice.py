"""Which kernel builds a decode step runs: the size policy's parallel ones, or serial only.

Why: a decode step of GPT-2 124M launches ~50 parallel Numba regions (one per linear), each
of which waits for every pool thread at its end. On a quiet machine that costs little and two
threads read the weights faster than one. When another process keeps a core busy, every
region waits for the thread that shares that core (up to a scheduler time slice), and a
single-threaded step can be faster. Which one wins changes with the load (and the model), so
it is measured while decoding, not configured (``benchmarks/generate.py --decode-builds
auto,parallel,serial [--busy N]`` compares the three; numbers in the README's benchmark notes):

* only pure decode steps are timed (every row is a sequence's last token), keyed by their row
  count R: steps of the same R cost about the same (the cache length grows slowly);
* the current mode runs, and every ``interval`` steps one step runs in the other mode (a
  probe). Each mode keeps an exponential moving average of its step time; the other mode is
  adopted when its average is 10 % below the current one (hysteresis: no flapping on noise);
* the first step of each mode does not count (it loads that build's machine code: measured
  as a 5x slower "serial" probe that kept the choice on parallel for a whole generation), so
  the first probe runs twice in a row;
* a probe that loses makes the interval 4x longer (8 -> 32 -> 128 steps), so a stable choice
  costs at most one step in 128 run the slower way; a switch resets it to 8.

The two builds compute every element with the same code in the same order (each prange splits
its work into a fixed number of jobs, never per thread: ops/_numba.py), so the choice changes
no bit of the logits — tested in tests/test_infer_build_choice.py.

``SCRATCHGPT_DECODE_BUILD=parallel|serial`` pins the mode (benchmarks, debugging); the default
``auto`` measures.
"""
from __future__ import annotations

import contextlib
import os
import time

from ..errors import ConfigError
from ..ops._numba import force_build

MODES = ("parallel", "serial")
FIRST_INTERVAL = 8        # steps between probes right after a switch (and at the start)
GROWTH = 4                # a lost probe multiplies the interval by this
MAX_INTERVAL = 128        # a stable choice probes this rarely: <= 1/128 of steps in the slower mode
SWITCH_MARGIN = 0.9       # adopt the other mode when its average is below 0.9 x the current one
ALPHA = 0.3               # weight of a new step time in the moving average


class _KeyState:
    __slots__ = ("mode", "avg", "interval", "countdown", "warm")

    def __init__(self):
        self.mode = "parallel"
        self.avg = {"parallel": None, "serial": None}
        self.interval = FIRST_INTERVAL
        self.countdown = FIRST_INTERVAL
        self.warm = set()             # modes whose first (load-the-code) step has run


class BuildChooser:
    """Per row count R: which mode the next pure decode step runs (see module docstring)."""

    def __init__(self, mode: str | None = None):
        mode = mode or os.environ.get("SCRATCHGPT_DECODE_BUILD", "auto")
        if mode not in MODES + ("auto",):
            raise ConfigError(f"SCRATCHGPT_DECODE_BUILD must be auto, parallel or serial, got {mode!r}")
        self.pinned = None if mode == "auto" else mode
        self._keys: dict = {}
        self.switches = 0                    # how often a key changed mode (shown by tests/benchmarks)

    def mode_for(self, key) -> str:
        """The mode of the next step with this key (a probe: the other mode)."""
        if self.pinned:
            return self.pinned
        st = self._keys.get(key)
        if st is None:
            st = self._keys[key] = _KeyState()
        if st.countdown <= 0:
            return "serial" if st.mode == "parallel" else "parallel"
        return st.mode

    def record(self, key, mode: str, seconds: float) -> None:
        if self.pinned:
            return
        st = self._keys[key]
        if mode not in st.warm:       # first step in this mode: code loading, not a measurement
            st.warm.add(mode)
            return                    # (a probe's countdown stays at 0: it runs again next step)
        old = st.avg[mode]
        st.avg[mode] = seconds if old is None else (1 - ALPHA) * old + ALPHA * seconds
        if mode == st.mode:
            st.countdown -= 1
            return
        # a probe of the other mode just ran
        cur, other = st.avg[st.mode], st.avg[mode]
        if cur is not None and other < SWITCH_MARGIN * cur:
            st.mode = mode
            st.interval = FIRST_INTERVAL
            self.switches += 1
        else:
            st.interval = min(GROWTH * st.interval, MAX_INTERVAL)
        st.countdown = st.interval

    @contextlib.contextmanager
    def run(self, key):
        """``with chooser.run(key): <the step>`` — runs it in the chosen mode and times it.
        Serial mode switches every kernel of the process to its serial build for the step
        (force_build is process-wide: a kernel another thread runs meanwhile also goes serial,
        which changes its speed, not its result)."""
        mode = self.mode_for(key)
        t0 = time.perf_counter()
        if mode == "serial":
            with force_build(False):
                yield mode
        else:
            yield mode
        self.record(key, mode, time.perf_counter() - t0)
