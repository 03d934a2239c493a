"""A faster way for numba.cuda's simulator to run a thread block (``install``; backend.py calls it).

The simulator (NUMBA_ENABLE_CUDASIM=1) runs every CUDA thread of a block as a Python thread.
numba-cuda 0.30 starts a new ``threading.Thread`` for every thread of every block and finds out
that all of a block's threads reached ``syncthreads()`` by polling them in a busy loop
(``is_alive()`` on each, over and over). Measured on a tiny GPT forward (B=2, T=8, C=16,
vocab 300; 122 blocks, 10,176 threads): 15 s, of which 7.7 s were the polling and 3.1 s the
thread starts — the kernels' own Python was a fraction.

Here the same semantics with less waste:
  - a pool of worker threads that persists between launches: a block's thread ``i`` runs on
    worker ``i`` (no thread start per CUDA thread);
  - ``syncthreads()`` is a barrier on a condition variable: the last thread to arrive releases
    the others, and threads that have returned no longer count (what the polling loop did: it
    released the barrier when every *live* thread was blocked);
  - blocks still run one after another, and an exception in any thread aborts the block and is
    raised from the launch with the thread and block named, as before.

What a kernel sees is unchanged: ``cuda.threadIdx`` / ``blockIdx`` / ``laneid`` come from the
current thread's attributes, shared arrays from the simulator (with backend.py's lock).
"""
from __future__ import annotations

import queue
import sys
import threading

import numpy as np

_POOL: list = []
_POOL_LOCK = threading.Lock()


class _Worker(threading.Thread):
    """One simulated CUDA thread slot: takes (manager, block, thread) jobs from its queue."""

    def __init__(self):
        super().__init__(daemon=True, name=f"cudasim-{len(_POOL)}")
        self.jobs = queue.SimpleQueue()
        self._manager = None
        self.blockIdx = self.threadIdx = None
        self.thread_id = 0
        self.start()

    def run(self):
        while True:
            manager, fn, args, block_idx, thread_idx, tid = self.jobs.get()
            self._manager, self.blockIdx, self.threadIdx, self.thread_id = manager, block_idx, thread_idx, tid
            try:
                if manager.debug:
                    with np.errstate(divide="raise"):
                        fn(*args)
                else:
                    fn(*args)
            except BaseException as e:       # noqa: BLE001 - handed to the launching thread
                manager.fail(self, e, sys.exc_info()[2])
            finally:
                manager.finished()

    # ---- what kernelapi.FakeCUDAModule calls on threading.current_thread()
    def syncthreads(self):
        self._manager.barrier()

    def _vote(self, value):
        st = self._manager.block_state
        st[self.threadIdx.x, self.threadIdx.y, self.threadIdx.z] = value
        self.syncthreads()
        res = st.copy()
        self.syncthreads()
        return res

    def syncthreads_count(self, value):
        return int(np.count_nonzero(self._vote(value)))

    def syncthreads_and(self, value):
        return 1 if np.all(self._vote(value)) else 0

    def syncthreads_or(self, value):
        return 1 if np.any(self._vote(value)) else 0


def _workers(n: int) -> list:
    with _POOL_LOCK:
        while len(_POOL) < n:
            _POOL.append(_Worker())
        return _POOL[:n]


class PooledBlockManager:
    """Drop-in for ``numba.cuda.simulator.kernel.BlockManager`` (same constructor and ``run``)."""

    def __init__(self, f, grid_dim, block_dim, debug):
        self._f = f
        self._block_dim = block_dim
        self.debug = debug
        self.block_state = np.zeros(block_dim, dtype=np.bool_)
        self._cond = threading.Condition()

    def run(self, grid_point, *args):
        from numba.cuda.simulator.kernelapi import Dim3
        points = list(np.ndindex(*self._block_dim))
        bx, by = self._block_dim[0], self._block_dim[1]
        self._alive, self._waiting, self._generation = len(points), 0, 0
        self._error, self._abort = None, False
        block_idx = Dim3(*grid_point)
        for w, p in zip(_workers(len(points)), points):
            w.jobs.put((self, self._f, args, block_idx, Dim3(*p), p[0] + bx * (p[1] + by * p[2])))
        with self._cond:
            while self._alive:
                self._cond.wait()
        if self._error is not None:
            raise self._error[0].with_traceback(self._error[1])

    def _release(self):
        self._waiting = 0
        self._generation += 1
        self._cond.notify_all()

    def barrier(self):
        with self._cond:
            if self._abort:
                raise RuntimeError("abort flag set on syncthreads call")
            generation = self._generation
            self._waiting += 1
            if self._waiting == self._alive:
                self._release()
            else:
                while generation == self._generation:
                    self._cond.wait()
            if self._abort:
                raise RuntimeError("abort flag set on syncthreads clear")

    def finished(self):
        with self._cond:
            self._alive -= 1
            if self._alive == 0:
                self._cond.notify_all()
            elif self._waiting and self._waiting == self._alive:
                self._release()              # the threads still running all wait at the barrier

    def fail(self, worker, exc, tb):
        msg = f"tid={list(worker.threadIdx)} ctaid={list(worker.blockIdx)}" + (f": {exc}" if str(exc) else "")
        with self._cond:
            if self._error is None and not self._abort:
                try:
                    self._error = (type(exc)(msg), tb)
                except Exception:            # an exception type that takes other arguments
                    self._error = (exc, tb)
            self._abort = True
            self._generation += 1            # wake everyone at the barrier: they raise and finish
            self._cond.notify_all()


def install() -> None:
    """Make the simulator run blocks with ``PooledBlockManager`` (idempotent)."""
    try:
        from numba.cuda.simulator import kernel
    except ImportError:
        return
    kernel.BlockManager = PooledBlockManager
