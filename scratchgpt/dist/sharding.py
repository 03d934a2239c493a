"""Each rank's slice of every global batch: deterministic, exact, resumable on any number of ranks.

Every rank runs the *same* seeded batch iterator (``data.batches``) and keeps only its rows:
rows ``[bounds[r], bounds[r + 1])`` of each (B, T) batch, with ``bounds`` the even split of B
(the first ``B % size`` ranks take one row more). So

- the slices of all ranks partition the global batch exactly (no row twice, none skipped);
- ``--batch-size`` stays the global batch: 1 process and N ranks see the same rows per step;
- the iterator state is the global iterator's (identical on every rank), so a checkpoint written
  by N ranks resumes on M ranks: the state is just "where the global stream is".

The rejected option — each rank drawing its own stream seeded by its rank — is cheaper by B/N
index draws per step (nothing, next to a forward pass) but makes the data depend on N, so a
run could not move between rank counts and would not equal the one-process run.
"""
from __future__ import annotations

import numpy as np


def shard_bounds(batch_size: int, size: int) -> np.ndarray:
    """(size + 1,) row boundaries: rank r owns rows bounds[r]:bounds[r + 1] of a global batch."""
    base, extra = divmod(int(batch_size), int(size))
    counts = np.array([base + (1 if r < extra else 0) for r in range(size)], dtype=np.int64)
    return np.concatenate([[0], np.cumsum(counts)])


def shard_rows(arr, rank: int, size: int):
    """This rank's rows of a (B, ...) array (None stays None)."""
    if arr is None:
        return None
    b = shard_bounds(len(arr), size)
    return arr[b[rank]:b[rank + 1]]


class ShardedBatches:
    """Wrap a batch iterator (``next_batch()``, ``state_dict()``, ``load_state_dict()``) so that
    it yields only this rank's rows. Works with ``data.batches.Batch`` and (x, y, mask) tuples."""

    def __init__(self, inner, rank: int, size: int):
        self.inner = inner
        self.rank, self.size = int(rank), int(size)
        if getattr(inner, "batch_size", size) < size:
            from ..errors import ConfigError
            raise ConfigError(f"batch_size={inner.batch_size} is smaller than the number of ranks ({size}); "
                              "every rank needs at least one row of each batch")

    def next_batch(self):
        batch = self.inner.next_batch()
        if hasattr(batch, "x") and hasattr(batch, "y"):
            return type(batch)(*(shard_rows(getattr(batch, f), self.rank, self.size)
                                 for f in ("x", "y", "loss_mask")))
        return tuple(shard_rows(a, self.rank, self.size) for a in batch)

    def state_dict(self) -> dict:
        return self.inner.state_dict()           # the global stream's position, the same on every rank

    def load_state_dict(self, state: dict) -> None:
        self.inner.load_state_dict(state)

    def __getattr__(self, name):                 # batch_size, block_size, ... of the global iterator
        return getattr(self.inner, name)
