"""Decode speed: our KV-cache engine vs Hugging Face transformers and a plain PyTorch KV-cache loop.

    python benchmarks/generate.py [--reps 3] [--shapes small,gpt2] [--batches 1,8,32] [--out FILE]
    python benchmarks/generate.py --kernels        # our decode matmul kernel vs BLAS, per M
    python benchmarks/generate.py --profile        # where our decode step's time goes
    python benchmarks/generate.py --qkernels       # float32 / int8 / int4 row kernels, one token of GPT-2's blocks

Each measurement runs in its own process (``--worker``; NumPy/Numba and torch never share one),
with 2 threads, on random weights of two shapes:
  small  6 layers x 384, 6 heads, block 256, vocab 4096   (~49 MB of float32 weights read per token)
  gpt2   12 layers x 768, 12 heads, block 1024, vocab 50257  (GPT-2 124M, ~498 MB per token)
A run: a 32-token prompt per sequence, then 128 new tokens greedily (every sequence generates all
128: no early stop); "decode tok/s" counts the tokens of the single-token steps after the prefill,
divided by their time. Sides:
  ours       scratchgpt.infer.Engine, float32 (and int8 / int4 through scratchgpt.infer.quantize,
             when that module is importable)
  hf         transformers GPT2LMHeadModel, use_cache=True, a manual greedy loop (no generate()
             overhead: the model's own forward with past_key_values, torch.inference_mode)
  torch      a plain PyTorch GPT-2 written here: preallocated KV cache, F.linear / layer_norm /
             gelu(tanh) / scaled_dot_product_attention, inference_mode
Batch 1 is the latency case; 8 and 32 concurrent sequences give throughput (tokens/s summed
over the sequences). The sides run interleaved, --reps times, and the table shows medians, so
load from other processes on a shared machine hits every side alike; the load average is
printed with the results, and each side's CPU time per decoded token (process time: what the
work costs, less sensitive to other processes than wall time). BENCH_THREADS=1 runs every side on
one thread. GB/s = bytes of weights one decode step reads x steps per second,
next to the machine's read bandwidth measured here (a Numba sum over 512 MiB, same threads).

Where our time goes (``--profile``, 64 decode steps, batch 1): 96-97 % in the decode matmul
kernel (ops/decode_matmul.py: streaming the weights), ~1 % attention over the cache, < 2 %
Python and everything else — decode is a weight-reading problem. Measured 2026-11-29 on the
2-core machine shared with other jobs; the numbers are in the README's benchmark table.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# benchmarks/tokenizers.py would shadow the `tokenizers` package transformers imports
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)
sys.path.insert(0, str(ROOT))   # this checkout's scratchgpt (quant_available() imports it here too)
SHAPES = {
    "small": dict(n_layer=6, n_head=6, n_embd=384, block_size=256, vocab_size=4096),
    "gpt2": dict(n_layer=12, n_head=12, n_embd=768, block_size=1024, vocab_size=50257),
}
PROMPT, NEW = 32, 128
THREADS = int(os.environ.get("BENCH_THREADS", "2"))   # the issue's setting; 1 is robust on a busy machine


# ------------------------------------------------------------------------------------- workers
def _prompts(shape, batch):
    import numpy as np
    rng = np.random.default_rng(0)
    return rng.integers(0, SHAPES[shape]["vocab_size"], (batch, PROMPT))


def worker_ours(shape, batch, kind):
    from scratchgpt.infer import Engine, GenerationRequest, SamplingParams
    from scratchgpt.models import GPT, GPTConfig
    model = GPT(GPTConfig(dropout=0.0, **SHAPES[shape]), seed=0)
    if kind != "float32":
        from scratchgpt.infer.quantize import QuantConfig, quantize_gpt
        # "int8" / "int4": the default (int8 activations in decode); "int8wo" / "int4wo": weight-only
        model = quantize_gpt(model, QuantConfig(bits=int(kind[3:4]), act_quant=not kind.endswith("wo")))
    eng = Engine(model, None, max_batch_size=batch, max_prefill_rows=max(256, batch * PROMPT))
    eng.generate([1, 2, 3], SamplingParams(max_new_tokens=4, ignore_eos=True))   # warm-up: load kernels
    prompts = _prompts(shape, batch)
    eng.stats.__init__()
    p = SamplingParams(max_new_tokens=NEW, ignore_eos=True)
    for row in prompts:
        eng.add(GenerationRequest(row.tolist(), p))
    n = len(eng.step())                                            # prefill (+ first token)
    c0 = time.process_time()
    while eng.has_work():
        n += len(eng.step())
    cpu = time.process_time() - c0
    assert n == batch * NEW
    st = eng.stats
    return {"decode_tok_s": st.decode_tokens / st.decode_seconds, "prefill_ms": st.prefill_seconds * 1e3,
            "weight_bytes": eng.weights.weight_bytes, "kind": eng.weights.kind,
            "decode_ms_per_step": st.decode_seconds / (NEW - 1) * 1e3,
            "decode_cpu_ms_per_token": cpu / (batch * (NEW - 1)) * 1e3}


def _hf_model(shape):
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel
    s = SHAPES[shape]
    cfg = GPT2Config(vocab_size=s["vocab_size"], n_positions=s["block_size"], n_embd=s["n_embd"],
                     n_layer=s["n_layer"], n_head=s["n_head"], activation_function="gelu_new",
                     resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    torch.manual_seed(0)
    return GPT2LMHeadModel(cfg).eval()


def _timed_loop(first, step, batch):
    """prefill = first(); then NEW-1 decode steps; returns the worker's result dict."""
    import torch
    with torch.inference_mode():
        t0 = time.perf_counter()
        nxt = first()
        t1 = time.perf_counter()
        c1 = time.process_time()
        for _ in range(NEW - 1):
            nxt = step(nxt)
        t2 = time.perf_counter()
        cpu = time.process_time() - c1
    return {"decode_tok_s": batch * (NEW - 1) / (t2 - t1), "prefill_ms": (t1 - t0) * 1e3,
            "decode_ms_per_step": (t2 - t1) / (NEW - 1) * 1e3,
            "decode_cpu_ms_per_token": cpu / (batch * (NEW - 1)) * 1e3}


