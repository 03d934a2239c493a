"""Greedy picks: the argmax of each row of logits (what the engine's greedy rows take).

    pick[b] = min { j : logits[b, j] = max_k logits[b, k] }     (the first index on ties)
    pick[b] = -1 when the row's maximum is not finite or the row holds a NaN

-1 hands the row back to the sampler, which raises its usual error for such logits
(infer/engine.py ``_pick_greedy`` does the same on the CPU). The GPU kernel
(``argmax_rows_cuda.py``) lets only these B integers cross to the host instead of B × V logits.
"""
from __future__ import annotations

import numpy as np


def argmax_rows_ref(logits: np.ndarray) -> np.ndarray:
    """logits (B, V) -> (B,) int64: first index of the row maximum, -1 for a non-finite row."""
    x = np.asarray(logits, dtype=np.float64)
    out = x.argmax(axis=1).astype(np.int64)
    bad = np.isnan(x).any(axis=1) | ~np.isfinite(x.max(axis=1))
    out[bad] = -1
    return out
