"""Threads for the demo's model: training-step time at 1 vs 2 threads, with and without a competing
busy process, for several thread-pool settings; alternated in one run, ratios reported.

    python benchmarks/demo_threads.py --steps 40 --rounds 2 [--variants 1,2,2-blas1] [--json out.json]

Each measurement is a subprocess (thread counts and pool settings are read when NumPy/Numba load)
that trains the demo's model (``DemoConfig().model``, vocabulary 2048, batch 16 x 128, SFT-like
loss mask, AdamW, gradient clipping, as ``Trainer.train_step``) for ``--warmup`` + ``--steps``
steps on a fixed random batch and reports the median and total wall time of the timed steps.
"load" runs start ``python -c 'while 1: pass'`` in its own session (``setsid``, so it gets its
own scheduler autogroup like another user's job) for the duration of the measurement.
The machine may be shared: the JSON records the load average before each measurement.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

VARIANTS = {
    # name: (threads, extra environment)
    "1": (1, {}),
    "2": (2, {}),                                              # scratchgpt's defaults (OMP_WAIT_POLICY=PASSIVE)
    "2-active": (2, {"OMP_WAIT_POLICY": "ACTIVE"}),
    "2-blas1": (2, {"OPENBLAS_NUM_THREADS": "1"}),             # Numba 2 threads, BLAS 1
    "2-numba1": (2, {"NUMBA_NUM_THREADS": "1"}),               # BLAS 2 threads, Numba 1
    "2-blas-timeout4": (2, {"OPENBLAS_THREAD_TIMEOUT": "4"}),  # OpenBLAS workers sleep after 2^4 cycles
    "2-workqueue": (2, {"NUMBA_THREADING_LAYER": "workqueue"}),
    "auto": (2, {"SCRATCHGPT_THREADS": "auto"}),              # --threads auto: ThreadTuner, as the Trainer runs it
}
THREAD_VARS = ("NUMBA_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def worker(steps: int, warmup: int) -> dict:
    sys.path.insert(0, os.getcwd())
    import numpy as np

    import scratchgpt  # noqa: F401  (runtime tuning)
    from scratchgpt.models import GPT, GPTConfig
    from scratchgpt.optim import AdamW, clip_grad_norm, decay_groups
    from scratchgpt.train.demo import DemoConfig
    d = DemoConfig()
    mc, tc = d.model, d.sft
    cfg = GPTConfig(vocab_size=d.vocab_size, block_size=mc.block_size, n_layer=mc.n_layer, n_head=mc.n_head,
                    n_embd=mc.n_embd, dropout=0.0, bias=mc.bias, smear=mc.smear)
    model = GPT(cfg, seed=0)
    model.train()
    opt = AdamW(decay_groups(model, tc.weight_decay), lr=tc.lr, betas=(tc.beta1, tc.beta2), eps=tc.eps)
    rng = np.random.default_rng(0)
    shape = (tc.batch_size, tc.seq_len)
    idx = rng.integers(0, d.vocab_size, size=shape)
    tgt = rng.integers(0, d.vocab_size, size=shape)
    mask = (rng.random(shape) < 0.4).astype(np.float32)
    from scratchgpt.train.thread_tuner import ThreadTuner
    tuner = ThreadTuner.from_env()
    times, losses = [], []
    for i in range(warmup + steps):
        if tuner is not None:
            tuner.before_step()
        t0 = time.perf_counter()
        opt.zero_grad()
        _, loss = model(idx, tgt, loss_mask=mask)
        loss.backward()
        clip_grad_norm(model.parameters(), tc.grad_clip)
        opt.step()
        dt = time.perf_counter() - t0
        if tuner is not None:
            tuner.after_step(dt)
        losses.append(float(loss.data))
        if i >= warmup:
            times.append(dt)
    import numba
    return {"median_s": statistics.median(times), "total_s": sum(times), "losses": losses,
            "numba_threads": numba.get_num_threads(), "layer": numba.threading_layer(),
            "auto": tuner.summary() if tuner is not None else None}


def measure(variant: str, load: bool, steps: int, warmup: int) -> dict:
    threads, extra = VARIANTS[variant]
    env = {k: v for k, v in os.environ.items() if k != "SCRATCHGPT_THREADS"}
    env = {**env, **{v: str(threads) for v in THREAD_VARS}, **extra}
    busy = None
    if load:
        busy = subprocess.Popen(["setsid", sys.executable, "-c", "while 1: pass"])
        time.sleep(0.5)
    try:
        la = os.getloadavg()[0]
        p = subprocess.run([sys.executable, __file__, "--worker", "--steps", str(steps), "--warmup", str(warmup)],
                           env=env, capture_output=True, text=True)
    finally:
        if busy is not None:
            busy.kill()
            busy.wait()
    if p.returncode:
        raise SystemExit(p.stderr)
    res = json.loads(p.stdout.strip().splitlines()[-1])
    res.update(variant=variant, load=load, loadavg_before=round(la, 2))
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variants", default="1,2", help="comma-separated subset of " + ",".join(VARIANTS))
    ap.add_argument("--loads", default="quiet,load", help="quiet,load or one of them")
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--json", default=None)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.steps, args.warmup)))
        return 0
    variants = [v for v in args.variants.split(",") if v]
    loads = [s == "load" for s in args.loads.split(",") if s]
    rows = []
    for r in range(args.rounds):
        for load in loads:
            for v in variants:
                res = measure(v, load, args.steps, args.warmup)
                rows.append(res)
                print(f"round {r + 1} {'load ' if load else 'quiet'} {v:<16} median {res['median_s'] * 1e3:7.1f} ms"
                      f"  total {res['total_s']:6.2f} s  (loadavg before {res['loadavg_before']})",
                      file=sys.stderr, flush=True)
    summary = {}
    for load in loads:
        base = [x["median_s"] for x in rows if x["variant"] == variants[0] and x["load"] == load]
        for v in variants:
            med = [x["median_s"] for x in rows if x["variant"] == v and x["load"] == load]
            summary[f"{'load' if load else 'quiet'}/{v}"] = {
                "median_ms": round(statistics.median(med) * 1e3, 1),
                f"speedup_vs_{variants[0]}": round(statistics.median(base) / statistics.median(med), 3)}
    same = len({json.dumps(x["losses"]) for x in rows}) == 1
    out = {"summary": summary, "losses_identical_across_all_runs": same, "runs": rows, "cpus": os.cpu_count()}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
    print(json.dumps({"summary": summary, "losses_identical_across_all_runs": same}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
