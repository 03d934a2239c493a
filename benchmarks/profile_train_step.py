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
    from scratchgpt.autograd import Function

    def wrap(name, kind, fn):
        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                rec = timings[(name, kind)]
                rec[0] += time.perf_counter() - t0
                rec[1] += 1
        return staticmethod(timed)

    for cls in _all_subclasses(Function):
        for kind in ("forward", "backward"):
            fn = getattr(cls, kind)  # resolved through the MRO: a plain function
            setattr(cls, kind, wrap(cls.__name__, kind, fn))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="S")
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--cprofile", type=int, default=0, help="also print this many top cProfile rows")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)

    from train_step import CONFIGS, LR, WEIGHT_DECAY, make_batch

    import scratchgpt.ops as ops_pkg
    from scratchgpt.models import GPT, GPTConfig
    from scratchgpt.optim import AdamW, decay_groups

    c = CONFIGS[args.config]
    steps = args.steps or (10 if args.config == "S" else 4)
    cfg = GPTConfig(vocab_size=c["vocab_size"], block_size=c["block_size"], n_layer=c["n_layer"],
                    n_head=c["n_head"], n_embd=c["n_embd"], dropout=0.0, bias=True)
    model = GPT(cfg, seed=0)
    opt = AdamW(decay_groups(model, WEIGHT_DECAY), lr=LR, betas=(0.9, 0.95))
    idx, targets = make_batch(c)

    def step(parts=None):
        t0 = time.perf_counter()
        opt.zero_grad()
        t1 = time.perf_counter()
        _, loss = model(idx, targets)
        t2 = time.perf_counter()
        loss.backward()
        t3 = time.perf_counter()
        opt.step()
        t4 = time.perf_counter()
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
    timings.clear()
    parts = collections.defaultdict(float)
    for _ in range(steps):
        step(parts)

    ms = lambda s: 1e3 * s / steps  # noqa: E731  per-step milliseconds
    total = parts["step (total)"]
    fwd_ops = sum(v[0] for (n, k), v in timings.items() if k == "forward")
    bwd_ops = sum(v[0] for (n, k), v in timings.items() if k == "backward")
    rows = []
    for (name, kind), (secs, calls) in sorted(timings.items(), key=lambda kv: -kv[1][0]):
        rows.append({"op": name, "pass": kind, "ms_per_step": round(ms(secs), 3),
                     "calls_per_step": calls // steps, "share": round(secs / total, 4)})
    glue = [
        {"op": "python glue (forward, outside ops)", "ms_per_step": round(ms(parts["forward (total)"] - fwd_ops), 3)},
        {"op": "autograd engine (backward, outside ops)", "ms_per_step": round(ms(parts["backward (total)"] - bwd_ops), 3)},
        {"op": "optimizer.step", "ms_per_step": round(ms(parts["optimizer.step"]), 3)},
        {"op": "zero_grad", "ms_per_step": round(ms(parts["zero_grad"]), 3)},
    ]
    for g in glue:
        g["share"] = round(g["ms_per_step"] / ms(total), 4)
    tokens = c["batch_size"] * c["block_size"]
    report = {"config": args.config, "steps": steps, "step_ms": round(ms(total), 2),
              "tokens_per_s_instrumented": round(tokens / (total / steps), 1),
              "forward_ms": round(ms(parts["forward (total)"]), 2),
              "backward_ms": round(ms(parts["backward (total)"]), 2),
              "ops": rows, "outside_ops": glue}

    print(f"config {args.config}: {report['step_ms']} ms/step ({report['tokens_per_s_instrumented']} tok/s, "
          f"instrumented), forward {report['forward_ms']} ms, backward {report['backward_ms']} ms")
    print(f"{'op':<40}{'pass':<10}{'ms/step':>9}{'calls':>7}{'share':>8}")
    for r in rows:
        print(f"{r['op']:<40}{r['pass']:<10}{r['ms_per_step']:>9.2f}{r['calls_per_step']:>7}{100 * r['share']:>7.1f}%")
    for g in glue:
        print(f"{g['op']:<50}{g['ms_per_step']:>9.2f}{'':>7}{100 * g['share']:>7.1f}%")

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
