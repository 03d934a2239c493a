"""Data-parallel training: every rank holds the whole model and trains on its rows of each batch.

``DataParallel.trainer_hooks()`` fills the hooks ``train.Trainer`` offers (the trainer never
imports this package; it calls them by name):

    loss_weight(y, mask) -> w     before each micro-batch's backward: the local loss (a mean over
                                  this rank's n_local counted target tokens) is multiplied by
                                  w = n_local / n_global, making it this rank's share of the
                                  *global* mean loss, so that the SUM of the gradients over ranks
                                  is the gradient of the global mean even when ranks count
                                  different numbers of tokens (SFT masks, uneven rows) — exactly
                                  what one process computes on the whole batch. (Not
                                  size * n_local / n_global with a mean over ranks: under mixed
                                  precision every float16 gradient in backward would then be
                                  ``size`` times the one-process value and overflow sooner.)
    before_last_backward()        (``overlap=True``) arms the buckets: each bucket's allreduce
                                  starts during the last micro-batch's backward, as soon as its
                                  gradients are complete (allreduce.py);
    sync_grads(params)            after backward, before clipping: bucketed allreduce (a sum);
    wrap_optimizer(opt)           (``zero=1``) ZeRO-1: AdamW's moments sharded over the ranks
                                  (zero.Zero1Optimizer), gathered into every checkpoint;
    reduce_losses(values, ws, n)  the global loss of each micro-batch (logs, finiteness checks)
                                  and the global batch's token count;
    evaluate_fn(model, batches)   validation loss, each rank on its rows, summed by allreduce;
    writes_files                  only rank 0 writes checkpoints, metrics and models.

Everything after ``sync_grads`` — clipping, the finiteness check, the loss scaler, the optimizer
update, the schedule, early stopping — then runs on identical numbers on every rank, so the
ranks stay identical without ever sending weights. ``check_start(trainer)`` verifies that at
start-up: same configuration, same data (a fingerprint of the first global batch and of the
validation batches), same weights — and refuses to start otherwise, naming what differs.
"""
from __future__ import annotations

import hashlib
import json

import numpy as np

from ..errors import DistError
from .allreduce import GradBuckets
from .comm import World
from .sharding import ShardedBatches, shard_rows

IGNORE_INDEX = -100


def counted_tokens(y, mask=None) -> int:
    """Targets that count in the loss: mask > 0 when given, else y != IGNORE_INDEX."""
    return int(np.count_nonzero(mask)) if mask is not None else int(np.count_nonzero(y != IGNORE_INDEX))


