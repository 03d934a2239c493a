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

    Rows up to ``small_m`` go through our decode kernel (reads each weight once, see
    ops/decode_matmul.py); more rows (a prefill) through BLAS sgemm, which wins once the
    product has enough rows to reuse each weight many times.
    """

    small_m = 8  # measured crossover (benchmarks/generate.py --kernels): see the README table

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
        if x.shape[0] <= self.small_m:
            return small_matmul(x, self.wt, self.bias, out)
        np.matmul(x, self.wt.T, out=out)                              # BLAS sgemm, transposed view
        if self.bias is not None:
            out += self.bias
        return out

    def __repr__(self) -> str:
        return f"DenseLinear({self.in_features}, {self.out_features}, bias={self.bias is not None})"
