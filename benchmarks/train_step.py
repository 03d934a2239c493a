"""Training throughput: scratchgpt's GPT vs the same model in PyTorch (eager), on the CPU.

One training step = zero_grad, forward with targets (mean cross-entropy), backward, AdamW step
(weight decay 0.1 on matrices, none on biases/LayerNorm/embeddings, in both). float32, the same
batch shape, the same number of threads. Reported: tokens/s = B*T / median step time over the
steps after warm-up, and the ratio ours / PyTorch.

Each (implementation, config) runs in its own subprocess: alternating NumPy and torch work in one
process slows torch down, and each process gets its thread count from the environment before
NumPy/Numba/torch start their thread pools.

    python benchmarks/train_step.py                   # both configs, both implementations
    python benchmarks/train_step.py --configs S --steps 30 --json out.json
    python benchmarks/train_step.py --worker ours --config M   # one measurement, JSON on stdout

The PyTorch twin below is written for this benchmark: GPT-2 architecture (learned positions,
pre-LN, tanh GELU, tied embeddings), attention through F.scaled_dot_product_attention (causal),
i.e. the way one would write it in PyTorch today. torch is never imported by scratchgpt itself.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

# wall time by default; --clock cpu switches to process CPU time, which on a shared machine
# measures the work of a 1-thread run without the time spent waiting for a core
CLOCK = time.process_time if os.environ.get("BENCH_CLOCK") == "cpu" else time.perf_counter

CONFIGS = {
    "S": dict(n_layer=4, n_head=4, n_embd=128, block_size=64, batch_size=12, vocab_size=65),
    "M": dict(n_layer=6, n_head=6, n_embd=384, block_size=256, batch_size=8, vocab_size=4096),
}
# default timed steps / warm-up steps per config (M steps take ~1 s)
DEFAULT_STEPS = {"S": 30, "M": 8}
DEFAULT_WARMUP = {"S": 5, "M": 2}
LR, WEIGHT_DECAY = 3e-4, 0.1


def flops_per_token(c: dict) -> float:
    """Training FLOPs per token: 6 * (matmul params incl. the tied output layer) + attention.

    Matrices per layer: c_attn 3C^2 + c_proj C^2 + c_fc 4C^2 + mlp c_proj 4C^2 = 12 C^2, plus the
    (C, V) output layer; x2 for multiply-add and x3 for forward + two backward matmuls. Attention
    scores and weighted sum: 2 matmuls of T*C per token and layer -> 12 * L * T * C (counted as
    if not causal, the usual convention).
    """
    L, C, T, V = c["n_layer"], c["n_embd"], c["block_size"], c["vocab_size"]
    return 6.0 * (12 * L * C * C + C * V) + 12.0 * L * T * C


def make_batch(c: dict, seed: int = 0):
    import numpy as np
    rng = np.random.default_rng(seed)
    shape = (c["batch_size"], c["block_size"])
    idx = rng.integers(0, c["vocab_size"], size=shape, dtype=np.int64)
    targets = rng.integers(0, c["vocab_size"], size=shape, dtype=np.int64)
    return idx, targets


# ---------------------------------------------------------------------------------- ours
def run_ours(c: dict, steps: int, warmup: int) -> dict:
    import numpy as np

    from scratchgpt.runtime import tune_runtime
    from scratchgpt.models import GPT, GPTConfig
    from scratchgpt.optim import AdamW, decay_groups

    # idle OpenMP threads sleep, freed activation buffers are reused (scratchgpt/runtime.py);
    # called before any Numba parallel kernel runs. --tuning none|malloc|threads measures without.
    runtime = tune_runtime()
    cfg = GPTConfig(vocab_size=c["vocab_size"], block_size=c["block_size"], n_layer=c["n_layer"],
                    n_head=c["n_head"], n_embd=c["n_embd"], dropout=0.0, bias=True)
    model = GPT(cfg, seed=0)
    model.train()
    opt = AdamW(decay_groups(model, WEIGHT_DECAY), lr=LR, betas=(0.9, 0.95), eps=1e-8)
    idx, targets = make_batch(c)

    times, losses = [], []
    for i in range(warmup + steps):
        t0 = CLOCK()
        opt.zero_grad()
        _, loss = model(idx, targets)
        loss.backward()
        opt.step()
        dt = CLOCK() - t0
        losses.append(float(loss.data))
        if i >= warmup:
            times.append(dt)
    n_params = sum(p.data.size for p in model.parameters())
    return _summary("ours", c, times, losses, n_params, dtype=str(model.transformer.wte.weight.data.dtype),
                    runtime_tuning=runtime)


# ------------------------------------------------------------------------------- PyTorch
def run_torch(c: dict, steps: int, warmup: int, threads: int) -> dict:
    import math

    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    torch.set_num_threads(threads)

    class Attn(nn.Module):
        def __init__(self, C, NH):
            super().__init__()
            self.NH = NH
            self.c_attn = nn.Linear(C, 3 * C)
            self.c_proj = nn.Linear(C, C)

        def forward(self, x):                                       # (B, T, C)
            B, T, C = x.shape
            q, k, v = self.c_attn(x).split(C, dim=2)
            q, k, v = (t.view(B, T, self.NH, C // self.NH).transpose(1, 2) for t in (q, k, v))  # (B, NH, T, HS)
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            return self.c_proj(y.transpose(1, 2).reshape(B, T, C))

    class TorchBlock(nn.Module):
        def __init__(self, C, NH):
            super().__init__()
            self.ln_1, self.ln_2 = nn.LayerNorm(C), nn.LayerNorm(C)
            self.attn = Attn(C, NH)
            self.c_fc, self.c_proj = nn.Linear(C, 4 * C), nn.Linear(4 * C, C)

        def forward(self, x):
            x = x + self.attn(self.ln_1(x))
            return x + self.c_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))

    class TorchGPT(nn.Module):
        def __init__(self, V, T, L, NH, C):
            super().__init__()
            self.wte, self.wpe = nn.Embedding(V, C), nn.Embedding(T, C)
            self.h = nn.ModuleList(TorchBlock(C, NH) for _ in range(L))
            self.ln_f = nn.LayerNorm(C)
            for name, p in self.named_parameters():  # GPT-2 init, as ours
                if p.dim() >= 2:
                    std = 0.02 / math.sqrt(2 * L) if name.endswith("c_proj.weight") else 0.02
                    nn.init.normal_(p, 0.0, std)
                elif name.endswith("bias"):
                    nn.init.zeros_(p)

        def forward(self, idx, targets):
            T = idx.shape[1]
            x = self.wte(idx) + self.wpe(torch.arange(T))
            for blk in self.h:
                x = blk(x)
            logits = self.ln_f(x) @ self.wte.weight.t()               # tied output layer
            return logits, F.cross_entropy(logits.view(-1, logits.shape[-1]), targets.view(-1))

    torch.manual_seed(0)
    model = TorchGPT(c["vocab_size"], c["block_size"], c["n_layer"], c["n_head"], c["n_embd"])
    model.train()
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and not n.startswith(("wte", "wpe"))]
    keep = [p for n, p in model.named_parameters() if not (p.dim() >= 2 and not n.startswith(("wte", "wpe")))]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": WEIGHT_DECAY},
                             {"params": keep, "weight_decay": 0.0}], lr=LR, betas=(0.9, 0.95), eps=1e-8)
    idx_np, tgt_np = make_batch(c)
    idx, targets = torch.from_numpy(idx_np), torch.from_numpy(tgt_np)

    times, losses = [], []
    for i in range(warmup + steps):
        t0 = CLOCK()
        opt.zero_grad(set_to_none=True)
        _, loss = model(idx, targets)
        loss.backward()
        opt.step()
        dt = CLOCK() - t0
        losses.append(float(loss.item()))
        if i >= warmup:
            times.append(dt)
    n_params = sum(p.numel() for p in model.parameters())
    return _summary("torch", c, times, losses, n_params, dtype=str(model.wte.weight.dtype),
                    torch_version=torch.__version__, torch_threads=torch.get_num_threads())


def _summary(impl, c, times, losses, n_params, **extra) -> dict:
    med = statistics.median(times)
    tokens = c["batch_size"] * c["block_size"]
    return {
        "impl": impl,
        "tokens_per_step": tokens,
        "steps_timed": len(times),
        "step_ms_median": round(med * 1e3, 3),
        "step_ms_min": round(min(times) * 1e3, 3),
        "step_ms_max": round(max(times) * 1e3, 3),
        "tokens_per_s": round(tokens / med, 1),
        "gflops_per_s": round(flops_per_token(c) * tokens / med / 1e9, 1),
        "n_params": int(n_params),
        "loss_first": round(losses[0], 4),
        "step_s": [round(t, 5) for t in times],
        "loss_last": round(losses[-1], 4),
        **extra,
    }


def _pool(runs: list, c: dict) -> dict:
    """Merge the workers' results of one impl: median and best over all their timed steps."""
    times = [t for r in runs for t in r["step_s"]]
    med = statistics.median(times)
    tokens = c["batch_size"] * c["block_size"]
    out = {k: v for k, v in runs[0].items() if k not in ("step_s",)}
    out.update(steps_timed=len(times), rounds=len(runs),
               step_ms_median=round(med * 1e3, 3), step_ms_min=round(min(times) * 1e3, 3),
               step_ms_max=round(max(times) * 1e3, 3),
               tokens_per_s=round(tokens / med, 1), tokens_per_s_best_step=round(tokens / min(times), 1),
               gflops_per_s=round(flops_per_token(c) * tokens / med / 1e9, 1),
               loss_last=runs[-1]["loss_last"])
    return out


