"""Gradient averaging across ranks: buckets of flat, preallocated buffers (and the per-tensor twin).

One MPI call per parameter tensor pays the latency (alpha, ~microseconds) once per tensor —
GPT-2 124M has 148 of them — and hands MPI many small messages it cannot pipeline. So the
gradients are packed into a few flat float32 buffers ("buckets" of about ``bucket_mb``), allocated
once when training starts, and each bucket is one in-place ``Iallreduce``:

    for each bucket, last layers first:  copy its grads in, start its Iallreduce
    wait for all of them;                 grad = bucket slice / size   (the mean over ranks)

Buckets start in the order backward finishes gradients (the reverse of the parameter order),
which is the order a backward-overlapped version would start them in. We do not overlap with
backward itself: our autograd computes every gradient before returning, and on the 2-core
machines the two ranks already use both cores, so an MPI progress thread would only steal
compute time (measured nothing to gain; see benchmarks/dist.py).

``allreduce_per_tensor_ref`` is the plain twin: one blocking Allreduce per gradient. With two
ranks every element is ``a + b`` either way, so the two agree bit for bit (tests/test_dist.py).
"""
from __future__ import annotations

import numpy as np


class GradBuckets:
    """Flat float32 buffers covering ``params``' gradients, built once."""

    def __init__(self, params, world, bucket_mb: float = 4.0):
        self.world = world
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

    @staticmethod
    def _make(members, n):
        return np.zeros(n, dtype=np.float32), members

    @property
    def nbytes(self) -> int:
        return sum(buf.nbytes for buf, _ in self.buckets)

    def sync(self) -> None:
        """Replace every parameter's grad by its mean over ranks (a missing grad counts as zero)."""
        MPI, comm, world = self.world.MPI, self.world.comm, self.world
        requests = []
        for buf, members in self.buckets:
            for p, lo, hi in members:
                if p.grad is None:
                    buf[lo:hi] = 0.0
                else:
                    buf[lo:hi] = p.grad.reshape(-1)
            requests.append(comm.Iallreduce(MPI.IN_PLACE, buf, op=MPI.SUM))
        for i, req in enumerate(requests):
            world.wait(req, f"gradient allreduce (bucket {i + 1} of {len(requests)})")
        inv = np.float32(1.0 / world.size)
        for buf, members in self.buckets:
            for p, lo, hi in members:
                view = buf[lo:hi].reshape(p.data.shape)
                if (p.grad is None or p.grad.dtype != np.float32 or p.grad.base is not None
                        or not p.grad.flags.writeable):   # write in place only into an array the grad owns
                    p.grad = view * inv
                else:
                    np.multiply(view, inv, out=p.grad)


def allreduce_per_tensor_ref(params, world) -> None:
    """The plain twin of ``GradBuckets.sync``: one blocking Allreduce per gradient tensor."""
    MPI = world.MPI
    inv = np.float32(1.0 / world.size)
    for p in params:
        g = np.zeros(p.data.shape, np.float32) if p.grad is None else np.ascontiguousarray(p.grad, np.float32)
        out = np.empty_like(g)
        world.comm.Allreduce(g, out, op=MPI.SUM)
        p.grad = out * inv