def worker_hf(shape, batch, kind):
    import torch
    torch.set_num_threads(THREADS)
    model = _hf_model(shape)
    ids = torch.as_tensor(_prompts(shape, batch))
    state = {}

    def first():
        out = model(input_ids=ids, use_cache=True)
        state["pkv"] = out.past_key_values
        return out.logits[:, -1].argmax(-1)

    def step(nxt):
        out = model(input_ids=nxt[:, None], past_key_values=state["pkv"], use_cache=True)
        state["pkv"] = out.past_key_values
        return out.logits[:, -1].argmax(-1)

    with torch.inference_mode():
        model(input_ids=ids[:, :4], use_cache=True)                       # warm-up
    res = _timed_loop(first, step, batch)
    res["weight_bytes"] = sum(p.numel() * 4 for n, p in model.named_parameters() if "wpe" not in n)
    return res


def worker_torch(shape, batch, kind):
    """A plain PyTorch GPT-2 decode loop with a preallocated KV cache (our reading of the usual one)."""
    import torch
    import torch.nn.functional as F
    torch.set_num_threads(THREADS)
    s = SHAPES[shape]
    L, NH, C, T, V = s["n_layer"], s["n_head"], s["n_embd"], s["block_size"], s["vocab_size"]
    HS = C // NH
    g = torch.Generator().manual_seed(0)

    def w(*shape_):
        return torch.randn(*shape_, generator=g) * 0.02

    wte, wpe = w(V, C), w(T, C)
    layers = [dict(ln1=(torch.ones(C), torch.zeros(C)), attn=(w(3 * C, C), torch.zeros(3 * C)),
                   proj=(w(C, C), torch.zeros(C)), ln2=(torch.ones(C), torch.zeros(C)),
                   fc=(w(4 * C, C), torch.zeros(4 * C)), mproj=(w(C, 4 * C), torch.zeros(C))) for _ in range(L)]
    lnf = (torch.ones(C), torch.zeros(C))
    kc = torch.zeros(L, batch, NH, T, HS)
    vc = torch.zeros(L, batch, NH, T, HS)

    def forward(idx, pos0):                                   # idx (B, t) -> logits of the last position
        B, t = idx.shape
        x = wte[idx] + wpe[pos0:pos0 + t]
        for li, ly in enumerate(layers):
            h = F.layer_norm(x, (C,), *ly["ln1"])
            q, k, v = F.linear(h, *ly["attn"]).split(C, dim=-1)
            q, k, v = (z.view(B, t, NH, HS).transpose(1, 2) for z in (q, k, v))
            kc[li, :, :, pos0:pos0 + t] = k
            vc[li, :, :, pos0:pos0 + t] = v
            y = F.scaled_dot_product_attention(q, kc[li, :, :, :pos0 + t], vc[li, :, :, :pos0 + t],
                                               is_causal=t > 1)
            x = x + F.linear(y.transpose(1, 2).reshape(B, t, C), *ly["proj"])
            h = F.layer_norm(x, (C,), *ly["ln2"])
            x = x + F.linear(F.gelu(F.linear(h, *ly["fc"]), approximate="tanh"), *ly["mproj"])
        return F.linear(F.layer_norm(x[:, -1], (C,), *lnf), wte)

    ids = torch.as_tensor(_prompts(shape, batch))
    state = {"pos": PROMPT}

    def first():
        return forward(ids, 0).argmax(-1)

    def step(nxt):
        out = forward(nxt[:, None], state["pos"]).argmax(-1)
        state["pos"] += 1
        return out

    with torch.inference_mode():
        forward(ids[:, :4], 0)                                 # warm-up
    res = _timed_loop(first, step, batch)
    n = wte.numel() + sum(a.numel() for ly in layers for pair in ly.values() for a in pair) + 2 * C
    res["weight_bytes"] = n * 4
    return res