# ------------------------------------------------------------------------------ driver
def _thread_env(threads: int) -> dict:
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        env[var] = str(threads)
    return env


def run_worker_subprocess(impl: str, name: str, steps: int, warmup: int, threads: int, tuning: str) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", impl, "--config", name,
           "--steps", str(steps), "--warmup", str(warmup), "--threads", str(threads), "--tuning", tuning]
    proc = subprocess.run(cmd, env=_thread_env(threads), capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{impl}/{name} worker failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", default="S,M", help="comma-separated subset of " + ",".join(CONFIGS))
    ap.add_argument("--impls", default="ours,torch", help="ours,torch or one of them")
    ap.add_argument("--steps", type=int, default=None, help="timed steps (default per config)")
    ap.add_argument("--warmup", type=int, default=None, help="untimed warm-up steps (default per config)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tuning", choices=["all", "none", "malloc", "threads"], default="all",
                    help="which scratchgpt.runtime settings our process uses (default all)")
    ap.add_argument("--rounds", type=int, default=1,
                    help="alternate ours/torch subprocesses this many times and pool the step times "
                         "(on a shared machine, spreads the disturbance over both)")
    ap.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                    help="wall time, or process CPU time (use with --threads 1 on a busy machine)")
    ap.add_argument("--json", default=None, help="also write the results to this file")
    ap.add_argument("--worker", choices=["ours", "torch"], help=argparse.SUPPRESS)
    ap.add_argument("--config", choices=list(CONFIGS), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    global CLOCK
    if args.clock == "cpu":
        os.environ["BENCH_CLOCK"] = "cpu"  # inherited by the worker subprocesses
        CLOCK = time.process_time
    os.environ["SCRATCHGPT_MALLOC_TUNING"] = "1" if args.tuning in ("all", "malloc") else "0"
    os.environ["SCRATCHGPT_THREAD_TUNING"] = "1" if args.tuning in ("all", "threads") else "0"

    if args.worker:
        c = CONFIGS[args.config]
        steps = args.steps or DEFAULT_STEPS[args.config]
        warmup = DEFAULT_WARMUP[args.config] if args.warmup is None else args.warmup
        res = run_ours(c, steps, warmup) if args.worker == "ours" else run_torch(c, steps, warmup, args.threads)
        res.update(config=args.config, threads=args.threads)
        print(json.dumps(res))
        return 0

    names = [n.strip() for n in args.configs.split(",") if n.strip()]
    impls = [s.strip() for s in args.impls.split(",") if s.strip()]
    for n in names:
        if n not in CONFIGS:
            ap.error(f"unknown config {n!r}; choose from {list(CONFIGS)}")
    results = {}
    for n in names:
        steps = args.steps or DEFAULT_STEPS[n]
        warmup = DEFAULT_WARMUP[n] if args.warmup is None else args.warmup
        row = {"config": {**CONFIGS[n]}, "flops_per_token": flops_per_token(CONFIGS[n])}
        runs = {impl: [] for impl in impls}
        for r in range(args.rounds):
            for impl in impls:
                print(f"[{n}] round {r + 1}/{args.rounds} {impl}: {warmup} warm-up + {steps} timed steps ...",
                      file=sys.stderr, flush=True)
                runs[impl].append(run_worker_subprocess(impl, n, steps, warmup, args.threads, args.tuning))
        for impl in impls:
            row[impl] = _pool(runs[impl], CONFIGS[n])
        if "ours" in row and "torch" in row:
            row["ratio_ours_over_torch"] = round(row["ours"]["tokens_per_s"] / row["torch"]["tokens_per_s"], 3)
            row["ratio_best_step"] = round(row["ours"]["tokens_per_s_best_step"]
                                           / row["torch"]["tokens_per_s_best_step"], 3)
        results[n] = row
    results["_machine"] = {"loadavg_at_end": os.getloadavg(), "cpus": os.cpu_count(), "threads": args.threads}

    print(json.dumps(results, indent=2))
    print()
    print("tok/s = tokens per second at the median step; 'best' = at the fastest step")
    print(f"{'config':<7}{'ours tok/s':>12}{'torch tok/s':>13}{'ratio':>8}{'ours GF/s':>11}{'torch GF/s':>12}"
          f"{'ours best':>11}{'torch best':>12}{'ratio best':>12}")
    for n, row in results.items():
        if n.startswith("_"):
            continue
        o, t = row.get("ours", {}), row.get("torch", {})
        ratio = row.get("ratio_ours_over_torch", float("nan"))
        print(f"{n:<7}{o.get('tokens_per_s', float('nan')):>12.0f}{t.get('tokens_per_s', float('nan')):>13.0f}"
              f"{ratio:>8.2f}{o.get('gflops_per_s', float('nan')):>11.1f}{t.get('gflops_per_s', float('nan')):>12.1f}"
              f"{o.get('tokens_per_s_best_step', float('nan')):>11.0f}{t.get('tokens_per_s_best_step', float('nan')):>12.0f}"
              f"{row.get('ratio_best_step', float('nan')):>12.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
