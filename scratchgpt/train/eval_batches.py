"""Fixed evaluation batches, and the adapter from data iterators to the trainer.

Training batches come from ``scratchgpt.data.batches`` (PretrainBatches, SFTBatches: seeded and
resumable). Validation needs the *same* batches at every evaluation, so here we cut the
validation data into a fixed list once: evenly spaced windows for pretraining, every
conversation (padded only to the longest in its batch) for SFT.

Masked positions carry the target ``IGNORE_INDEX``, which cross_entropy skips; we pass no
separate float mask, so a masked position can never be counted by accident.
"""
from __future__ import annotations

import numpy as np

from ..data.batches import shifted_targets
from ..errors import DataError
from ..ops.cross_entropy_op import IGNORE_INDEX


def fixed_windows(tokens: np.ndarray, batch_size: int, seq_len: int, max_batches: int) -> list:
    """Evenly spaced, non-random windows for validation: the same batches every evaluation."""
    T = seq_len
    n_windows = max(1, min((len(tokens) - 1) // T, batch_size * max_batches))
    if len(tokens) < T + 1:
        raise DataError(f"validation tokens ({len(tokens)}) shorter than one window of {T + 1}")
    stride = max(1, (len(tokens) - T - 1) // max(n_windows - 1, 1)) if n_windows > 1 else 1
    starts = [min(i * stride, len(tokens) - T - 1) for i in range(n_windows)]
    out = []
    for b in range(0, len(starts), batch_size):
        win = np.stack([np.asarray(tokens[s:s + T + 1], dtype=np.int64) for s in starts[b:b + batch_size]])
        out.append((win[:, :-1], win[:, 1:], None))
    return out


def conversation_arrays(ids: list, mask: list, seq_len: int):
    """(x, y) for one rendered conversation: y is ids shifted by one, IGNORE_INDEX where mask is 0.

    ``mask[i] == 1`` marks token i as an assistant token, so the *prediction of* token i (made at
    position i-1) is trained: y[i-1] = ids[i] iff mask[i]. Conversations longer than seq_len+1
    are cut (keeping the start, where the user's request is).
    """
    ids = np.asarray(ids[:seq_len + 1], dtype=np.int64)
    m = np.asarray(mask[:seq_len + 1], dtype=bool)
    x = ids[:-1]
    y = shifted_targets(ids, m)
    return x, y


def as_triple(batch):
    """(x, y, mask) from a data-pipeline ``Batch`` (targets already IGNORE_INDEX where masked) or a tuple."""
    if hasattr(batch, "x") and hasattr(batch, "y"):
        return batch.x, batch.y, None
    return batch


def pad_batch(pairs: list, pad_id: int):
    """Right-pad a list of (x, y) to the longest; padded targets are IGNORE_INDEX."""
    T = max(len(x) for x, _ in pairs)
    B = len(pairs)
    X = np.full((B, T), pad_id, dtype=np.int64)
    Y = np.full((B, T), IGNORE_INDEX, dtype=np.int64)
    for i, (x, y) in enumerate(pairs):
        X[i, :len(x)] = x
        Y[i, :len(y)] = y
    return X, Y


def conversation_eval_batches(examples: list, batch_size: int, seq_len: int, pad_id: int) -> list:
    pairs = []
    for ids, mask in examples:
        if len(ids) >= 2:
            x, y = conversation_arrays(ids, mask, seq_len)
            if (y != IGNORE_INDEX).any():
                pairs.append((x, y))
    return [(*pad_batch(pairs[i:i + batch_size], pad_id), None) for i in range(0, len(pairs), batch_size)]
