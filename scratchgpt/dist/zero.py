"""ZeRO-1: AdamW whose moments are sharded across the ranks (optimizer state / N per rank).

Plain data parallelism keeps a full copy of Adam's two moments on every rank: 8 of the 16 bytes
per parameter. ZeRO stage 1 gives each rank one contiguous 1/N slice of the flat parameter
vector to own:

    grads  --reduce-scatter-->  my slice of the summed gradient      (n (N-1)/N bytes sent)
    AdamW on my slice only      (moments exist for my slice only)
    params --allgather-->       every rank's updated slice, everywhere (n (N-1)/N bytes sent)

The traffic equals one allreduce (which *is* a reduce-scatter followed by an allgather), so the
memory saving is free in bandwidth. AdamW is elementwise, so updating slices gives exactly the
numbers the full update gives (tests/test_dist.py compares it with allreduce + AdamW).

Scope: a standalone optimizer for the training loop of ``measure``/tests — it is not wired
into ``train.Trainer`` (clipping on sharded gradients, and checkpoints that gather the moments
so N ranks can resume on M, are the missing pieces).
"""
from __future__ import annotations

import numpy as np

from ..ops.adamw import adamw_update


class Zero1AdamW:
    """AdamW over ``groups`` (``optim.decay_groups`` output) with moments only for this rank's slice."""

    def __init__(self, groups, world, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
        self.world = world
        self.lr, self.betas, self.eps = float(lr), tuple(betas), float(eps)
        self.params, segs, n = [], [], 0                     # segs: (param, lo, hi, weight_decay)
        for g in groups:
            for p in g["params"]:
                self.params.append(p)
                segs.append((p, n, n + p.data.size, float(g["weight_decay"])))
                n += p.data.size
        size = world.size
        self.padded = -(-n // size) * size                   # equal slices for reduce-scatter
        self.slice_len = self.padded // size
        lo, hi = world.rank * self.slice_len, (world.rank + 1) * self.slice_len
        self.lo, self.hi = lo, hi
        self.flat_grad = np.zeros(self.padded, np.float32)
        self.flat_param = np.zeros(self.padded, np.float32)
        self.my_grad = np.zeros(self.slice_len, np.float32)
        # my pieces of each parameter: (param, flat lo, flat hi, weight decay), clipped to my slice
        self.mine = [(p, max(a, lo), min(b, hi), wd) for p, a, b, wd in segs if a < hi and b > lo]
        self.segs = segs
        self.exp_avg = np.zeros(self.slice_len, np.float32)   # the sharded state: 1/N each
        self.exp_avg_sq = np.zeros(self.slice_len, np.float32)
        self.step_count = 0

    @property
    def state_bytes(self) -> int:
        return int(self.exp_avg.nbytes + self.exp_avg_sq.nbytes)

    def step(self) -> None:
        MPI, comm, world = self.world.MPI, self.world.comm, self.world
        for p, a, b, _ in self.segs:
            self.flat_grad[a:b] = 0.0 if p.grad is None else p.grad.reshape(-1)
            self.flat_param[a:b] = p.data.reshape(-1)
        world.wait(comm.Ireduce_scatter_block(self.flat_grad, self.my_grad, op=MPI.SUM), "ZeRO-1 reduce-scatter")
        self.my_grad *= np.float32(1.0 / world.size)        # the mean over ranks
        self.step_count += 1
        b1, b2 = self.betas
        for p, a, b, wd in self.mine:
            s = slice(a - self.lo, b - self.lo)
            adamw_update(self.flat_param[a:b], self.my_grad[s], self.exp_avg[s], self.exp_avg_sq[s],
                         self.step_count, self.lr, b1, b2, self.eps, wd)
        mine = self.flat_param[self.lo:self.hi].copy()
        world.wait(comm.Iallgather(mine, self.flat_param), "ZeRO-1 allgather")
        for p, a, b, _ in self.segs:
            p.data[...] = self.flat_param[a:b].reshape(p.data.shape)
