"""Experiment kept out of the library: causal attention with the batch split over Python threads.

Each (b, h) product of attention is a small GEMM (S: 64x64x32; M: <= 64x256x64) that OpenBLAS
runs on one thread or threads badly, and np.matmul walks the (B, NH) heads one after the other,
so at 2 threads the attention products use ~1 core (profile, quiet machine, M: 174 ms of
attention per step vs ~60 ms of equivalent BLAS work).
Split: one batch slice per thread, each running the whole forward/backward of its slice
(scratchgpt.ops.attention.forward_into / backward_into) in a Python thread — np.matmul and the
serial builds of the kernels (nogil, chosen here with force_build(False)) release the GIL — with
OpenBLAS limited to 1 thread meanwhile so the slices do not fight over OpenBLAS's pool. Results
equal the library's path to float32 rounding (different BLAS blocking): tests/test_ops_attention.py.

Why it is not in the library (it was, opt-in with SCRATCHGPT_ATTN_SPLIT=1, off by default): it
only pays when a second core is free, and it could not be shown on the shared 2-core machine
(load ~3.5 from other jobs; fwd+bwd, 2 threads, wall, median of 30: S plain 1.21 vs split
1.35 ms; M plain 27.7 vs split 27.2 ms). An earlier prototype on a less loaded machine
(OPENBLAS_NUM_THREADS=1, M) measured 44 ms split vs 90 ms plain. At load ~2 the op alone gains
(2 threads, wall, median: S 1.31 -> 0.98 ms, M 27.9 -> 16.6 ms) but the whole training step did
not (train_step, 2 threads, tok/s: S plain 19.8k / 18.8k vs split 18.9k / 18.8k; M best step
plain 1888 / 1794 vs split 1866 / 1914).

    python benchmarks/attention_split.py [threads=2]     # fwd+bwd, plain vs split, configs S and M
"""
from __future__ import annotations

import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

if __name__ == "__main__":
    for _var in ("NUMBA_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
        os.environ[_var] = sys.argv[1] if len(sys.argv) > 1 else "2"

import numba  # noqa: E402
import numpy as np  # noqa: E402

from scratchgpt.ops._numba import force_build  # noqa: E402
from scratchgpt.runtime import blas_thread_setter  # noqa: E402
from scratchgpt.ops.attention import (_split_qkv_shape, backward_into,  # noqa: E402
                                      causal_self_attention_backward, causal_self_attention_forward,
                                      forward_into)


_pool_lock = threading.Lock()
_pool: dict = {}


def _executor(n: int) -> ThreadPoolExecutor:
    with _pool_lock:
        ex = _pool.get(n)
        if ex is None:
            ex = _pool[n] = ThreadPoolExecutor(max_workers=n, thread_name_prefix="scratchgpt-attn")
        return ex


def n_split(B: int) -> int:
    """Slices to use: one per Numba thread, at most B; 1 means "do not split"."""
    if B < 2 or blas_thread_setter() is None:
        return 1
    n = min(numba.get_num_threads(), B)
    return n if n >= 2 else 1


def _run_split(fn, n, arrays_b, rest):
    """fn(*[a[b0:b1] for a in arrays_b], *rest) for n batch slices, in n threads."""
    B = arrays_b[0].shape[0]
    ex = _executor(n)
    # openblas_set_num_threads_local is NOT thread-local in the OpenBLAS NumPy ships (0.3.31):
    # set from a worker, it left the main thread's count at 1 and every later Linear ran on one
    # thread (measured: whole step 1.6x slower). So the main thread sets 1 for the duration of
    # the split (it only waits meanwhile) and restores its previous count afterwards.
    setter = blas_thread_setter()
    prev = setter(1)
    try:
        with force_build(parallel=False):      # serial nogil kernels: one thread per slice
            futs = [ex.submit(fn, *[a[i * B // n:(i + 1) * B // n] for a in arrays_b], *rest)
                    for i in range(n)]
            for f in futs:
                f.result()
    finally:
        setter(prev)


def split_forward(qkv, n_head, n):
    """causal_self_attention_forward with the batch cut into n slices run in n threads."""
    B, T, C, NH, HS = _split_qkv_shape(qkv, n_head)
    att = np.empty((B, NH, T, T), dtype=qkv.dtype)                         # (B, NH, T, T)
    out = np.empty((B, T, C), dtype=qkv.dtype)                             # (B, T, C)
    _run_split(forward_into, n, [qkv, att, out], (NH, HS))
    return out, (qkv, att, NH)


def split_backward(dout, cache, n):
    """causal_self_attention_backward, split like split_forward."""
    qkv, att, NH = cache
    B, T, C3 = qkv.shape
    HS = C3 // 3 // NH
    dt = qkv.dtype
    dout = dout.astype(dt, copy=False)
    dqkv = np.empty((B, T, C3), dtype=dt)                                  # (B, T, 3C)
    datt = np.empty((B, NH, T, T), dtype=dt)                               # (B, NH, T, T)
    _run_split(backward_into, n, [qkv, att, dout, dqkv, datt], (NH, HS))
    return dqkv


def _time(fn, reps):
    for _ in range(3):
        fn()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts)) * 1e3


def main():
    rng = np.random.default_rng(0)
    n = n_split(8)
    if n == 1:
        print("no split possible here (one thread, or no openblas_set_num_threads_local)")
        return
    print(f"{'config':6} {'plain ms':>9} {'split ms':>9}   (fwd+bwd, median, {n} threads, wall)")
    for name, (B, T, C, NH) in {"S": (12, 64, 128, 4), "M": (8, 256, 384, 6)}.items():
        qkv = rng.standard_normal((B, T, 3 * C)).astype(np.float32)
        dout = rng.standard_normal((B, T, C)).astype(np.float32)

        def plain():
            out, cache = causal_self_attention_forward(qkv, NH)
            causal_self_attention_backward(dout, cache)

        def split():
            out, cache = split_forward(qkv, NH, n)
            split_backward(dout, cache, n)

        reps = 30 if name == "S" else 10
        print(f"{name:6} {_time(plain, reps):9.2f} {_time(split, reps):9.2f}")
    print("load average:", os.getloadavg())


if __name__ == "__main__":
    main()
