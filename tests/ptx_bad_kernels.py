"""Kernels with the faults benchmarks/ptx_check.py must catch (tests/test_ptx_check.py compiles
them for sm_90; they are never launched). Imported only by the check's compile step."""
import numpy as np

from scratchgpt.backend import cuda_module

cuda = cuda_module()
N = 32


@cuda.jit
def float64_literal(x, out):           # x, out float32: 0.1 is a float64 literal -> float64 math (0.5 would be folded: exact)
    i = cuda.grid(1)
    if i < x.size:
        out[i] = x[i] * 0.1


@cuda.jit
def shape_not_constant(x):             # a shared array's shape must be a compile-time constant
    buf = cuda.shared.array((N, N + 1), dtype=np.float32)
    buf[0, cuda.threadIdx.x] = x[0]
    cuda.syncthreads()
    x[cuda.threadIdx.x] = buf[0, 0]


@cuda.jit
def big_shared(x):                     # 40 KiB static: fits alone, not with 16 KiB dynamic on top
    buf = cuda.shared.array(10240, dtype=np.float32)
    buf[cuda.threadIdx.x] = x[cuda.threadIdx.x]
    cuda.syncthreads()
    x[cuda.threadIdx.x] = buf[10239 - cuda.threadIdx.x]


@cuda.jit
def clean(x, out):                     # the same as float64_literal with a float32 literal
    i = cuda.grid(1)
    if i < x.size:
        out[i] = x[i] * np.float32(0.1)
