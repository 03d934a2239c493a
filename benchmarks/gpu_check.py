"""GPU validation: every CUDA kernel against its float64 reference, timed, plus a GPT training step.

On a machine with an NVIDIA GPU (numba-cuda, the `gpu` extra; torch optional):

    python benchmarks/gpu_check.py --json gpu_check.json          # realistic sizes, <= ~5 minutes

and anywhere, on numba.cuda's simulator, tiny sizes (shows the script works end to end):

    python benchmarks/gpu_check.py --sim --json /tmp/gpu_check.json

For each kernel: fresh random inputs, output compared to the float64 reference as
‖out − ref‖ / ‖ref‖ (float32 kernels: expect ~1e-7..1e-5), every output element checked finite;
the matmul and layernorm outputs are also launched into buffers poisoned with NaN first, so an
element a kernel forgets to write shows up. Times: median of a few launches, with CUDA events on
a GPU (perf_counter + synchronize on the simulator, where times mean nothing). When torch sees
the GPU, the same work in torch (cuBLAS SGEMM, SDPA, ...) is timed beside it. Then one whole
GPT training step (forward, backward, AdamW) on the GPU vs our CPU path. Then batch-1 greedy
decoding: the engine on the GPU (infer/cuda_forward.py) vs PyTorch eager with a KV cache on the
same GPU and vs our CPU engine, tokens compared (under --sim torch runs on the CPU: the tokens
are still compared, the times mean nothing). The JSON's "kernels_validated" names every kernel
checked. Last, the device memory allocator (``pool_check``): a training step and a decode step
with the caching pool (scratchgpt/cuda_pool.py) and with its caching off, alternated, with the
device allocations per step counted by the pool (``--pool-only``: just that; ``--no-pool``:
numba-cuda's own memory manager throughout). benchmarks/GPU_RUN.md: the exact device call for a
session that is lent a GPU.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

SIZES = {
    # name: (real GPU size, simulator size)
    "matmul": ((4096, 768, 3072), (20, 17, 18)),
    "layernorm": ((8192, 768), (6, 37)),
    "gelu": ((8192 * 3072,), (150,)),
    "softmax": ((4096, 1024), (4, 45)),
    "attention": ((4, 1024, 12, 64), (1, 6, 2, 4)),       # B, T, NH, HS
    "cross_entropy": ((2048, 50257), (5, 33)),
    "embedding": ((8, 1024, 50257, 768), (2, 5, 11, 8)),   # B, T, V, C
    "adamw": ((124_000_000 // 4,), (200,)),
    "attention_bwd": ((4, 1024, 12, 64), (1, 6, 2, 4)),    # B, T, NH, HS (two tiles, one partial: tests/test_cuda_ops.py)
    "cross_attention": ((4, 256, 512, 12, 64), (1, 3, 4, 2, 2)),   # B, Tq, Tk, NH, HS
    "broadcast_add": ((8, 1024, 768), (2, 3, 5)),          # (B, T, C) + (C,)
    "transpose4d": ((4, 1024, 12, 64), (2, 3, 2, 2)),      # (B, T, NH, HS) -> (B, NH, T, HS)
    "smear": ((8, 1024, 768), (2, 3, 5)),
    "dense_rows": ((1, 768, 3072), (2, 40, 5)),            # M, K, N (decode matvec)
    "int8_rows": ((1, 768, 3072), (2, 40, 5)),
    "int4_rows": ((1, 768, 3072), (2, 40, 5)),
    "layernorm_rows": ((4, 768), (3, 10)),
    "decode_attention": ((4, 12, 1024, 64), (2, 2, 6, 3)),  # rows (one per slot), NH, Tmax, HS
    "decode_attention_split": ((4, 12, 1024, 64), (2, 2, 40, 3)),   # same, split into 32-position chunks
    "argmax_rows": ((4, 50257), (3, 45)),                  # B, V: greedy picks on the device
}
DECODE_SHAPES = {
    "real": dict(n_layer=12, n_head=12, n_embd=768, block_size=1024, vocab_size=50257, prompt=16, new_tokens=64),
    "sim": dict(n_layer=1, n_head=2, n_embd=8, block_size=16, vocab_size=11, prompt=3, new_tokens=3),
}
GPT_SHAPES = {
    "real": dict(n_layer=12, n_head=12, n_embd=768, block_size=1024, vocab_size=50257, batch_size=4, seq_len=256),
    "sim": dict(n_layer=1, n_head=2, n_embd=8, block_size=8, vocab_size=11, batch_size=1, seq_len=4),
}


def rel(out, ref):
    import numpy as np
    out = np.asarray(out, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    return float(np.linalg.norm(out - ref) / max(np.linalg.norm(ref), 1e-30))


def timer(fn, sim, repeats):
    """Median milliseconds of ``fn()`` (which launches GPU work)."""
    from scratchgpt.backend import cuda_module
    cuda = cuda_module()
    times = []
    fn()                                   # compile / warm up
    for _ in range(repeats):
        if sim:
            t0 = time.perf_counter()
            fn()
            cuda.synchronize()
            times.append((time.perf_counter() - t0) * 1e3)
        else:
            start, end = cuda.event(), cuda.event()
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(cuda.event_elapsed_time(start, end))
    return statistics.median(times)


def torch_timer(fn, repeats):
    import torch
    fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        fn()
        e.record()
        torch.cuda.synchronize()
        times.append(s.elapsed_time(e))
    return statistics.median(times)


def kernel_checks(sim, repeats, use_torch):
    import numpy as np

    from scratchgpt.backend import to_device, to_host
    from scratchgpt.cuda_arrays import full, launch
    from scratchgpt.ops import adamw, attention, cross_entropy_op, embedding_op, gelu_op, layernorm_op, softmax_op
    from scratchgpt.ops.adamw_cuda import adamw_update_cuda
    from scratchgpt.ops.attention_cuda import causal_self_attention_forward_cuda
    from scratchgpt.ops.cross_entropy_cuda import cross_entropy_forward_cuda
    from scratchgpt.ops.embedding_cuda import token_position_embedding_forward_cuda
    from scratchgpt.ops.gelu_cuda import gelu_forward_cuda
    from scratchgpt.ops.layernorm_cuda import _kernels as ln_kernels
    from scratchgpt.ops.layernorm_cuda import layernorm_forward_cuda
    from scratchgpt.ops.matmul_cuda import matmul2d_cuda
    from scratchgpt.ops.softmax_cuda import softmax_forward_cuda
    from scratchgpt.cuda_arrays import ROW_THREADS

    torch = None
    if use_torch:
        import torch
    rng = np.random.default_rng(0)
    f32 = np.float32
    which = 1 if sim else 0
    rows = []

    def r(*shape, scale=1.0):
        return (rng.standard_normal(shape) * scale).astype(f32)

    def add(name, size, err, ms, flops=None, torch_ms=None, poisoned=False):
        row = {"kernel": name, "size": list(size), "rel_err": err, "ms": round(ms, 4), "poisoned_output": poisoned}
        if flops:
            row["gflops"] = round(flops / (ms * 1e6), 1)
        if torch_ms is not None:
            row["torch_ms"] = round(torch_ms, 4)
            row["ours_over_torch_time"] = round(ms / torch_ms, 2)
        rows.append(row)
        print(f"  {name:14s} {str(size):28s} rel err {err:.2e}  {ms:9.3f} ms"
              + (f"  torch {torch_ms:8.3f} ms" if torch_ms is not None else ""), flush=True)

    # matmul: launched straight into a NaN-poisoned output
    M, K, N = SIZES["matmul"][which]
    a, b = r(M, K), r(K, N)
    da, db = to_device(a, "cuda"), to_device(b, "cuda")
    out = full((M, N), np.nan, f32)
    matmul2d_cuda(da, db, out=out)
    o = to_host(out)
    ok = bool(np.isfinite(o).all())
    err = rel(o, a.astype(np.float64) @ b) if ok else float("nan")
    ms = timer(lambda: matmul2d_cuda(da, db), sim, repeats)
    tms = None
    if torch is not None:
        ta, tb = torch.from_numpy(a).cuda(), torch.from_numpy(b).cuda()
        torch.backends.cuda.matmul.allow_tf32 = False
        tms = torch_timer(lambda: ta @ tb, repeats)
    add("matmul", (M, K, N), err, ms, 2 * M * K * N, tms, poisoned=True)

    # layernorm: poisoned output too
    Nr, C = SIZES["layernorm"][which]
    x, w, bb = r(Nr, C, scale=3), r(C), r(C)
    dx, dw, dbb = to_device(x, "cuda"), to_device(w, "cuda"), to_device(bb, "cuda")
    out = full((Nr, C), np.nan, f32)
    mean, rstd = full(Nr, np.nan, f32), full(Nr, np.nan, f32)
    launch(ln_kernels(f32)[0], Nr, ROW_THREADS, dx, dw, dbb, True, f32(1e-5), f32(1.0 / C), out, mean, rstd)
    o = to_host(out)
    ok = bool(np.isfinite(o).all())
    err = rel(o, layernorm_op.layernorm_forward_ref(x, w, bb)[0]) if ok else float("nan")
    ms = timer(lambda: layernorm_forward_cuda(dx, dw, dbb), sim, repeats)
    tms = None
    if torch is not None:
        tx, tw, tb_ = (torch.from_numpy(v).cuda() for v in (x, w, bb))
        tms = torch_timer(lambda: torch.nn.functional.layer_norm(tx, (C,), tw, tb_), repeats)
    add("layernorm", (Nr, C), err, ms, None, tms, poisoned=True)

    def simple(name, size, ours, ref, torch_fn=None, into=None):
        """``into(out)``: the kernel launched into a poisoned buffer (NaN, or -7 for integers), so
        an element it forgets to write shows up; ``ours()`` is what is timed. A kernel that raises
        is recorded (rel_err NaN, the error) and the checks go on: one device call should bring
        back every other number."""
        try:
            _simple(name, size, ours, ref, torch_fn, into)
        except Exception as e:            # noqa: BLE001 - reported in the row and in "failed"
            rows.append({"kernel": name, "size": list(size), "rel_err": float("nan"), "ms": None,
                         "poisoned_output": into is not None, "error": f"{type(e).__name__}: {e}"[:500]})
            print(f"  {name:14s} {str(size):28s} ERROR {type(e).__name__}: {str(e)[:200]}", flush=True)

    def _simple(name, size, ours, ref, torch_fn, into):
        if into is not None:
            ref = np.asarray(ref)
            integer = ref.dtype.kind in "iu"
            buf = full(ref.shape, -7 if integer else np.nan, np.int64 if integer else f32)
            into(buf)
            o = to_host(buf)
        else:
            o = to_host(ours())
        if np.asarray(ref).dtype.kind in "iu":
            err = float(np.mean(o != ref))                   # share of wrong integers
        else:
            err = rel(o, ref) if np.isfinite(o).all() else float("nan")
        ms = timer(ours, sim, repeats)
        tms = torch_timer(torch_fn, repeats) if (torch is not None and torch_fn is not None) else None
        add(name, size, err, ms, None, tms, poisoned=into is not None)

    (n,) = SIZES["gelu"][which]
    x = r(n, scale=3)
    dx = to_device(x, "cuda")
    tx = torch.from_numpy(x).cuda() if torch is not None else None
    simple("gelu", (n,), lambda: gelu_forward_cuda(dx)[0], gelu_op.gelu_forward_ref(x)[0],
           (lambda: torch.nn.functional.gelu(tx, approximate="tanh")) if torch is not None else None)

    Nr, C = SIZES["softmax"][which]
    x = r(Nr, C, scale=4)
    dx = to_device(x, "cuda")
    tx = torch.from_numpy(x).cuda() if torch is not None else None
    simple("softmax", (Nr, C), lambda: softmax_forward_cuda(dx)[0], softmax_op.softmax_forward_ref(x)[0],
           (lambda: torch.softmax(tx, -1)) if torch is not None else None)

    B, T, NH, HS = SIZES["attention"][which]
    qkv = r(B, T, 3 * NH * HS)
    dq = to_device(qkv, "cuda")
    tfn = None
    if torch is not None:
        tq = torch.from_numpy(qkv).cuda().view(B, T, 3, NH, HS).permute(2, 0, 3, 1, 4)
        tfn = lambda: torch.nn.functional.scaled_dot_product_attention(tq[0], tq[1], tq[2], is_causal=True)  # noqa: E731
    aref = attention.causal_self_attention_forward_ref(qkv, NH)[0]
    simple("attention", (B, T, NH, HS), lambda: causal_self_attention_forward_cuda(dq, NH, "tiled")[0], aref, tfn)
    simple("attention_simple", (B, T, NH, HS), lambda: causal_self_attention_forward_cuda(dq, NH, "simple")[0], aref)

    Nr, V = SIZES["cross_entropy"][which]
    z = r(Nr, V, scale=2)
    t = rng.integers(0, V, Nr)
    t[::7] = -100
    dz, dt_ = to_device(z, "cuda"), to_device(t, "cuda")
    tfn = None
    if torch is not None:
        tz, tt = torch.from_numpy(z).cuda(), torch.from_numpy(t).cuda()
        tfn = lambda: torch.nn.functional.cross_entropy(tz, tt, ignore_index=-100)  # noqa: E731
    simple("cross_entropy", (Nr, V), lambda: cross_entropy_forward_cuda(dz, dt_, -100, "mean", False)[0],
           cross_entropy_op.cross_entropy_forward_ref(z, t, -100)[0], tfn)

    B, T, V, C = SIZES["embedding"][which]
    idx = rng.integers(0, V, (B, T))
    wte, wpe = r(V, C), r(T, C)
    di, dwte, dwpe = to_device(idx, "cuda"), to_device(wte, "cuda"), to_device(wpe, "cuda")
    simple("embedding", (B, T, V, C), lambda: token_position_embedding_forward_cuda(di, dwte, dwpe)[0],
           embedding_op.token_position_embedding_forward_ref(idx, wte, wpe)[0])

    (n,) = SIZES["adamw"][which]
    p, g, m = r(n), r(n), r(n, scale=0.1)
    v = np.abs(r(n, scale=0.1))
    dp, dg, dm, dv = (to_device(a_, "cuda") for a_ in (p, g, m, v))
    adamw_update_cuda(dp, dg, dm, dv, 3, 1e-3, 0.9, 0.999, 1e-8, 0.1)
    rp = adamw.adamw_update_ref(p, g, m, v, 3, 1e-3, 0.9, 0.999, 1e-8, 0.1)[0]
    err = rel(to_host(dp), rp)
    ms = timer(lambda: adamw_update_cuda(dp, dg, dm, dv, 3, 1e-3, 0.9, 0.999, 1e-8, 0.1), sim, repeats)
    add("adamw", (n,), err, ms)
    more_kernel_checks(sim, torch, rng, simple)
    return rows


def more_kernel_checks(sim, torch, rng, simple):
    """The kernels added with the GPU engine and the remaining training ops (rows through ``simple``)."""
    import numpy as np

    from scratchgpt.backend import to_device
    from scratchgpt.ops import attention, cross_attention_op, decode_attention, decode_layernorm, decode_matmul
    from scratchgpt.ops import elementwise, quantized_matmul as qm, smear_op
    from scratchgpt.ops.attention_cuda import (causal_self_attention_backward_cuda,
                                               causal_self_attention_forward_cuda)
    from scratchgpt.ops.cross_attention_cuda import cross_attention_forward_cuda
    from scratchgpt.ops.argmax_rows import argmax_rows_ref
    from scratchgpt.ops.argmax_rows_cuda import argmax_rows_cuda
    from scratchgpt.ops.decode_attention_cuda import cached_attention_cuda
    from scratchgpt.ops.decode_layernorm_cuda import add_layernorm_rows_cuda
    from scratchgpt.ops.decode_matmul_cuda import dense_rows_cuda
    from scratchgpt.ops.elementwise_cuda import ADD, binary_cuda
    from scratchgpt.ops.quantized_matmul_cuda import int4_linear_cuda, int8_linear_cuda
    from scratchgpt.ops.smear_cuda import smear_forward_cuda
    from scratchgpt.ops.views_cuda import transpose_nd_cuda
    which = 1 if sim else 0
    f32 = np.float32
    dev = lambda a: to_device(np.ascontiguousarray(a), "cuda")      # noqa: E731
    tt = (lambda a: torch.from_numpy(np.ascontiguousarray(a)).cuda()) if torch is not None else None

    def r(*shape, scale=1.0):
        return (rng.standard_normal(shape) * scale).astype(f32)

    # attention backward: tiled (default) and simple, against the float64 reference
    B, T, NH, HS = SIZES["attention_bwd"][which]
    qkv, g = r(B, T, 3 * NH * HS), r(B, T, NH * HS)
    _, cache = causal_self_attention_forward_cuda(dev(qkv), NH, "tiled")
    dg = dev(g)
    ref = attention.causal_self_attention_backward_ref(g, attention.causal_self_attention_forward_ref(qkv, NH)[1])
    simple("attention_bwd", (B, T, NH, HS), lambda: causal_self_attention_backward_cuda(dg, cache, "tiled"), ref)
    simple("attention_bwd_simple", (B, T, NH, HS),
           lambda: causal_self_attention_backward_cuda(dg, cache, "simple"), ref)

    B, Tq, Tk, NH, HS = SIZES["cross_attention"][which]
    C = NH * HS
    q, kv = r(B, Tq, C), r(B, Tk, 2 * C)
    mask = np.ones((B, Tk), dtype=bool)
    mask[0, Tk // 2:] = False
    dq_, dkv, dmask = dev(q), dev(kv), dev(mask)
    simple("cross_attention", (B, Tq, Tk, NH, HS), lambda: cross_attention_forward_cuda(dq_, dkv, NH, dmask)[0],
           cross_attention_op.cross_attention_forward_ref(q, kv, NH, kv_mask=mask)[0])

    B, T, C = SIZES["broadcast_add"][which]
    x, bias = r(B, T, C), r(C)
    dx, dbias = dev(x), dev(bias)
    simple("broadcast_add", (B, T, C), lambda: binary_cuda(dx, dbias, ADD), elementwise.add_forward_ref(x, bias)[0],
           (lambda tx=tt(x), tb=tt(bias): tx + tb) if torch is not None else None)

    shape = SIZES["transpose4d"][which]
    x = r(*shape)
    dx = dev(x)
    simple("transpose4d", shape, lambda: transpose_nd_cuda(dx, (0, 2, 1, 3)), x.transpose(0, 2, 1, 3),
           (lambda tx=tt(x): tx.permute(0, 2, 1, 3).contiguous()) if torch is not None else None)

    B, T, C = SIZES["smear"][which]
    x, w, b = r(B, T, C), r(C, scale=0.1), r(1)
    dx, dw, db = dev(x), dev(w), dev(b)
    simple("smear", (B, T, C), lambda: smear_forward_cuda(dx, dw, db)[0], smear_op.smear_forward_ref(x, w, b)[0])

    # decode: matrix-vector products from float32 / int8 / int4 weights, LayerNorm rows, KV-cache attention
    M, K, N = SIZES["dense_rows"][which]
    x, wt, bias = r(M, K), r(N, K), r(N)
    dx, dwt, dbias = dev(x), dev(wt), dev(bias)
    simple("dense_rows", (M, K, N), lambda: dense_rows_cuda(dx, dwt, dbias),
           decode_matmul.small_matmul_ref(x, wt, bias),
           (lambda tx=tt(x), tw=tt(wt), tb=tt(bias): torch.addmm(tb, tx, tw.T)) if torch is not None else None,
           into=lambda o: dense_rows_cuda(dx, dwt, dbias, out=o))
    q8, s8 = qm.quantize_int8(wt.T.copy(), 32)
    dq8, ds8 = dev(q8), dev(s8)
    simple("int8_rows", (M, K, N), lambda: int8_linear_cuda(dx, dq8, ds8, dbias), qm.int8_linear_ref(x, q8, s8, bias),
           into=lambda o: int8_linear_cuda(dx, dq8, ds8, dbias, out=o))
    p4, s4 = qm.quantize_int4(wt.T.copy(), 32)
    dp4, ds4 = dev(p4), dev(s4)
    simple("int4_rows", (M, K, N), lambda: int4_linear_cuda(dx, dp4, ds4, dbias), qm.int4_linear_ref(x, p4, s4, bias),
           into=lambda o: int4_linear_cuda(dx, dp4, ds4, dbias, out=o))

    R, C = SIZES["layernorm_rows"][which]
    x, d, w, b = r(R, C), r(R, C), r(C), r(C)
    dx, dd, dw, db = dev(x), dev(d), dev(w), dev(b)
    simple("layernorm_rows", (R, C), lambda: add_layernorm_rows_cuda(dev(x), dd, dw, db),
           decode_layernorm.add_layernorm_rows_ref(x, d, w, b)[1],
           into=lambda o: add_layernorm_rows_cuda(dev(x), dd, dw, db, out=o))

    S, NH, Tmax, HS = SIZES["decode_attention"][which]
    C = NH * HS
    Kc, Vc = r(S, NH, Tmax, HS), r(S, NH, Tmax, HS)
    slots, positions = np.arange(S), np.full(S, Tmax - 1)
    qkv = r(S, 3 * C)
    dK, dV, dqkv, dsl, dpos = dev(Kc), dev(Vc), dev(qkv), dev(slots), dev(positions)
    ref = decode_attention.cached_attention_ref(qkv, Kc, Vc, slots, positions, NH)[0]
    simple("decode_attention", (S, NH, Tmax, HS), lambda: cached_attention_cuda(dqkv, dK, dV, dsl, dpos, NH, split=False),
           ref, into=lambda o: cached_attention_cuda(dqkv, dK, dV, dsl, dpos, NH, split=False, out=o))
    # the cache cut into 32-position chunks and combined (flash-decoding style): what a long decode uses
    S, NH, Tmax, HS = SIZES["decode_attention_split"][which]
    C = NH * HS
    Kc, Vc = r(S, NH, Tmax, HS), r(S, NH, Tmax, HS)
    slots, positions = np.arange(S), np.full(S, Tmax - 1)
    qkv = r(S, 3 * C)
    dK, dV, dqkv, dsl, dpos = dev(Kc), dev(Vc), dev(qkv), dev(slots), dev(positions)
    ref = decode_attention.cached_attention_ref(qkv, Kc, Vc, slots, positions, NH)[0]
    simple("decode_attention_split", (S, NH, Tmax, HS),
           lambda: cached_attention_cuda(dqkv, dK, dV, dsl, dpos, NH, split=True, max_len=Tmax),
           ref, into=lambda o: cached_attention_cuda(dqkv, dK, dV, dsl, dpos, NH, split=True, max_len=Tmax, out=o))

    # greedy picks on the device: B int64 cross to the host instead of B x V logits
    B, V = SIZES["argmax_rows"][which]
    x = r(B, V, scale=3)
    dxl = dev(x)
    tl = torch.from_numpy(x).cuda() if (torch is not None and not sim) else None
    simple("argmax_rows", (B, V), lambda: argmax_rows_cuda(dxl), argmax_rows_ref(x),
           (lambda: torch.argmax(tl, dim=1)) if tl is not None else None, into=lambda o: argmax_rows_cuda(dxl, out=o))


def torch_decode(model, prompt, n, device):
    """Greedy batch-1 decoding of ``model``'s weights in PyTorch eager with a KV cache (the loop
    the issue's target compares against): prefill the prompt, then one token per forward.
    Returns (tokens, seconds per decoded token)."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    from scratchgpt.backend import to_host
    cfg = model.config
    P = {name: torch.from_numpy(np.ascontiguousarray(to_host(p.data))).to(device)
         for name, p in model.named_parameters()}
    C, NH, L = cfg.n_embd, cfg.n_head, cfg.n_layer
    HS = C // NH
    Tmax = len(prompt) + n
    K = torch.zeros(L, 1, NH, Tmax, HS, device=device)
    V = torch.zeros(L, 1, NH, Tmax, HS, device=device)

    def lin(x, name):
        y = x @ P[name + ".weight"]
        return y + P[name + ".bias"] if name + ".bias" in P else y

    def ln(x, name):
        return F.layer_norm(x, (C,), P[name + ".weight"], P.get(name + ".bias"), cfg.layer_norm_eps)

    def forward(ids, pos0):                                   # ids (1, t) -> logits of the last position
        t = ids.shape[1]
        x = P["transformer.wte.weight"][ids] + P["transformer.wpe.weight"][pos0:pos0 + t]
        for li in range(L):
            p = f"transformer.h.{li}"
            q, k, v = lin(ln(x, p + ".ln_1"), p + ".attn.c_attn").split(C, dim=2)
            q, k, v = (z.view(1, t, NH, HS).transpose(1, 2) for z in (q, k, v))
            K[li, :, :, pos0:pos0 + t] = k
            V[li, :, :, pos0:pos0 + t] = v
            y = F.scaled_dot_product_attention(q, K[li, :, :, :pos0 + t], V[li, :, :, :pos0 + t], is_causal=t > 1)
            x = x + lin(y.transpose(1, 2).reshape(1, t, C), p + ".attn.c_proj")
            h = F.gelu(lin(ln(x, p + ".ln_2"), p + ".mlp.c_fc"), approximate="tanh")
            x = x + lin(h, p + ".mlp.c_proj")
        return ln(x[:, -1], "transformer.ln_f") @ P["transformer.wte.weight"].T

    def sync():
        if device == "cuda":
            torch.cuda.synchronize()

    with torch.no_grad():
        ids = torch.tensor([prompt], device=device)
        tok = int(forward(ids, 0).argmax())
        out = [tok]
        sync()
        t0 = time.perf_counter()
        for i in range(n - 1):
            tok = int(forward(torch.tensor([[tok]], device=device), len(prompt) + i).argmax())   # .item(): synchronizes
            out.append(tok)
        sync()
    return out, (time.perf_counter() - t0) / max(n - 1, 1)


