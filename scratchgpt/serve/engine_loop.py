"""The one thread that owns the Engine: continuous batching between the event loop and the model.

The HTTP side (asyncio) never touches the model. It ``submit``s a prompt and gets a ``Handle``
whose asyncio queue receives that request's ``StepOutput``s. This thread repeats:

    1. apply cancellations (client gone, timeout): ``engine.cancel`` frees the slot at once
    2. admit waiting requests while the engine has free slots (they join between decode steps)
    3. ``engine.step()``: one prefill for the newcomers and/or one decode step for everyone,
       then hand each output to its request's event loop (``call_soon_threadsafe``)

so a finished sequence leaves and a new one takes its slot without waiting for the rest of the
batch, and a cancel takes effect before the next step — "within one decode step". The model's
NumPy/Numba work runs here, off the event loop, so ``/health`` answers while 32 streams decode.

Back-pressure: at most ``max_batch_size`` requests run and ``max_queue`` wait; ``submit`` beyond
that raises a 503 rather than letting latency grow without bound. With ``max_batch_size=1``
the same loop serves one request at a time (the benchmark's "sequential" baseline).
"""
from __future__ import annotations

import asyncio
import collections
import itertools
import threading
import time
import traceback
from dataclasses import dataclass, field

from .errors import APIError

_ids = itertools.count()


@dataclass(eq=False)
class Handle:
    prompt_ids: list
    params: object
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue = field(default_factory=asyncio.Queue)
    id: str = ""
    admitted: bool = False
    done: bool = False                 # set by the engine thread: no more outputs will come
    submitted_at: float = field(default_factory=time.perf_counter)


