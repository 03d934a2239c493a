"""Exact and near-duplicate removal.

Exact: a record's key is its normalized text (case-folded, whitespace collapsed, roles kept) —
the first occurrence stays.

Near: MinHash over character shingles + LSH banding (Broder 1997; Leskovec et al., *Mining of
Massive Datasets* ch. 3). Each record's shingle set is summarized by ``num_perm`` minima of
random affine hashes ``(a*x + b) mod p``; two signatures agree at one position with probability
equal to the Jaccard similarity of the sets. LSH cuts the signature into ``bands`` bands of
``rows`` values; records that agree on a whole band become candidates, and a candidate is a
near-duplicate when the estimated Jaccard (fraction of agreeing positions) is >= ``threshold``.
Character shingles (not words) so Chinese, which has no spaces, works the same way.

Memory: a kept record costs its ``num_perm`` signature (uint32) plus one bucket entry per band.
"""
from __future__ import annotations

import hashlib
import zlib

import numpy as np

_P = np.uint64((1 << 31) - 1)  # a Mersenne prime: a*x stays below 2**63 for x < 2**32


def exact_key(text: str) -> str:
    return hashlib.blake2b(" ".join(text.casefold().split()).encode("utf-8"), digest_size=16).hexdigest()


def shingles(text: str, k: int) -> set[str]:
    text = " ".join(text.casefold().split())
    if len(text) <= k:
        return {text}
    return {text[i:i + k] for i in range(len(text) - k + 1)}


class ExactDeduper:
    def __init__(self):
        self.seen: dict[str, str] = {}  # key -> id of the first record

    def check(self, text: str, rid: str):
        """None if new (and remember it), else the id of the earlier identical record."""
        key = exact_key(text)
        first = self.seen.get(key)
        if first is None:
            self.seen[key] = rid
        return first


class MinHashLSH:
    def __init__(self, num_perm: int = 64, bands: int = 16, threshold: float = 0.8,
                 shingle_size: int = 4, seed: int = 0):
        if num_perm % bands:
            raise ValueError(f"num_perm ({num_perm}) must be a multiple of bands ({bands})")
        self.num_perm, self.bands, self.rows = num_perm, bands, num_perm // bands
        self.threshold, self.k = threshold, shingle_size
        rng = np.random.default_rng(seed)
        self.a = rng.integers(1, int(_P), size=num_perm, dtype=np.uint64)  # (num_perm,)
        self.b = rng.integers(0, int(_P), size=num_perm, dtype=np.uint64)
        self.buckets: list[dict[bytes, list[int]]] = [dict() for _ in range(bands)]
        self.signatures: list[np.ndarray] = []
        self.ids: list[str] = []

    def signature(self, text: str) -> np.ndarray:
        x = np.fromiter((zlib.crc32(s.encode("utf-8")) for s in shingles(text, self.k)), dtype=np.uint64)
        # (num_perm, n_shingles) -> min over shingles
        return ((self.a[:, None] * x[None, :] + self.b[:, None]) % _P).min(axis=1).astype(np.uint32)

    def check(self, text: str, rid: str):
        """None if not a near-duplicate of a kept record (and keep it), else (kept id, similarity)."""
        sig = self.signature(text)
        keys = [sig[i * self.rows:(i + 1) * self.rows].tobytes() for i in range(self.bands)]
        best = None
        seen_cands = set()
        for band, key in enumerate(keys):
            for cand in self.buckets[band].get(key, ()):
                if cand in seen_cands:
                    continue
                seen_cands.add(cand)
                sim = float(np.mean(self.signatures[cand] == sig))
                if sim >= self.threshold and (best is None or sim > best[1]):
                    best = (self.ids[cand], sim)
        if best is not None:
            return best
        idx = len(self.signatures)
        self.signatures.append(sig)
        self.ids.append(rid)
        for band, key in enumerate(keys):
            self.buckets[band].setdefault(key, []).append(idx)
        return None