def decode_check(sim, cpu_too, use_torch):
    """Batch-1 greedy decoding: our engine on the GPU (weights, activations, KV cache on the
    device) vs PyTorch eager with a KV cache on the same GPU (on the CPU under --sim: then it
    only checks that both produce the same tokens) and vs our CPU engine. Random weights scaled
    up so greedy decoding does not repeat one token."""
    import numpy as np

    from scratchgpt.infer import Engine, SamplingParams
    from scratchgpt.models import GPT, GPTConfig
    shape = dict(DECODE_SHAPES["sim" if sim else "real"])
    P, n = shape.pop("prompt"), shape.pop("new_tokens")
    model = GPT(GPTConfig(dropout=0.0, **shape), seed=0)
    for name, p in model.named_parameters():
        if p.data.ndim == 2:
            p.data *= np.float32(4.0 if sim else 2.0)
    prompt = [int(t) for t in np.random.default_rng(1).integers(0, shape["vocab_size"], P)]
    params = SamplingParams(max_new_tokens=n, ignore_eos=True)
    result = {"shape": {**shape, "prompt": P, "new_tokens": n}}
    for device in (("cuda", "cpu") if cpu_too else ("cuda",)):
        engine = Engine(model, None, max_batch_size=1, device=device)
        engine.generate(prompt, SamplingParams(max_new_tokens=2, ignore_eos=True))     # compile / warm up
        engine.stats.__init__()
        toks = engine.generate(prompt, params).token_ids
        st = engine.stats
        result[device] = {"ms_per_token": round(st.decode_seconds / max(st.decode_tokens, 1) * 1e3, 3),
                          "prefill_ms": round(st.prefill_seconds * 1e3, 3), "tokens": toks}
        print(f"  decode on {device} (our engine): {result[device]['ms_per_token']:.3f} ms/token, "
              f"prefill {result[device]['prefill_ms']:.1f} ms", flush=True)
    try:
        import torch
        tdev = "cuda" if (use_torch and not sim) else "cpu"
        toks, sec = torch_decode(model, prompt, n, tdev)
        result["torch_eager"] = {"device": tdev, "ms_per_token": round(sec * 1e3, 3), "tokens": toks,
                                 "version": torch.__version__}
        result["tokens_equal_torch"] = toks == result["cuda"]["tokens"]
        print(f"  decode in torch eager on {tdev} (KV cache): {sec * 1e3:.3f} ms/token; same tokens: "
              f"{result['tokens_equal_torch']}", flush=True)
        if tdev == "cuda":
            result["ours_over_torch_time"] = round(result["cuda"]["ms_per_token"] / (sec * 1e3), 2)
    except ImportError:
        result["torch_eager"] = None
    if cpu_too:
        result["tokens_equal_cpu"] = result["cpu"]["tokens"] == result["cuda"]["tokens"]
        result["cuda_speedup_over_cpu"] = round(result["cpu"]["ms_per_token"] / result["cuda"]["ms_per_token"], 2)
    return result