def worker_bandwidth(*_):
    """Read bandwidth: a 2-thread Numba sum over 512 MiB of float32 (median of 7)."""
    import numba
    import numpy as np
    from numba import prange

    @numba.njit(parallel=True, fastmath=True, cache=False)
    def total(a):
        s = 0.0
        for i in prange(a.shape[0]):
            s += a[i]
        return s

    a = np.ones(128 * 1024 * 1024, dtype=np.float32)
    total(a)
    ts = []
    for _ in range(7):
        t0 = time.perf_counter()
        total(a)
        ts.append(time.perf_counter() - t0)
    return {"read_GB_s": a.nbytes / statistics.median(ts) / 1e9, "read_GB_s_best": a.nbytes / min(ts) / 1e9}


def worker_kernels(*_):
    """Our small-M decode matmul vs NumPy/BLAS on the linears of both shapes (median ms of 30)."""
    import numpy as np

    from scratchgpt.ops.decode_matmul import small_matmul

    def med(f, n=30):
        f()
        ts = []
        for _ in range(n):
            t0 = time.perf_counter()
            f()
            ts.append(time.perf_counter() - t0)
        return statistics.median(ts) * 1e3

    rng = np.random.default_rng(0)
    rows = []
    for K, N in [(384, 1152), (1536, 384), (384, 4096), (768, 2304), (3072, 768), (768, 50257)]:
        wt = rng.standard_normal((N, K)).astype(np.float32)
        b = np.zeros(N, np.float32)
        for M in (1, 4, 8, 32):
            x = rng.standard_normal((M, K)).astype(np.float32)
            o = np.empty((M, N), np.float32)
            rows.append({"K": K, "N": N, "M": M, "kernel_ms": med(lambda: small_matmul(x, wt, b, o)),
                         "blas_ms": med(lambda: np.matmul(x, wt.T, out=o))})
    return {"rows": rows}


def worker_qkernels(*_):
    """ms per token of the 48 block matrices of GPT-2 124M through our row kernels (float32,
    int8, int4; M = 1, serial and parallel builds; min of 7 passes, the kinds interleaved so
    that load from other processes hits them alike). 3 random matrices per shape, x 4."""
    import numpy as np

    from scratchgpt.ops import quantized_matmul as qm
    from scratchgpt.ops.decode_matmul import _dot_rows_kernel
    rng = np.random.default_rng(0)
    calls = {(k, b): [] for k in ("float32", "int8", "int4") for b in ("serial", "parallel")}
    for K, N in [(768, 2304), (768, 768), (768, 3072), (3072, 768)]:
        for _ in range(3):
            w = (rng.standard_normal((K, N)) * 0.02).astype(np.float32)
            wt = np.ascontiguousarray(w.T)
            q8, s8 = qm.quantize_int8(w)
            q4, s4 = qm.quantize_int4(w)
            x = rng.standard_normal((1, K)).astype(np.float32)
            o = np.empty((1, N), np.float32)
            b = np.zeros(N, np.float32)
            for build in ("serial", "parallel"):
                f32 = getattr(_dot_rows_kernel, build)
                i8 = getattr(qm._int8_rows32, build)
                i4 = getattr(qm._int4_rows32, build)
                calls[("float32", build)].append(lambda f=f32, x=x, wt=wt, b=b, o=o: f(x, wt, b, True, o))
                calls[("int8", build)].append(lambda f=i8, x=x, q=q8, s=s8, b=b, o=o: f(x, q, s, b, o))
                calls[("int4", build)].append(lambda f=i4, x=x, q=q4, s=s4, b=b, o=o: f(x, q, s, b, o))
    best = {key: float("inf") for key in calls}
    for _ in range(8):                                   # the first pass compiles/warms
        for key, fs in calls.items():
            t0 = time.perf_counter()
            for f in fs:
                f()
            best[key] = min(best[key], (time.perf_counter() - t0) * 4e3)
    return {"ms_per_token": {f"{k} {b}": v for (k, b), v in best.items()}}


