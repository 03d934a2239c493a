"""The key/value cache: preallocated once for every sequence slot the engine can hold.

Layout::

    k, v : (n_layer, n_slots, n_head, prefix_len + block_size, head_dim) float32

Slot s of layer l is ``k[l, s]`` (n_head, T, head_dim): each head's keys are one contiguous
(T, head_dim) block, the order the decode attention reads them in (ops/decode_attention.py).
Prefix-tuned models keep their learned prefix keys/values in positions 0..P-1 of every slot
(written once, here); a token at model position p lives at cache position P + p.
Memory: 2 · n_layer · n_slots · n_head · T · head_dim · 4 bytes — e.g. the demo model (6 × 384,
block 256) costs 4.7 MB per slot; GPT-2 124M (block 1024) 75 MB per slot.
"""
from __future__ import annotations

import numpy as np


class KVCache:
    def __init__(self, n_layer: int, n_slots: int, n_head: int, block_size: int, head_dim: int,
                 prefixes: dict | None = None, prefix_len: int = 0):
        self.prefix_len = int(prefix_len)
        self.block_size = int(block_size)
        T = self.prefix_len + self.block_size
        shape = (n_layer, n_slots, n_head, T, head_dim)
        self.k = np.zeros(shape, dtype=np.float32)
        self.v = np.zeros(shape, dtype=np.float32)
        if self.prefix_len:
            for layer, (pk, pv) in (prefixes or {}).items():     # (NH, P, HS) each
                self.k[layer, :, :, :self.prefix_len] = pk[None]
                self.v[layer, :, :, :self.prefix_len] = pv[None]

    @property
    def n_slots(self) -> int:
        return self.k.shape[1]

    @property
    def nbytes(self) -> int:
        return int(self.k.nbytes + self.v.nbytes)