def train_step(sim, steps, cpu_too):
    import numpy as np

    from scratchgpt.backend import cuda_module
    from scratchgpt.models import GPT, GPTConfig
    from scratchgpt.optim import AdamW
    shape = dict(GPT_SHAPES["sim" if sim else "real"])
    B, T = shape.pop("batch_size"), shape.pop("seq_len")
    cfg = GPTConfig(dropout=0.0, **shape)
    rng = np.random.default_rng(0)
    idx = rng.integers(0, cfg.vocab_size, (B, T))
    tgt = rng.integers(0, cfg.vocab_size, (B, T))
    result = {"shape": {**shape, "batch_size": B, "seq_len": T}}
    for device in (("cuda", "cpu") if cpu_too else ("cuda",)):
        model = GPT(cfg, seed=0, device=device)
        opt = AdamW(model.parameters(), lr=1e-4)
        times, losses = [], []
        for _ in range(steps + 1):
            t0 = time.perf_counter()
            opt.zero_grad()
            _, loss = model(idx, tgt)
            loss.backward()
            opt.step()
            losses.append(loss.item())         # copies the loss back: the step is finished
            if device == "cuda":
                cuda_module().synchronize()
            times.append(time.perf_counter() - t0)
        result[device] = {"step_s": statistics.median(times[1:]) if steps else times[0], "losses": losses}
        print(f"  GPT step on {device}: {result[device]['step_s'] * 1e3:.1f} ms (losses {losses})", flush=True)
    if cpu_too:
        result["cuda_speedup_over_cpu"] = round(result["cpu"]["step_s"] / result["cuda"]["step_s"], 2)
        result["max_loss_diff"] = max(abs(a - b) for a, b in zip(result["cpu"]["losses"], result["cuda"]["losses"]))
    return result