class EngineLoop:
    def __init__(self, engine, max_queue: int = 64, on_change=None):
        from ..infer import GenerationRequest, EngineFull
        self._GenerationRequest, self._EngineFull = GenerationRequest, EngineFull
        self.engine = engine
        self.max_queue = int(max_queue)
        self.on_change = on_change              # callback(running, waiting) for the gauges
        self._cond = threading.Condition()
        self._waiting: collections.deque[Handle] = collections.deque()
        self._running: dict[str, Handle] = {}
        self._cancels: list[Handle] = []
        self._accepting = True
        self._stop = False
        self._mail: dict = {}                   # event loop -> [(queue, item)] awaiting its drain
        self._mail_lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="scratchgpt-engine", daemon=True)
        self.steps = 0

    # ---- called from the event loop ------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def counts(self) -> tuple[int, int]:
        with self._cond:
            return len(self._running), len(self._waiting)

    def submit(self, prompt_ids, params, request_id: str) -> Handle:
        h = Handle(list(prompt_ids), params, asyncio.get_running_loop(), id=request_id)
        with self._cond:
            if not self._accepting:
                raise APIError(503, "The server is shutting down", code="server_shutting_down")
            free = self.engine.max_batch_size - len(self._running)
            if len(self._waiting) >= self.max_queue + max(0, free):
                raise APIError(503, f"The server is overloaded: {len(self._running)} requests running and "
                                    f"{len(self._waiting)} waiting (queue limit {self.max_queue}); retry later",
                               code="server_overloaded", headers={"Retry-After": "1"})
            self._waiting.append(h)
            self._cond.notify()
        return h

    def cancel(self, h: Handle) -> None:
        with self._cond:
            if not h.done:
                self._cancels.append(h)
                self._cond.notify()

    def shutdown(self, timeout: float = 10.0) -> None:
        """Stop taking requests, cancel whatever is still running, and join the thread."""
        with self._cond:
            self._accepting = False
            self._stop = True
            self._cond.notify()
        if self._thread.is_alive():
            self._thread.join(timeout)

    # ---- the engine thread ---------------------------------------------------------------
    def _deliver(self, h: Handle, item) -> None:
        self._deliver_many([(h, item)])

    def _deliver_many(self, batch) -> None:
        """Hand outputs to their event loops: at most one pending wake-up per loop.

        Each wake-up (``call_soon_threadsafe``) is a write to the loop's self-pipe — a syscall
        that, on a busy machine, measured ~1.4 ms per step in this thread — plus a trip through
        the loop. Outputs go into a per-loop mailbox; only when the loop has no drain pending
        is one scheduled, so a loop that is behind picks up several steps in one go (and its
        streams then send several tokens per write: see app.output_batches)."""
        by_loop: dict = {}
        for h, item in batch:
            by_loop.setdefault(h.loop, []).append((h.queue, item))
        for loop, items in by_loop.items():
            with self._mail_lock:
                box = self._mail.get(loop)
                if box is not None:              # a drain is scheduled and has not run yet
                    box.extend(items)
                    continue
                self._mail[loop] = items
            try:
                loop.call_soon_threadsafe(self._drain, loop)
            except RuntimeError:  # that event loop is closed: nobody is listening any more
                with self._mail_lock:
                    self._mail.pop(loop, None)

    def _drain(self, loop) -> None:
        """On the event loop: put everything in its mailbox into the requests' queues, in order."""
        with self._mail_lock:
            items = self._mail.pop(loop, ())
        for queue, item in items:
            queue.put_nowait(item)

    def _finish(self, h: Handle, item=None) -> None:
        h.done = True
        self._running.pop(h.id, None)
        if item is not None:
            self._deliver(h, item)

    def _run(self) -> None:
        while True:
            try:
                if self._iteration():
                    return
            except Exception as e:     # never let the thread die: every waiting client would hang
                traceback.print_exc()
                self._abort_all(APIError(500, f"engine loop failed: {type(e).__name__}: {e}", type="server_error"))

    def _iteration(self) -> bool:
        """One pass: cancellations, admissions, one engine step. True when it is time to stop."""
        with self._cond:
            while not (self._waiting or self._cancels or self._stop or self.engine.has_work()):
                self._cond.wait()
            cancels, self._cancels = self._cancels, []
            stop = self._stop
            for h in cancels:
                if not h.admitted and h in self._waiting:
                    self._waiting.remove(h)
                    h.done = True
        for h in cancels:
            if h.admitted and not h.done:
                self.engine.cancel(h.id)
                self._finish(h)
        if stop:
            self._abort_all(APIError(503, "The server shut down before this request finished",
                                     code="server_shutting_down"))
            self._notify()
            return True
        self._admit()
        if self.engine.has_work():
            try:
                outs = self.engine.step()
            except Exception as e:   # a bug in the model code must not hang every connection
                traceback.print_exc()
                self._abort_all(APIError(500, f"generation failed: {type(e).__name__}: {e}",
                                         type="server_error"))
                outs = []
            self.steps += 1
            batch = []
            for out in outs:
                h = self._running.get(out.id)
                if h is None:
                    continue
                if out.finished:
                    h.done = True
                    self._running.pop(h.id, None)
                batch.append((h, out))
            self._deliver_many(batch)
        self._notify()
        return False

    def _admit(self) -> None:
        while True:
            with self._cond:
                if not self._waiting or self.engine.num_free_slots <= 0:
                    return
                h = self._waiting.popleft()
            try:
                self.engine.add(self._GenerationRequest(prompt_ids=h.prompt_ids, params=h.params, id=h.id))
            except self._EngineFull:
                with self._cond:
                    self._waiting.appendleft(h)
                return
            except Exception as e:   # e.g. ContextLengthError the app did not foresee
                h.done = True
                self._deliver(h, APIError(400, str(e), code=getattr(e, "code", None)))
                continue
            h.admitted = True
            self._running[h.id] = h

    def _abort_all(self, err: APIError) -> None:
        for h in list(self._running.values()):
            try:
                self.engine.cancel(h.id)
            except Exception:
                pass
            self._finish(h, err)
        with self._cond:
            waiting, self._waiting = list(self._waiting), collections.deque()
        for h in waiting:
            h.done = True
            self._deliver(h, err)

    def _notify(self) -> None:
        if self.on_change is not None:
            running, waiting = self.counts()
            self.on_change(running, waiting)

