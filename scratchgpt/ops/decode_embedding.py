"""Token + position embedding of the rows of a generation step (no autograd).

Math: x[r] = wte[token[r]] + wpe[position[r]]   (R, C)   — GPT-2's input, for R rows that may
belong to different sequences at different positions (ops/embedding.py does the (B, T) grid
for training). Written into a preallocated buffer: no temporaries per step.
"""
from __future__ import annotations

import numpy as np
from numba import prange

from ._numba import STRICT, njit_pair


def embed_rows_ref(wte, wpe, tokens, positions):
    return np.asarray(wte, np.float64)[tokens] + np.asarray(wpe, np.float64)[positions]


@njit_pair(fastmath=STRICT)
def _embed_rows_kernel(wte, wpe, tokens, positions, out):  # wte (V, C); wpe (T, C); out (R, C)
    R, C = out.shape
    for r in prange(R):
        t = tokens[r]
        p = positions[r]
        for i in range(C):
            out[r, i] = wte[t, i] + wpe[p, i]


def embed_rows(wte, wpe, tokens, positions, out):
    """out (R, C) = wte[tokens] + wpe[positions]; tokens, positions (R,) int64."""
    _embed_rows_kernel.pick(out.size)(wte, wpe, tokens, positions, out)
    return out
