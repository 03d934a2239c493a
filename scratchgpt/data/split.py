"""Deterministic train/val/test split by hashing the conversation id.

The hash (BLAKE2b of ``seed:id``) maps each id to a number in [0, 1); the ratios cut that
interval. So the split of a record depends only on its id — not on file order, not on what
else is in the corpus — and adding data never moves an old record to another split.
Augmented copies hash their *source's* id (``split_key``), so they always land beside it.
"""
from __future__ import annotations

import hashlib

from ..errors import ConfigError

SPLITS = ("train", "val", "test")


def check_ratios(ratios) -> tuple:
    ratios = tuple(float(r) for r in ratios)
    if len(ratios) != 3 or any(r < 0 for r in ratios) or abs(sum(ratios) - 1.0) > 1e-6:
        raise ConfigError(f"split ratios must be three non-negative numbers summing to 1 "
                          f"(train, val, test), got {ratios}")
    return ratios


def unit_hash(key: str, seed: int = 0) -> float:
    h = hashlib.blake2b(f"{seed}:{key}".encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(h, "big") / 2.0 ** 64


def assign_split(key: str, ratios=(0.9, 0.05, 0.05), seed: int = 0) -> str:
    u = unit_hash(key, seed)
    if u < ratios[0]:
        return "train"
    if u < ratios[0] + ratios[1] or ratios[2] == 0:  # (float sums may fall just short of 1)
        return "val" if ratios[1] > 0 else "train"
    return "test"
