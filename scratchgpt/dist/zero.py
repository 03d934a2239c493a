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

``Zero1AdamW`` is that textbook form, standalone (tests compare it with allreduce + AdamW).
``Zero1Optimizer`` is what ``train.Trainer`` runs under ``--dist dp --zero 1``: see its docstring
for why it allreduces the gradients instead of reduce-scattering them.
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


class Zero1Optimizer:
    """ZeRO-1 for ``train.Trainer``: wraps the run's Adam/AdamW (``build_optimizer``) and keeps
    its moments for this rank's slice of the flat parameter vector only.

    The gradients arrive already summed over ranks (``DataParallel.sync_grads``, overlapped with
    backward), so clipping, the finiteness check and loss-scale skips run unchanged on full
    gradients; ``step()`` updates this rank's slice (the same fused AdamW kernel on slices of
    the parameters: bit for bit what the full update gives) and allgathers the slices. That is
    the allreduce of plain data parallelism plus one allgather of the weights — 1.5x its bytes,
    where ``Zero1AdamW`` above (reduce-scatter + allgather) moves 1x but would need the gradient
    norm and the finiteness check computed on shards. The saving is the point here: Adam's 8
    bytes per parameter become 8 / N per rank.

    Checkpoints hold the *full* optimizer state in the wrapped optimizer's format:
    ``state_dict()`` gathers the slices on rank 0 (every rank must call it: the trainer does),
    ``load_state_dict()`` validates the full state and keeps this rank's slice, so a ZeRO run
    resumes on any number of ranks, with or without ZeRO, and any checkpoint resumes under ZeRO.
    """

    collective_state = True           # Trainer.save: every rank calls state_dict()

    def __init__(self, inner, world):
        if not hasattr(inner, "decoupled") or tuple(inner.state_keys) != ("exp_avg", "exp_avg_sq"):
            from ..errors import ConfigError
            raise ConfigError(f"--zero 1 shards Adam/AdamW moments; the run's optimizer is {type(inner).__name__}")
        self.inner, self.world = inner, world
        self.param_groups = inner.param_groups
        self.segs, n = [], 0                                  # (group, param, flat lo, flat hi)
        for group in inner.param_groups:
            for p in group["params"]:
                self.segs.append((group, p, n, n + p.data.size))
                n += p.data.size
        self.n = n
        self.slice_len = -(-n // world.size)
        self.lo = min(n, world.rank * self.slice_len)
        self.hi = min(n, self.lo + self.slice_len)
        self.mine = [(g, p, max(a, self.lo), min(b, self.hi), a) for g, p, a, b in self.segs
                     if a < self.hi and b > self.lo]
        self.exp_avg = np.zeros(self.hi - self.lo, np.float32)        # this rank's moments only
        self.exp_avg_sq = np.zeros(self.hi - self.lo, np.float32)
        self.steps = {id(p): 0 for _, p, _, _ in self.segs}
        self.flat = np.zeros(self.slice_len * world.size, np.float32)  # the allgather's buffer

    @property
    def state_bytes(self) -> int:
        return int(self.exp_avg.nbytes + self.exp_avg_sq.nbytes)

    @property
    def full_state_bytes(self) -> int:
        return 8 * self.n

    def zero_grad(self) -> None:
        self.inner.zero_grad()

    def step(self) -> None:
        for _, p, _, _ in self.segs:
            if not p.data.flags.c_contiguous:       # the updates write through flat views of p.data
                p.data = np.ascontiguousarray(p.data)
            if p.grad is not None:
                self.steps[id(p)] += 1
        for group, p, a, b, start in self.mine:
            if p.grad is None:
                continue
            b1, b2 = group["betas"]
            wd = float(group["weight_decay"])
            data = p.data.reshape(-1)[a - start:b - start]              # views: updated in place
            g = np.ascontiguousarray(p.grad, dtype=np.float32).reshape(-1)[a - start:b - start]
            if not self.inner.decoupled:
                g = g + wd * data if wd else g
                wd = 0.0
            adamw_update(data, g, self.exp_avg[a - self.lo:b - self.lo], self.exp_avg_sq[a - self.lo:b - self.lo],
                         self.steps[id(p)], float(group["lr"]), b1, b2, float(group["eps"]), wd)
        mine = np.zeros(self.slice_len, np.float32)
        for _, p, a, b, start in self.mine:
            mine[a - self.lo:b - self.lo] = p.data.reshape(-1)[a - start:b - start]
        self.world.wait(self.world.comm.Iallgather(mine, self.flat), "ZeRO-1 allgather of the weights")
        for _, p, a, b in self.segs:
            p.data.reshape(-1)[...] = self.flat[a:b]

    def _gather(self, local) -> np.ndarray | None:
        """The full (n,) array on rank 0 from every rank's slice (None elsewhere)."""
        part = np.zeros(self.slice_len, np.float32)
        part[:local.size] = local
        full = np.zeros(self.slice_len * self.world.size, np.float32) if self.world.is_root else None
        self.world.wait(self.world.comm.Igather(part, full, root=0), "ZeRO-1 gather of the optimizer state")
        return None if full is None else full[:self.n]

    def state_dict(self) -> dict | None:
        """The full state in the wrapped optimizer's format on rank 0 (None on the others)."""
        m, v = self._gather(self.exp_avg), self._gather(self.exp_avg_sq)
        if m is None:
            return None
        self.inner.state = {id(p): {"step": self.steps[id(p)], "exp_avg": m[a:b].reshape(p.data.shape),
                                    "exp_avg_sq": v[a:b].reshape(p.data.shape)}
                            for _, p, a, b in self.segs if self.steps[id(p)]}
        try:
            return self.inner.state_dict()
        finally:
            self.inner.state = {}

    def load_state_dict(self, state_dict: dict) -> None:
        self.inner.load_state_dict(state_dict)            # every check of the full format
        for _, p, a, b in self.segs:
            st = self.inner.state.get(id(p))
            self.steps[id(p)] = int(st["step"]) if st else 0
        for _, p, a, b, start in self.mine:
            st = self.inner.state.get(id(p))
            for key, mine in (("exp_avg", self.exp_avg), ("exp_avg_sq", self.exp_avg_sq)):
                mine[a - self.lo:b - self.lo] = st[key].reshape(-1)[a - start:b - start] if st else 0.0
        self.inner.state = {}                             # drop the full copy: keep the slice