def _pool_modes(sim):
    """(name, set-up) of the allocators compared: the caching pool, then the same pool with
    caching off (every array a cuMemAlloc, every free a cuMemFree, which waits for the device).
    Under the simulator, or with SCRATCHGPT_CUDA_POOL=0, there is no pool: one mode, "none"."""
    from scratchgpt import cuda_memory
    pool = cuda_memory.current_pool()
    if pool is None:
        return pool, [("none", lambda: None)]

    def caching(on):
        def setup():
            pool.caching = on
            if not on:
                pool.empty_cache()       # no block of the pooled rounds is reused
        return setup
    return pool, [("pool", caching(True)), ("no_cache", caching(False))]


def pool_check(sim, steps, rounds=2):
    """A GPT training step and a batch-1 decode step with the caching allocator
    (scratchgpt/cuda_pool.py, installed as numba-cuda's memory manager) and without it, the modes
    alternated ``rounds`` times (the GUIDE's rule for noisy machines); per mode the median step
    time, and from the pool's counters the device allocations per step (hits + misses) and how
    many reached the driver (misses). Run the script with --no-pool to time numba-cuda's own
    memory manager on the same shapes."""
    import numpy as np

    from scratchgpt import cuda_memory
    from scratchgpt.backend import cuda_module
    from scratchgpt.infer import Engine, GenerationRequest, SamplingParams
    from scratchgpt.models import GPT, GPTConfig
    from scratchgpt.optim import AdamW
    cuda = cuda_module()
    pool, modes = _pool_modes(sim)
    result = {"status": cuda_memory.status, "modes": [m for m, _ in modes], "train_step": {}, "decode_step": {}}

    def counted(fn):
        """(seconds, allocations, driver allocations) of fn(). Without a pool, on the simulator, the
        allocations are counted by cuda_simulator.record_allocations (the same device arrays a GPU
        would memalloc; times include the recording, meaningless there anyway)."""
        if pool is None:
            if not sim:
                t0 = time.perf_counter()
                fn()
                cuda.synchronize()
                return time.perf_counter() - t0, None, None
            from scratchgpt.cuda_simulator import record_allocations
            with record_allocations() as log:
                t0 = time.perf_counter()
                fn()
                dt = time.perf_counter() - t0
            return dt, len(log), None
        before = pool.stats()
        t0 = time.perf_counter()
        fn()
        cuda.synchronize()
        dt = time.perf_counter() - t0
        after = pool.stats()
        return dt, (after.hits + after.misses) - (before.hits + before.misses), after.misses - before.misses

    shape = dict(GPT_SHAPES["sim" if sim else "real"])
    B, T = shape.pop("batch_size"), shape.pop("seq_len")
    cfg = GPTConfig(dropout=0.0, **shape)
    rng = np.random.default_rng(0)
    idx, tgt = rng.integers(0, cfg.vocab_size, (B, T)), rng.integers(0, cfg.vocab_size, (B, T))
    model = GPT(cfg, seed=0, device="cuda")
    opt = AdamW(model.parameters(), lr=1e-4)

    def train():
        opt.zero_grad()
        _, loss = model(idx, tgt)
        loss.backward()
        opt.step()
        loss.item()

    dshape = dict(DECODE_SHAPES["sim" if sim else "real"])
    P, n = dshape.pop("prompt"), dshape.pop("new_tokens")
    engine = Engine(GPT(GPTConfig(dropout=0.0, **dshape), seed=0), None, max_batch_size=1, device="cuda")
    prompt = [int(t) for t in np.random.default_rng(1).integers(0, dshape["vocab_size"], P)]

    def decode_steps():
        """n - 1 decode steps of one request (its prefill done before the clock starts)."""
        engine.add(GenerationRequest(prompt, SamplingParams(max_new_tokens=n, ignore_eos=True)))
        engine.step()
        cuda.synchronize()
        rows = []
        while engine.has_work():
            rows.append(counted(engine.step))
        return rows

    train()                                            # compile / warm up both
    decode_steps()
    for _ in range(rounds):
        for mode, setup in modes:
            setup()
            train()                                    # the first step after a switch fills the pool
            tr = result["train_step"].setdefault(mode, {"ms": [], "allocs": [], "driver_allocs": []})
            for _ in range(steps):
                dt, allocs, misses = counted(train)
                tr["ms"].append(dt * 1e3)
                tr["allocs"].append(allocs)
                tr["driver_allocs"].append(misses)
            de = result["decode_step"].setdefault(mode, {"ms": [], "allocs": [], "driver_allocs": []})
            for dt, allocs, misses in decode_steps():
                de["ms"].append(dt * 1e3)
                de["allocs"].append(allocs)
                de["driver_allocs"].append(misses)
    if pool is not None:
        pool.caching = True
    for part in ("train_step", "decode_step"):
        for mode, rec in result[part].items():
            summary = {"median_ms": round(statistics.median(rec["ms"]), 3), "samples": len(rec["ms"])}
            if rec["allocs"][0] is not None:
                summary["allocs_per_step"] = max(rec["allocs"])
            if rec["driver_allocs"][0] is not None:
                summary["driver_allocs_per_step"] = max(rec["driver_allocs"])
            result[part][mode] = summary
            print(f"  {part} with {mode}: {summary}", flush=True)
        if "pool" in result[part] and "no_cache" in result[part]:
            result[part]["no_cache_over_pool_time"] = round(
                result[part]["no_cache"]["median_ms"] / result[part]["pool"]["median_ms"], 2)
    if pool is not None:
        result["pool_stats"] = pool.stats().as_dict()
    return result


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sim", action="store_true", help="run on numba.cuda's simulator with tiny sizes")
    ap.add_argument("--repeats", type=int, default=None, help="timed launches per kernel (default 10; 1 with --sim)")
    ap.add_argument("--steps", type=int, default=None, help="timed GPT training steps (default 5; 1 with --sim)")
    ap.add_argument("--no-cpu-step", action="store_true",
                    help="skip timing our CPU path on the GPT shapes (training step and decode)")
    ap.add_argument("--json", default=None, help="write the results here")
    ap.add_argument("--no-pool", action="store_true",
                    help="numba-cuda's own memory manager instead of the caching pool (SCRATCHGPT_CUDA_POOL=0)")
    ap.add_argument("--pool-only", action="store_true",
                    help="only the allocator timings (training step and decode step, with and without the pool)")
    args = ap.parse_args(argv)
    if args.no_pool:
        os.environ["SCRATCHGPT_CUDA_POOL"] = "0"     # read when numba.cuda is first imported (below)
    from scratchgpt import backend
    if args.sim:
        backend.enable_simulator()
    kind = backend.cuda_kind()
    if kind is None:
        print("gpu_check: no CUDA GPU found by numba.cuda (use --sim to run on the simulator)", file=sys.stderr)
        return 2
    backend.check_device("cuda")
    repeats = args.repeats or (1 if args.sim else 10)
    steps = args.steps if args.steps is not None else (1 if args.sim else 5)
    info = backend.describe()
    try:
        import numba_cuda
        info["numba_cuda"] = numba_cuda.__version__
    except ImportError:
        info["numba_cuda"] = None          # numba's built-in (deprecated) numba.cuda
    use_torch = False
    if kind == "gpu":
        cuda = backend.cuda_module()
        info["gpu"] = cuda.get_current_device().name.decode() if isinstance(cuda.get_current_device().name, bytes) \
            else str(cuda.get_current_device().name)
        try:
            import torch
            use_torch = torch.cuda.is_available()
            info["torch"] = torch.__version__
        except ImportError:
            info["torch"] = None
    print("versions:", json.dumps(info), flush=True)
    def guarded(what, fn, *a):
        try:
            return fn(*a)
        except Exception as e:            # noqa: BLE001 - the rest of the report still comes back
            print(f"  {what}: ERROR {type(e).__name__}: {str(e)[:300]}", flush=True)
            return {"error": f"{type(e).__name__}: {e}"[:500]}
    kernels, step, decode = [], {}, {}
    if not args.pool_only:
        print("kernels (float32; rel err = ||out - ref|| / ||ref|| against the float64 reference):", flush=True)
        kernels = kernel_checks(args.sim, repeats, use_torch)
        print("GPT training step:", flush=True)
        step = guarded("training step", train_step, args.sim, steps, not args.no_cpu_step)
        print("batch-1 decode:", flush=True)
        decode = guarded("decode", decode_check, args.sim, not args.no_cpu_step, use_torch)
    print(f"device memory allocator ({info.get('cuda_memory_pool', 'simulator: no pool')}):", flush=True)
    pool = guarded("allocator", pool_check, args.sim, min(steps, 3) if steps else 1)
    bad = [k["kernel"] for k in kernels if not (k["rel_err"] < 1e-4)]
    bad += [what for what, res in (("training step", step), ("decode", decode), ("allocator", pool))
            if "error" in res]
    if decode.get("tokens_equal_torch") is False or decode.get("tokens_equal_cpu") is False:
        bad.append("decode tokens")
    report = {"device": kind, "versions": info, "kernels_validated": [k["kernel"] for k in kernels],
              "kernels": kernels, "train_step": step, "decode": decode, "allocator": pool, "failed": bad}
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=2, default=float)
        print(f"wrote {args.json}")
    if bad:
        print(f"FAILED (rel err >= 1e-4 or non-finite): {', '.join(bad)}", file=sys.stderr)
        return 1
    print(("allocator timings done" if args.pool_only else "all kernels within 1e-4 of the float64 reference")
          + (" (simulator: timings are meaningless)" if args.sim else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
