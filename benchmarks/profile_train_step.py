"""Where does a scratchgpt training step spend its time? Per-op forward/backward breakdown.

Every autograd Function subclass gets its static forward/backward wrapped with a timer (in this
process only), then a few training steps of benchmarks/train_step.py's configs are run. The
report lists, per op, milliseconds per step in forward and backward, plus the parts that are
not inside any op: the Python glue of the forward pass, the autograd engine's own work
(topological sort, gradient accumulation), zero_grad and the optimizer step.

    python benchmarks/profile_train_step.py --config S
    python benchmarks/profile_train_step.py --config M --cprofile 25   # also the top cProfile rows

The timers cost ~1 us per call, small next to the ~100 op calls of a step.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import time

# wall time by default; --clock cpu switches to process CPU time, which on a shared machine
# measures the work of a 1-thread run without the time spent waiting for a core
CLOCK = time.process_time if os.environ.get("BENCH_CLOCK") == "cpu" else time.perf_counter

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def _all_subclasses(cls):
    out, stack = [], [cls]
    while stack:
        c = stack.pop()
        for s in c.__subclasses__():
            out.append(s)
            stack.append(s)
    return out


def instrument(timings):
    """Wrap forward/backward where each Function class defines them. A classmethod (shared by
    e.g. Add/Sub/Mul through a base class) is timed under the class it is called on."""
    from scratchgpt.autograd import Function

    def record(name, kind, t0):
        rec = timings[(name, kind)]
        rec[0] += CLOCK() - t0
        rec[1] += 1

    def wrap_static(name, kind, fn):
        def timed(*args, **kwargs):
            t0 = CLOCK()
            try:
                return fn(*args, **kwargs)
            finally:
                record(name, kind, t0)
        return staticmethod(timed)

    def wrap_class(kind, fn):
        def timed(cls, *args, **kwargs):
            t0 = CLOCK()
            try:
                return fn(cls, *args, **kwargs)
            finally:
                record(cls.__name__, kind, t0)
        return classmethod(timed)

    for cls in _all_subclasses(Function):
        for kind in ("forward", "backward"):
            attr = cls.__dict__.get(kind)
            if isinstance(attr, staticmethod):
                setattr(cls, kind, wrap_static(cls.__name__, kind, attr.__func__))
            elif isinstance(attr, classmethod):
                setattr(cls, kind, wrap_class(kind, attr.__func__))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="S")
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--cprofile", type=int, default=0, help="also print this many top cProfile rows")
    ap.add_argument("--threads", type=int, default=2, help="BLAS/Numba threads (set before NumPy starts)")
    ap.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                    help="wall time, or process CPU time (use with --threads 1 on a busy machine)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    global CLOCK
    if args.clock == "cpu":
        os.environ["BENCH_CLOCK"] = "cpu"  # inherited by the worker subprocesses
        CLOCK = time.process_time
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ[var] = str(args.threads)

    from train_step import CONFIGS, LR, WEIGHT_DECAY, make_batch

    import scratchgpt.ops as ops_pkg
    from scratchgpt.runtime import tune_runtime
    from scratchgpt.models import GPT, GPTConfig
    from scratchgpt.optim import AdamW, decay_groups

    c = CONFIGS[args.config]
    print(f"runtime tuning in effect: {tune_runtime()}")
    steps = args.steps or (10 if args.config == "S" else 4)
    cfg = GPTConfig(vocab_size=c["vocab_size"], block_size=c["block_size"], n_layer=c["n_layer"],
                    n_head=c["n_head"], n_embd=c["n_embd"], dropout=0.0, bias=True)
    model = GPT(cfg, seed=0)
    opt = AdamW(decay_groups(model, WEIGHT_DECAY), lr=LR, betas=(0.9, 0.95))
    idx, targets = make_batch(c)

    def step(parts=None):
        t0 = CLOCK()
        opt.zero_grad()
        t1 = CLOCK()
        _, loss = model(idx, targets)
        t2 = CLOCK()
        loss.backward()
        t3 = CLOCK()
        opt.step()
        t4 = CLOCK()
        if parts is not None:
            parts["zero_grad"] += t1 - t0
            parts["forward (total)"] += t2 - t1
            parts["backward (total)"] += t3 - t2
            parts["optimizer.step"] += t4 - t3
            parts["step (total)"] += t4 - t0

    for name in ops_pkg.__all__:  # import every op module so every Function exists
        getattr(ops_pkg, name)
    for _ in range(args.warmup):  # compile the Numba kernels before timing
        step()
    timings = collections.defaultdict(lambda: [0.0, 0])
    instrument(timings)
    step()  # one untimed step through the wrappers
    # The machine may be shared: per op, keep the *fastest* of the timed steps (the least
    # disturbed one) as well as the mean; the sums of both are printed.
    per_step = []
    for _ in range(steps):
        timings.clear()
        parts = collections.defaultdict(float)
        step(parts)
        fwd_ops = sum(v[0] for (n, k), v in timings.items() if k == "forward")
        bwd_ops = sum(v[0] for (n, k), v in timings.items() if k == "backward")
        parts["python glue (forward, outside ops)"] = parts["forward (total)"] - fwd_ops
        parts["autograd engine (backward, outside ops)"] = parts["backward (total)"] - bwd_ops
        per_step.append(({k: tuple(v) for k, v in timings.items()}, dict(parts)))

    keys = list(per_step[0][0])
    best = {k: min(ps[0][k][0] for ps in per_step) for k in keys}
    mean = {k: sum(ps[0][k][0] for ps in per_step) / steps for k in keys}
    calls = {k: per_step[0][0][k][1] for k in keys}
    pkeys = list(per_step[0][1])
    pbest = {k: min(ps[1][k] for ps in per_step) for k in pkeys}
    pmean = {k: sum(ps[1][k] for ps in per_step) / steps for k in pkeys}
    total_best = pbest["step (total)"]
    rows = []
    for k in sorted(keys, key=lambda k: -best[k]):
        rows.append({"op": k[0], "pass": k[1], "ms_best": round(1e3 * best[k], 3),
                     "ms_mean": round(1e3 * mean[k], 3), "calls_per_step": calls[k],
                     "share_of_best_step": round(best[k] / total_best, 4)})
    glue = []
    for name in ("python glue (forward, outside ops)", "autograd engine (backward, outside ops)",
                 "optimizer.step", "zero_grad"):
        glue.append({"op": name, "ms_best": round(1e3 * pbest[name], 3), "ms_mean": round(1e3 * pmean[name], 3),
                     "share_of_best_step": round(pbest[name] / total_best, 4)})
    tokens = c["batch_size"] * c["block_size"]
    report = {"config": args.config, "steps": steps,
              "step_ms_best": round(1e3 * total_best, 2), "step_ms_mean": round(1e3 * pmean["step (total)"], 2),
              "tokens_per_s_best_step": round(tokens / total_best, 1),
              "forward_ms_best": round(1e3 * pbest["forward (total)"], 2),
              "backward_ms_best": round(1e3 * pbest["backward (total)"], 2),
              "sum_of_best_parts_ms": round(1e3 * (sum(best.values()) + sum(pbest[g["op"]] for g in glue)), 2),
              "ops": rows, "outside_ops": glue}

    print(f"config {args.config}: best step {report['step_ms_best']} ms ({report['tokens_per_s_best_step']} tok/s, "
          f"instrumented), mean {report['step_ms_mean']} ms; best forward {report['forward_ms_best']} ms, "
          f"best backward {report['backward_ms_best']} ms")
    print(f"{'op':<40}{'pass':<10}{'best ms':>9}{'mean ms':>9}{'calls':>7}{'share':>8}")
    for r in rows:
        print(f"{r['op']:<40}{r['pass']:<10}{r['ms_best']:>9.2f}{r['ms_mean']:>9.2f}{r['calls_per_step']:>7}"
              f"{100 * r['share_of_best_step']:>7.1f}%")
    for g in glue:
        print(f"{g['op']:<50}{g['ms_best']:>9.2f}{g['ms_mean']:>9.2f}{'':>7}{100 * g['share_of_best_step']:>7.1f}%")
    print(f"sum of best parts: {report['sum_of_best_parts_ms']} ms")

    if args.cprofile:
        import cProfile
        import pstats
        prof = cProfile.Profile()
        prof.enable()
        for _ in range(steps):
            step()
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(args.cprofile)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
