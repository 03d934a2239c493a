"""Gradient averaging across ranks: buckets of flat, preallocated buffers (and the per-tensor twin).

One MPI call per parameter tensor pays the latency (alpha, ~microseconds) once per tensor —
GPT-2 124M has 148 of them — and hands MPI many small messages it cannot pipeline. So the
gradients are packed into a few flat float32 buffers ("buckets" of about ``bucket_mb``), allocated
once when training starts, and each bucket is one in-place ``Iallreduce``:

    for each bucket, last layers first:  copy its grads in, start its Iallreduce
    wait for all of them;                 grad = bucket slice (/ size for the mean over ranks)

Overlap with backward (``arm()``): every parameter gets an ``on_grad_ready`` hook (autograd calls
it the moment backward has finished that parameter's gradient), and a bucket's Iallreduce
starts as soon as its last member is ready — the last layers' buckets travel while backward is
still differentiating the first layers. Buckets always *start* in bucket order (a ready bucket
waits for the ones before it): MPI requires every rank to start its collectives in the same
order, and a rank whose loss was not finite skips backward and starts them all in ``sync()``.
Each hook also tests the requests in flight: MPICH advances a non-blocking collective only
inside MPI calls (no progress thread by default), so without those polls a started bucket would
simply wait for ``sync()``. Whether overlap pays is measured (benchmarks/dist.py; chapters/ch9.md Q3):
1.00x with both cores busy, 1.15x with some slack, on this 2-core machine.

GPU ranks (``--device cuda --dist dp``): no CUDA-aware MPI is assumed, so the buckets stay in
host memory and each GPU gradient is copied into its bucket slice (device -> host) when the
bucket starts, and the reduced slice is copied back into the gradient's device array (host ->
device) after the wait: two copies of the gradients per step, the only transfers a GPU rank
makes besides the batch and the loss. (With NCCL or a CUDA-aware MPI the buckets would live on
the device; numba-cuda offers neither.)

``allreduce_per_tensor_ref`` is the plain twin: one blocking Allreduce per gradient. With two
ranks every element is ``a + b`` either way, so the two agree bit for bit (tests/test_dist.py).
"""
from __future__ import annotations

import numpy as np


class GradBuckets:
    """Flat float32 buffers covering ``params``' gradients, built once. ``average``: divide the
    sums by the number of ranks (the mean); off when each rank's loss is already its share of
    the global mean (``DataParallel``), so the sum is the gradient."""

    def __init__(self, params, world, bucket_mb: float = 4.0, average: bool = True):
        self.world = world
        self.average = average
        self.params = list(params)
        limit = max(1, int(bucket_mb * 2 ** 20) // 4)            # float32 elements per bucket
        self.buckets = []                                        # [(buffer, [(param, lo, hi)])]
        members, n = [], 0
        for p in reversed(self.params):                          # the order backward finishes them
            size = int(p.data.size)
            if members and n + size > limit:
                self.buckets.append(self._make(members, n))
                members, n = [], 0
            members.append((p, n, n + size))
            n += size
        if members:
            self.buckets.append(self._make(members, n))
        self.bucket_of = {id(p): b for b, (_, members) in enumerate(self.buckets) for p, _, _ in members}
        self.requests = []                 # Iallreduce requests of the buckets started so far, in order
        self.missing = []                  # per bucket: members whose gradient is not ready yet
        self.armed = False
        self.started_in_backward = 0       # buckets started by hooks during the last armed pass

    @staticmethod
    def _make(members, n):
        return np.zeros(n, dtype=np.float32), members

    @property
    def nbytes(self) -> int:
        return sum(buf.nbytes for buf, _ in self.buckets)

    # ---------------------------------------------------------------- overlap with backward
    def arm(self) -> None:
        """Start each bucket's allreduce from backward as soon as its gradients are complete.
        Call right before the last backward of the step; ``sync()`` then finishes the job."""
        self.requests = []
        self.missing = [len(members) for _, members in self.buckets]
        self.started_in_backward = 0
        self.armed = True
        for p in self.params:
            p.on_grad_ready(self._ready)

    def _ready(self, p) -> None:
        b = self.bucket_of[id(p)]
        self.missing[b] -= 1
        for r in self.requests:            # let MPI move the buckets already in flight
            r.Test()
        while len(self.requests) < len(self.buckets) and self.missing[len(self.requests)] == 0:
            self._start(len(self.requests))
            self.started_in_backward += 1

    def _disarm(self) -> None:
        if self.armed:
            for p in self.params:
                p.on_grad_ready(None)
            self.armed = False

    def _start(self, b: int) -> None:
        buf, members = self.buckets[b]
        for p, lo, hi in members:
            if p.grad is None:
                buf[lo:hi] = 0.0
            elif isinstance(p.grad, np.ndarray):
                buf[lo:hi] = p.grad.reshape(-1)
            else:                          # a GPU gradient: staged through this host bucket (no CUDA-aware MPI)
                p.grad.copy_to_host(buf[lo:hi].reshape(p.grad.shape))
        MPI = self.world.MPI
        self.requests.append(self.world.comm.Iallreduce(MPI.IN_PLACE, buf, op=MPI.SUM))

    def sync(self) -> None:
        """Replace every parameter's grad by its sum (``average``: mean) over ranks; a missing grad
        counts as zero. Starts the buckets not started during backward, then waits for all."""
        if not self.armed:
            self.requests = []
        self._disarm()
        while len(self.requests) < len(self.buckets):
            self._start(len(self.requests))
        requests, self.requests = self.requests, []
        for i, req in enumerate(requests):
            self.world.wait(req, f"gradient allreduce (bucket {i + 1} of {len(requests)})")
        inv = np.float32(1.0 / self.world.size) if self.average else None
        for buf, members in self.buckets:
            for p, lo, hi in members:
                view = buf[lo:hi].reshape(p.data.shape)
                if not isinstance(p.data, np.ndarray):              # GPU parameters: the sum goes back
                    self._to_device(p, view, inv)
                elif (p.grad is None or p.grad.dtype != np.float32 or p.grad.base is not None
                        or not p.grad.flags.writeable):   # write in place only into an array the grad owns
                    p.grad = view * inv if inv is not None else view.copy()
                elif inv is not None:
                    np.multiply(view, inv, out=p.grad)
                else:
                    p.grad[...] = view


    @staticmethod
    def _to_device(p, view, inv) -> None:
        """The reduced gradient of a GPU parameter back into device memory (into its own gradient
        array when it owns one of the right shape, else a new one)."""
        from ..backend import to_device
        host = view * inv if inv is not None else view
        g = p.grad
        if g is not None and not isinstance(g, np.ndarray) and g.shape == view.shape and g.dtype == np.float32:
            g.copy_to_device(np.ascontiguousarray(host))
        else:
            p.grad = to_device(np.ascontiguousarray(host), "cuda")


def allreduce_per_tensor_ref(params, world) -> None:
    """The plain twin of ``GradBuckets.sync``: one blocking Allreduce per gradient tensor."""
    MPI = world.MPI
    inv = np.float32(1.0 / world.size)
    for p in params:
        g = np.zeros(p.data.shape, np.float32) if p.grad is None else np.ascontiguousarray(p.grad, np.float32)
        out = np.empty_like(g)
        world.comm.Allreduce(g, out, op=MPI.SUM)
        p.grad = out * inv
