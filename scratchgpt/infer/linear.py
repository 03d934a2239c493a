"""The linear protocol of the engine, and its dense float32 implementation.

Every matmul weight of the decoder is an object with ``in_features``, ``out_features``,
``nbytes`` (bytes read per use: what decoding is bound by) and ``__call__(x, out)``, which
writes ``x @ W + b`` into ``out``: x (M, in) float32 C-contiguous, out (M, out) float32
preallocated. The engine calls nothing else, so quantized weights (infer/quantize.py) plug in
by providing the same four names.
"""
from __future__ import annotations

import numpy as np

from ..ops.decode_matmul import small_matmul


class DenseLinear:
    """float32 y = x W + b with W kept output-major (``wt`` = Wᵀ, (out, in), contiguous).

    Up to ``blas_min_m`` rows go through our kernels (ops/decode_matmul.py: they stream each
    weight once, and a row's result never depends on the other rows — the engine's batched ==
    single guarantee); longer prefills through BLAS sgemm, which reuses each weight across many
    rows better (~2x our block kernel at 32 rows on a quiet machine). Why not BLAS earlier:
    OpenBLAS threads every gemm above a tiny size, and on a busy 2-core machine each call then
    waits for its second thread to be scheduled — measured here under load: (4, 384) x (384,
    1152) 16-24 ms with BLAS vs 0.05 ms with our kernel; a 48-token prefill of a 2 x 64 model
    160-260 ms with 2 OpenBLAS threads vs 0.7 ms with 1; a 64-token prefill of the demo model
    ~25 ms through BLAS vs ~1 ms for a 32-token one through our kernel.
    """

    blas_min_m = 256            # rows from which BLAS takes over (prefill of a long prompt)

    def __init__(self, wt, bias=None):
        wt = np.ascontiguousarray(wt, dtype=np.float32)              # (out, in)
        if wt.ndim != 2:
            raise ValueError(f"DenseLinear: weight must be 2-D (out, in), got shape {wt.shape}")
        self.wt = wt
        self.out_features, self.in_features = wt.shape
        self.bias = None if bias is None else np.ascontiguousarray(bias, dtype=np.float32)  # (out,)
        if self.bias is not None and self.bias.shape != (self.out_features,):
            raise ValueError(f"DenseLinear: bias must have shape ({self.out_features},), got {self.bias.shape}")
        self.nbytes = int(wt.nbytes + (0 if self.bias is None else self.bias.nbytes))

    @classmethod
    def from_weight(cls, w, bias=None) -> "DenseLinear":
        """From GPT-2's (in, out) layout (a copy, transposed once at load time)."""
        return cls(np.asarray(w).T, bias)

    def __call__(self, x, out):                                       # x (M, in) -> out (M, out)
        if x.shape[0] < self.blas_min_m:
            return small_matmul(x, self.wt, self.bias, out)
        np.matmul(x, self.wt.T, out=out)                              # BLAS sgemm, transposed view
        if self.bias is not None:
            out += self.bias
        return out

    def __repr__(self) -> str:
        return f"DenseLinear({self.in_features}, {self.out_features}, bias={self.bias is not None})"
