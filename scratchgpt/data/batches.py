"""Seeded, resumable batch iterators over token shards.

Every batch is ``Batch(x, y, loss_mask)``: ``x`` (B, T) int64 inputs, ``y`` (B, T) int64 targets
= inputs shifted left by one, with ``IGNORE_INDEX`` (-100) where the loss must not look, and
``loss_mask`` (B, T) float32 aligned to ``y`` (1 = this target counts). Feed ``y`` to
``cross_entropy(..., ignore_index=-100)`` or ``loss_mask`` to ``GPT(..., loss_mask=)``.

Resuming: ``state_dict()`` is a small JSON-able dict; ``load_state_dict`` on a fresh iterator
over the same shard makes it produce exactly the batches the saved one would have produced
next. Randomness comes from ``np.random.default_rng([seed, step or epoch])``, so a state is
just counters, never a pickled generator.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import DataError
from ..ops.cross_entropy_op import IGNORE_INDEX




def shifted_targets(ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Targets for the inputs ids[:-1]: ids[1:], with IGNORE_INDEX where the target is masked.

    ``mask[i]`` belongs to token i, so the prediction OF token i (made at position i-1) is
    trained iff mask[i] > 0. The one place a loss mask becomes targets (SFT batches, and the
    fixed validation batches of train/eval_batches.py)."""
    return np.where(np.asarray(mask[1:]) > 0, ids[1:], IGNORE_INDEX)

@dataclass
class Batch:
    x: np.ndarray          # (B, T) int64
    y: np.ndarray          # (B, T) int64, IGNORE_INDEX where loss_mask == 0
    loss_mask: np.ndarray  # (B, T) float32


class _Resumable:
    KIND = ""
    _STATE = ()
    _FIXED = ()

    def state_dict(self) -> dict:
        d = {"kind": self.KIND}
        d.update({k: getattr(self, k) for k in self._FIXED + self._STATE})
        return d

    def load_state_dict(self, state: dict) -> None:
        if state.get("kind") != self.KIND:
            raise DataError(f"batch state is for {state.get('kind')!r}, this iterator is {self.KIND!r}")
        for k in self._FIXED:
            if state.get(k) != getattr(self, k):
                raise DataError(f"batch state has {k}={state.get(k)!r}, this iterator {k}={getattr(self, k)!r}")
        for k in self._STATE:
            setattr(self, k, state[k])

    def __iter__(self):
        while True:
            yield self.next_batch()


class PretrainBatches(_Resumable):
    """Random windows of ``block_size + 1`` tokens from a flat token array (a memmap is fine)."""
    KIND = "pretrain"
    _FIXED = ("batch_size", "block_size", "seed", "n_tokens")
    _STATE = ("step",)

    def __init__(self, tokens, batch_size: int, block_size: int, seed: int = 0):
        self.tokens = tokens
        self.batch_size, self.block_size, self.seed = int(batch_size), int(block_size), int(seed)
        self.n_tokens = int(len(tokens))
        if self.n_tokens < self.block_size + 1:
            raise DataError(f"pretraining shard has {self.n_tokens} tokens; need at least "
                            f"block_size + 1 = {self.block_size + 1}")
        self.step = 0

    def next_batch(self) -> Batch:
        B, T = self.batch_size, self.block_size
        rng = np.random.default_rng([self.seed, self.step])
        starts = rng.integers(0, self.n_tokens - T, size=B)                          # (B,)
        rows = np.stack([np.asarray(self.tokens[s:s + T + 1], dtype=np.int64) for s in starts])  # (B, T+1)
        self.step += 1
        return Batch(rows[:, :-1], rows[:, 1:].copy(), np.ones((B, T), dtype=np.float32))


class SFTBatches(_Resumable):
    """Conversations from an ``SFTShard`` in a seeded order per epoch.

    - ``packing="padded"``: one conversation per row, cut to ``block_size + 1`` tokens, padded
      with ``pad_id`` (targets there are ignored).
    - ``packing="packed"``: conversations laid end to end and cut into rows of ``block_size + 1``;
      consecutive rows overlap by one token so every next-token pair is trained exactly once.
      Attention then also sees the previous conversation — cheap context, no padding waste.
    """
    KIND = "sft"
    _FIXED = ("batch_size", "block_size", "seed", "packing", "n_conversations")
    _STATE = ("epoch", "cursor", "offset", "carry", "truncated")

    def __init__(self, shard, batch_size: int, block_size: int, seed: int = 0,
                 packing: str = "padded", pad_id: int | None = None):
        if packing not in ("padded", "packed"):
            raise DataError(f"packing must be 'padded' or 'packed', got {packing!r}")
        if len(shard) == 0:
            raise DataError("SFT shard holds no conversations")
        self.shard = shard
        self.batch_size, self.block_size, self.seed = int(batch_size), int(block_size), int(seed)
        self.packing = packing
        self.n_conversations = len(shard)
        self.pad_id = int(pad_id if pad_id is not None else (shard.meta.get("pad_id") or 0))
        self.epoch = self.cursor = self.offset = 0
        self.carry = None          # [id, mask] of the token a packed row starts with
        self.truncated = 0         # padded mode: conversations longer than a row (tail not trained)
        self._order_epoch, self._order = None, None

    def _order_for(self, epoch: int) -> np.ndarray:
        if self._order_epoch != epoch:
            self._order = np.random.default_rng([self.seed, epoch]).permutation(self.n_conversations)
            self._order_epoch = epoch
        return self._order

    def _next_conversation(self):
        i = int(self._order_for(self.epoch)[self.cursor])
        self.cursor += 1
        if self.cursor == self.n_conversations:
            self.epoch, self.cursor = self.epoch + 1, 0
        return self.shard[i]

    def next_batch(self) -> Batch:
        B, T = self.batch_size, self.block_size
        x = np.full((B, T), self.pad_id, dtype=np.int64)
        y = np.full((B, T), IGNORE_INDEX, dtype=np.int64)
        m = np.zeros((B, T), dtype=np.float32)
        for b in range(B):
            ids, mask = self._padded_row() if self.packing == "padded" else self._packed_row()
            n = len(ids) - 1
            x[b, :n] = ids[:-1]
            m[b, :n] = mask[1:]                      # the mask belongs to the target token
            y[b, :n] = shifted_targets(ids, mask)
        return Batch(x, y, m)

    def _padded_row(self):
        ids, mask = self._next_conversation()
        if len(ids) > self.block_size + 1:
            self.truncated += 1
        return (np.asarray(ids[:self.block_size + 1], dtype=np.int64),
                np.asarray(mask[:self.block_size + 1], dtype=np.int64))

    def _packed_row(self):
        want = self.block_size + 1
        ids_out, mask_out = [], []
        if self.carry is not None:
            ids_out.append(self.carry[0])
            mask_out.append(self.carry[1])
        while len(ids_out) < want:
            order = self._order_for(self.epoch)
            ids, mask = self.shard[int(order[self.cursor])]
            take = min(want - len(ids_out), len(ids) - self.offset)
            ids_out += [int(v) for v in ids[self.offset:self.offset + take]]
            mask_out += [int(v) for v in mask[self.offset:self.offset + take]]
            self.offset += take
            if self.offset == len(ids):
                self.offset = 0
                self.cursor += 1
                if self.cursor == self.n_conversations:
                    self.epoch, self.cursor = self.epoch + 1, 0
        self.carry = [ids_out[-1], mask_out[-1]]
        return np.asarray(ids_out, dtype=np.int64), np.asarray(mask_out, dtype=np.int64)