def worker_profile(shape, batch, kind):
    """Where a decode step's time goes in our engine: cProfile's own time per function over 64 steps."""
    import cProfile
    import pstats

    from scratchgpt.infer import Engine, GenerationRequest, SamplingParams
    from scratchgpt.models import GPT, GPTConfig
    model = GPT(GPTConfig(dropout=0.0, **SHAPES[shape]), seed=0)
    eng = Engine(model, None, max_batch_size=batch)
    eng.generate([1, 2, 3], SamplingParams(max_new_tokens=4, ignore_eos=True))
    p = SamplingParams(max_new_tokens=65, ignore_eos=True)
    for row in _prompts(shape, batch):
        eng.add(GenerationRequest(row.tolist(), p))
    eng.step()                                                  # prefill, not profiled
    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.enable()
    while eng.has_work():
        eng.step()
    prof.disable()
    wall = time.perf_counter() - t0
    st = pstats.Stats(prof).stats
    rows = sorted(((v[2], f"{k[0].split('/')[-1]}:{k[2]}") for k, v in st.items()), reverse=True)[:10]
    return {"wall_s": wall, "steps": 64, "top_own_time": [(name, round(t / wall * 100, 1)) for t, name in rows]}


WORKERS = {"profile": worker_profile, "ours": worker_ours, "hf": worker_hf, "torch": worker_torch, "bandwidth": worker_bandwidth,
           "kernels": worker_kernels, "qkernels": worker_qkernels}