def _digest(*arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        if a is not None:
            from ..backend import to_host
            a = np.ascontiguousarray(to_host(a))       # GPU weights: digested from a host copy
            h.update(str((a.dtype.str, a.shape)).encode())
            h.update(a.tobytes())
    return h.hexdigest()[:16]


class DataParallel:
    def __init__(self, world: World | None = None, bucket_mb: float = 4.0, overlap: bool = True, zero: int = 0):
        self.world = world or World()
        self.zero = int(zero)
        self.optimizer = None                 # the Zero1Optimizer under zero=1
        self.rank, self.world_size = self.world.rank, self.world.size
        self.bucket_mb = bucket_mb
        self.overlap = overlap
        self.buckets = None                   # built at the first sync (the trainable set is known then)
        self.comm_seconds = 0.0               # time spent in sync_grads (benchmarks read it)
        self.comm_bytes = 0

    @property
    def is_writer(self) -> bool:
        return self.rank == 0

    def log(self, message: str) -> None:
        """``print`` on rank 0 only (the trainer's ``log=`` on every rank)."""
        if self.is_writer:
            print(message, flush=True)

    # ---------------------------------------------------------------- data
    def shard(self, batches) -> ShardedBatches:
        return ShardedBatches(batches, self.rank, self.world_size)

    # ---------------------------------------------------------------- the trainer's hooks
    def loss_weight(self, y, mask=None) -> float:
        n_local = counted_tokens(y, mask)
        n_global = self.world.allreduce_sum([n_local], "token count")[0]
        return float(n_local / n_global) if n_global else 0.0

    def _buckets(self, params) -> GradBuckets:
        if self.buckets is None:
            self.buckets = GradBuckets(params, self.world, self.bucket_mb, average=False)
        return self.buckets

    def before_last_backward(self, params) -> None:
        self._buckets(params).arm()

    def sync_grads(self, params) -> None:
        import time
        self._buckets(params)
        t0 = time.perf_counter()
        self.buckets.sync()
        self.comm_seconds += time.perf_counter() - t0
        self.comm_bytes += self.buckets.nbytes

    def reduce_losses(self, values, weights, ntok: int):
        """(global loss of each micro-batch, tokens of the global batch) in one small allreduce."""
        # a rank with no counted token has weight 0 and loss 0 (cross_entropy's empty mean)
        local = [w * v if w else 0.0 for v, w in zip(values, weights)] + [ntok]
        total = self.world.allreduce_sum(local, "loss allreduce")
        return [float(t) for t in total[:-1]], int(total[-1])

    def trainer_hooks(self) -> dict:
        """Keyword arguments for ``train.Trainer``: the data-parallel hooks of this rank."""
        hooks = {"sync_grads": self.sync_grads, "writes_files": self.is_writer, "loss_weight": self.loss_weight,
                 "reduce_losses": self.reduce_losses, "evaluate_fn": self.evaluate}
        if self.overlap:
            hooks["before_last_backward"] = self.before_last_backward
        if self.zero:
            hooks["wrap_optimizer"] = self.wrap_optimizer
        return hooks

    def wrap_optimizer(self, optimizer):
        """ZeRO-1: the optimizer's moments sharded over the ranks (zero.Zero1Optimizer)."""
        from .zero import Zero1Optimizer
        self.optimizer = Zero1Optimizer(optimizer, self.world)
        self.log(f"ZeRO-1: optimizer state {self.optimizer.state_bytes / 1e6:.2f} MB per rank "
                 f"(plain data parallel: {self.optimizer.full_state_bytes / 1e6:.2f} MB on every rank)")
        return self.optimizer

    def evaluate(self, model, batches) -> float:
        """Mean validation loss per counted token over the global batches, each rank on its rows."""
        from ..train.trainer import evaluate_loss
        total, n = 0.0, 0
        for x, y, m in batches:
            xs, ys, ms = (shard_rows(a, self.rank, self.world_size) for a in (x, y, m))
            c = counted_tokens(ys, ms)
            if c:
                total += evaluate_loss(model, [(xs, ys, ms)]) * c
                n += c
        total, n = self.world.allreduce_sum([total, n], "validation allreduce")
        return float(total / max(n, 1))

    # ---------------------------------------------------------------- start-up
    def check_start(self, trainer, config: dict | None = None) -> None:
        """All ranks agree on config, data and weights, or every rank raises the same DistError."""
        batches = trainer.train_batches
        inner = getattr(batches, "inner", batches)
        state = json.loads(json.dumps(inner.state_dict()))
        first = inner.next_batch()                 # peek at the next global batch, then rewind
        inner.load_state_dict(state)
        x, y = (first.x, first.y) if hasattr(first, "x") else first[:2]
        mine = {
            "config": json.loads(json.dumps({"train": _plain(trainer.cfg), **(config or {})}, default=str)),
            "data": {"next_batch": _digest(x, y), "state": state,
                     "validation": _digest(*[a for b in trainer.val_batches for a in b[:2]])},
            "weights": _digest(*[p.data for _, p in trainer.model.named_parameters()]),
            "step": trainer.step,
        }
        import os
        import socket
        where = self.world.allgather_json({"pid": os.getpid(), "host": socket.gethostname()}, "start-up check")
        everyone = self.world.allgather_json(mine, "start-up check")
        for r, theirs in enumerate(everyone):
            if theirs != everyone[0]:
                what = [k for k in mine if theirs.get(k) != everyone[0].get(k)]
                detail = _first_difference(everyone[0], theirs)
                raise DistError(f"rank {r} disagrees with rank 0 about the {' and '.join(what)} ({detail}); "
                                "every rank must run the same command on the same files")
        # mpiexec names a rank killed by a signal only by its PID: this line maps PIDs to ranks
        self.log(f"data parallel over {self.world_size} ranks (" + ", ".join(
            f"rank {r}: pid {w['pid']} on {w['host']}" for r, w in enumerate(where)) + ")")
        if trainer.cfg.dropout > 0 and self.rank > 0:
            # each rank draws its own dropout masks (its rows differ); rank 0 keeps the run's stream,
            # the others derive theirs from (seed, rank, step), so a resume continues them
            from ..train.trainer import reseed_dropout
            reseed_dropout(trainer.model, int(np.random.SeedSequence(
                [trainer.cfg.seed, self.rank, trainer.step]).generate_state(1)[0]))


def _plain(cfg) -> dict:
    from dataclasses import asdict, is_dataclass
    d = asdict(cfg) if is_dataclass(cfg) else dict(cfg)
    d.pop("progress", None)                        # only rank 0 draws a progress bar
    return d


def _first_difference(a, b, path="") -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if a.get(k) != b.get(k):
                return _first_difference(a.get(k), b.get(k), f"{path}.{k}" if path else k)
    return f"{path}: rank 0 has {a!r}, it has {b!r}"
