"""Token + position embedding of a step's rows on the GPU (decode_embedding.py's math):

    x[r] = wte[tokens[r]] + wpe[positions[r]]          x (R, C)

One thread per (r, c): neighbouring threads read neighbouring columns of one embedding row.
Token ids are checked on the host before they reach the device (the engine does it).
"""
from __future__ import annotations

from ..cuda_arrays import cuda, launch1, require_device


@cuda.jit
def _embed_rows_cuda(wte, wpe, tokens, positions, out):   # wte (V, C); wpe (T, C); out (R, C)
    i = cuda.grid(1)
    R = out.shape[0]
    C = out.shape[1]
    if i < R * C:
        r = i // C
        c = i % C
        out[r, c] = wte[tokens[r], c] + wpe[positions[r], c]


def embed_rows_cuda(wte, wpe, tokens, positions, out):
    """tokens, positions (R,) int device arrays -> out (R, C) device array."""
    require_device(wte, wpe, tokens, positions, out, where="embed_rows_cuda")
    if out.size:
        launch1(_embed_rows_cuda, out.size, wte, wpe, tokens, positions, out)
    return out