def run_worker(side, shape="small", batch=1, kind="float32") -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if "@" in kind:                  # "float32@serial": our engine with SCRATCHGPT_DECODE_BUILD=serial
        kind, env["SCRATCHGPT_DECODE_BUILD"] = kind.split("@")
    for v in ("NUMBA_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env[v] = str(THREADS)
    cmd = [sys.executable, __file__, "--worker", side, "--shape", shape, "--batch", str(batch), "--kind", kind]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        return {"error": (r.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(r.stdout.strip().splitlines()[-1])


def quant_available() -> bool:
    try:
        from scratchgpt.infer.quantize import Int4Linear, Int8Linear, quantize_gpt  # noqa: F401
        return True
    except ImportError:
        return False


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--shapes", default="small,gpt2")
    ap.add_argument("--batches", default="1,8,32")
    ap.add_argument("--sides", default="ours,hf,torch")
    ap.add_argument("--kinds", default="float32,int8,int4", help="our weight formats to run (int8wo/int4wo: "
                    "weight-only, float activations; int8/int4 need "
                    "scratchgpt.infer.quantize)")
    ap.add_argument("--out", default=None, help="write the JSON results here")
    ap.add_argument("--decode-builds", default="", help="comma-separated SCRATCHGPT_DECODE_BUILD values "
                    "(auto, parallel, serial) to run our engine with, each as its own row; default: the default (auto)")
    ap.add_argument("--busy", type=int, default=0, help="a controlled load: this many `nice -n 19` busy-loop "
                    "processes run during the measurements")
    ap.add_argument("--kernels", action="store_true", help="only the decode-matmul kernel vs BLAS table")
    ap.add_argument("--qkernels", action="store_true",
                    help="only: our float32 / int8 / int4 row kernels on GPT-2 124M's block matrices, M = 1")
    ap.add_argument("--profile", action="store_true",
                    help="only: where a decode step's time goes in our engine (per shape, batch 1)")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--shape", default="small", help=argparse.SUPPRESS)
    ap.add_argument("--batch", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--kind", default="float32", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(WORKERS[args.worker](args.shape, args.batch, args.kind)))
        return 0
    if args.kernels:
        res = run_worker("kernels")
        print(f"{'K':>5} {'N':>6} {'M':>3} {'kernel ms':>10} {'BLAS ms':>9}")
        for r in res["rows"]:
            print(f"{r['K']:5d} {r['N']:6d} {r['M']:3d} {r['kernel_ms']:10.3f} {r['blas_ms']:9.3f}")
        return 0
    if args.qkernels:
        res = run_worker("qkernels")
        print(f"ms per token, GPT-2 124M's 48 block matrices, M = 1, min of 7 ({THREADS} threads for parallel); "
              f"1-min load average {os.getloadavg()[0]:.1f}")
        for name, ms in res["ms_per_token"].items():
            print(f"  {name:18s} {ms:7.2f}")
        return 0
    if args.profile:
        for shape in args.shapes.split(","):
            r = run_worker("profile", shape, 1)
            print(f"{shape}: {r['steps']} decode steps in {r['wall_s']:.3f} s; own time by function (% of wall):")
            for name, pct in r["top_own_time"]:
                print(f"  {pct:5.1f}%  {name}")
        return 0
    shapes = args.shapes.split(",")
    batches = [int(b) for b in args.batches.split(",")]
    configs = []                                 # (side, kind)
    for side in args.sides.split(","):
        if side == "ours":
            kinds = args.kinds.split(",")
            kinds = [k for k in kinds if k == "float32" or quant_available()]
            builds = [b for b in args.decode_builds.split(",") if b]
            configs += [("ours", k + "@" + b) for k in kinds for b in builds] if builds else \
                [("ours", k) for k in kinds]
        else:
            configs.append((side, "float32"))
    if not quant_available():
        print("int8/int4 columns left out: scratchgpt.infer.quantize (Int8Linear/Int4Linear) is not importable")
    results: dict = {}
    busy = [subprocess.Popen(["nice", "-n", "19", sys.executable, "-c", "while True: pass"])
            for _ in range(args.busy)]
    try:
        return _measure(args, shapes, batches, configs, results)
    finally:
        for p in busy:
            p.kill()
            p.wait()


def _measure(args, shapes, batches, configs, results) -> int:
    loads = [os.getloadavg()[0]]
    bw = [run_worker("bandwidth") for _ in range(max(1, min(args.reps, 3)))]
    for rep in range(args.reps):
        for shape in shapes:
            for batch in batches:
                for side, kind in configs:
                    r = run_worker(side, shape, batch, kind)
                    results.setdefault(f"{shape}/{batch}/{side}/{kind}", []).append(r)
                    loads.append(os.getloadavg()[0])
                    print(f"rep {rep} {shape:5s} batch {batch:2d} {side:5s} {kind:7s} "
                          + (r.get("error") or f"{r['decode_tok_s']:8.1f} tok/s"), file=sys.stderr, flush=True)
    read_bw = statistics.median(b["read_GB_s"] for b in bw if "read_GB_s" in b)
    summary = {}
    for key, rs in results.items():
        ok = [r for r in rs if "error" not in r]
        if not ok:
            summary[key] = {"error": rs[0]["error"]}
            continue
        tps = statistics.median(r["decode_tok_s"] for r in ok)
        shape, batch = key.split("/")[:2]
        gbs = ok[0]["weight_bytes"] * tps / int(batch) / 1e9     # weights read once per step
        summary[key] = {"decode_tok_s": tps, "all": [r["decode_tok_s"] for r in ok],
                        "decode_cpu_ms_per_token": statistics.median(r.get("decode_cpu_ms_per_token", float("nan"))
                                                                      for r in ok),
                        "prefill_ms": statistics.median(r["prefill_ms"] for r in ok),
                        "weight_MB": ok[0]["weight_bytes"] / 1e6, "weights_GB_s": gbs}
    out = {"prompt": PROMPT, "new_tokens": NEW, "threads": THREADS, "reps": args.reps, "busy": args.busy,
           "read_bandwidth_GB_s": read_bw, "load_avg_1min": {"min": min(loads), "max": max(loads)},
           "results": summary}
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))
    print(f"\nmedian decode tokens/s over {args.reps} interleaved runs, {THREADS} threads, {args.busy} niced busy "
          f"loop(s); machine read bandwidth "
          f"{read_bw:.1f} GB/s; 1-min load average {min(loads):.1f}-{max(loads):.1f} during the runs")
    print(f"{'shape':6} {'batch':>5} {'side':22} {'tok/s':>9} {'vs hf':>6} {'weights GB/s':>12} {'prefill ms':>10} "
          f"{'CPU ms/token':>12}")
    for shape in shapes:
        for batch in batches:
            hf = summary.get(f"{shape}/{batch}/hf/float32", {}).get("decode_tok_s")
            for side, kind in configs:
                s = summary.get(f"{shape}/{batch}/{side}/{kind}")
                if s is None or "error" in s:
                    print(f"{shape:6} {batch:5d} {side + ' ' + kind:22} {'error: ' + str(s and s['error'])}")
                    continue
                ratio = f"{s['decode_tok_s'] / hf:5.2f}x" if hf else "   -"
                print(f"{shape:6} {batch:5d} {side + ' ' + kind:22} {s['decode_tok_s']:9.1f} {ratio:>6} "
                      f"{s['weights_GB_s']:12.1f} {s['prefill_ms']:10.1f} {s['decode_cpu_ms_per_token']:12.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
