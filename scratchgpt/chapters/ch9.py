"""Chapter 9 — 常见问题与解答: the tutorial's FAQ Q2-Q5 answered with experiments.

    python -m scratchgpt.chapters.ch9              # all three (~15 min on 2 cores)
    python -m scratchgpt.chapters.ch9 --only q3    # one question
    python -m scratchgpt.chapters.ch9 --quick      # tiny settings (what tests run)
    python -m scratchgpt.chapters.ch9 --dist       # Q3 across processes: 2 MPI ranks (the dist extra)

Q2 learning rate: SFT from the same base with a sweep of peak learning rates, with and
   without warmup; the table is the validation loss each reaches.
Q3 resources: peak memory and time of one training step for the same effective batch as one
   big batch, as micro-batches with gradient accumulation, and with mixed precision.
   --dist: past one process — 2 MPI ranks train the same model on halves of each batch (equal to
   one process), the allreduce's cost measured and projected to 8/64/512 ranks for GPT-2 124M,
   and the tensor-parallel memory split (scratchgpt/dist, benchmarks/dist.py).
Q4 overfitting: a small subset of the dialogues trained for many steps, with and without
   dropout, weight decay and early stopping; a train/val table.
Q5 faster inference: greedy generation with and without the KV cache at several prompt
   lengths (same tokens, ms per token), and batched decoding.
Guide: chapters/ch9.md (with the numbers measured on a 2-core machine).
"""
from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path

from ..commands._flags import chapter_args, chapter_parser, run_chapter
from ..train.config import ModelConfig, TrainConfig


def settings(quick: bool):
    if quick:
        return dict(quick=True, vocab=512, model=ModelConfig(n_layer=2, n_head=2, n_embd=64, block_size=96),
                    pre=TrainConfig(lr=3e-3, warmup_steps=5, max_steps=30, batch_size=8, seq_len=96, eval_every=30,
                                    eval_batches=2, progress=False),
                    sft=TrainConfig(lr=1e-3, min_lr=1e-4, warmup_steps=0, max_steps=8, batch_size=8, seq_len=96,
                                    weight_decay=0.0, eval_every=4, eval_batches=2, progress=False),
                    lrs=(1e-3, 1e-2), warmup=3, mem_batch=8, mem_micro=2,
                    subset=16, overfit_steps=16, overfit_eval_every=4)
    return dict(quick=False, vocab=1024, model=ModelConfig(n_layer=4, n_head=4, n_embd=128, block_size=128),
                pre=TrainConfig(lr=3e-3, min_lr=3e-4, warmup_steps=30, max_steps=600, batch_size=16, seq_len=128,
                                eval_every=200, eval_batches=4, progress=True),
                sft=TrainConfig(lr=1e-3, min_lr=1e-4, warmup_steps=0, max_steps=100, batch_size=16, seq_len=128,
                                weight_decay=0.0, eval_every=50, eval_batches=4, progress=False),
                lrs=(3e-4, 1e-3, 3e-3, 1e-2), warmup=20, mem_batch=16, mem_micro=4,
                subset=48, overfit_steps=240, overfit_eval_every=20)


# ------------------------------------------------------------------ Q2
def q2_learning_rate(base, data, work: Path, s) -> list[dict]:
    from ..train.experiments import sft_trainer
    print("\n== Q2 微调过程中如何选择合适的学习率? / choosing the learning rate ==")
    rows = []
    for lr in s["lrs"]:
        for warm in (0, s["warmup"]):
            cfg = replace(s["sft"], lr=lr, min_lr=lr / 10, warmup_steps=warm)
            tr, _ = sft_trainer(base, data, cfg, work / f"q2_lr{lr:g}_w{warm}")
            try:
                res = tr.fit()
                first = res.history[0]["loss"] if res.history else float("nan")
                rows.append({"lr": lr, "warmup": warm, "first_loss": first, "final_loss": res.final_loss,
                             "val_loss": res.last_val_loss, "best_val": res.best_val_loss, "diverged": False})
            except Exception as e:  # a too-large lr can blow up: that is a result, not a crash
                rows.append({"lr": lr, "warmup": warm, "first_loss": float("nan"), "final_loss": float("nan"),
                             "val_loss": float("nan"), "best_val": float("nan"), "diverged": str(e)[:60]})
    print(f"SFT {s['sft'].max_steps} steps from the same base, cosine decay to lr/10; val loss on held-out dialogues")
    print(f"{'peak lr':>9}{'warmup':>8}{'train loss':>12}{'val loss':>10}{'best val':>10}")
    for r in rows:
        extra = f"  diverged: {r['diverged']}" if r["diverged"] else ""
        print(f"{r['lr']:>9.0e}{r['warmup']:>8}{r['final_loss']:>12.3f}{r['val_loss']:>10.3f}{r['best_val']:>10.3f}{extra}")
    ok = [r for r in rows if not r["diverged"] and r["val_loss"] == r["val_loss"]]
    if ok:
        best = min(ok, key=lambda r: r["val_loss"])
        print(f"best: peak lr {best['lr']:.0e} with warmup {best['warmup']} (val loss {best['val_loss']:.3f})")
    return rows


# ------------------------------------------------------------------ Q3
def q3_resources(base, data, work: Path, s) -> list[dict]:
    from ..train.experiments import sft_trainer, step_memory_and_time
    print("\n== Q3 资源瓶颈 / memory: gradient accumulation and mixed precision ==")
    B, m = s["mem_batch"], s["mem_micro"]
    variants = [
        (f"batch {B}", dict(batch_size=B, grad_accum=1)),
        (f"{B // m} x {m} accumulated", dict(batch_size=B // m, grad_accum=m)),
        (f"batch {B}, mixed precision", dict(batch_size=B, grad_accum=1, mixed_precision=True)),
        (f"{B // m} x {m} acc., mixed", dict(batch_size=B // m, grad_accum=m, mixed_precision=True)),
    ]
    rows = []
    for name, kw in variants:
        cfg = replace(s["sft"], max_steps=10 ** 6, **kw)
        # padded rows of exactly seq_len tokens: every variant processes the same token count
        tr, _ = sft_trainer(base, data, cfg, work / f"q3_{len(rows)}")
        r = step_memory_and_time(tr, steps=2)
        rows.append({"variant": name, "sequences_per_step": cfg.batch_size * cfg.grad_accum, **r})
    print(f"{'variant':<28}{'seqs/step':>10}{'peak MiB':>10}{'s/step':>9}")
    for r in rows:
        print(f"{r['variant']:<28}{r['sequences_per_step']:>10}{r['peak_mib']:>10.1f}{r['step_s']:>9.3f}")
    print("peak MiB = NumPy memory one step adds (activations kept for backward, gradients, temporaries).")
    print("Accumulation divides the activation memory by the number of micro-batches at the same effective")
    print("batch. Mixed precision on this CPU is an emulation (Numba has no float16): activations stay float32,")
    print("so it saves no memory here and the casts cost time — on a GPU with float16 kernels it halves them.")
    return rows


def q3_distributed(quick: bool) -> dict:
    """Launch 2 ranks of ``scratchgpt.dist.measure`` and print what they measured and what it projects."""
    import json
    import os

    from ..dist.launch import run_ranks
    from ..dist.measure import report_lines, summary
    from ..errors import DistError
    print("\n== Q3 across processes: data parallel, the allreduce's cost, tensor parallel (2 MPI ranks) ==")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "dist.json"
        argv = ["-m", "scratchgpt.dist.measure", "--out", str(out), "--shape", "quick" if quick else "S",
                "--max-kib", "256" if quick else "16384", "--repeats", "5" if quick else "20"]
        proc = run_ranks(2, argv, timeout=300 if quick else 900)
        if proc.returncode != 0:
            tail = " ".join(proc.stderr.strip().splitlines()[-2:])
            raise DistError(f"the 2-rank run failed (exit {proc.returncode}): {tail}")
        res = json.loads(out.read_text(encoding="utf-8"))
    res["summary"] = summary(res)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print("\n".join(report_lines(res, res["summary"])))
    print(f"(timings taken with a 1-minute load average of {load:.1f} on {os.cpu_count()} cores)")
    return res


# ------------------------------------------------------------------ Q4
def q4_overfitting(base, data, work: Path, s) -> list[dict]:
    from ..train.experiments import ShardSubset, sft_trainer, train_loss_on
    from ..train.runs import sft_examples
    print("\n== Q4 如何缓解过拟合? / overfitting: dropout, weight decay, early stopping ==")
    variants = [
        ("baseline", dict()),
        ("dropout 0.2", dict(dropout=0.2)),
        ("weight decay 0.5", dict(weight_decay=0.5)),
        ("early stopping (patience 2)", dict(patience=2)),
        ("all three", dict(dropout=0.2, weight_decay=0.5, patience=2)),
    ]
    rows = []
    for name, kw in variants:
        cfg = replace(s["sft"], lr=1e-3, min_lr=1e-3, schedule="constant", warmup_steps=0,
                      max_steps=s["overfit_steps"], eval_every=s["overfit_eval_every"], **kw)
        tr, tok = sft_trainer(base, data, cfg, work / f"q4_{len(rows)}", subset=s["subset"])
        res = tr.fit()
        subset = ShardSubset(sft_examples(data, "train", tok), s["subset"])
        train_loss = train_loss_on(tr, subset, cfg.seq_len)
        best_step = min((h for h in res.history if "val_loss" in h), key=lambda h: h["val_loss"])["step"]
        rows.append({"variant": name, "steps": res.steps, "train_loss": train_loss, "val_loss": res.last_val_loss,
                     "best_val": res.best_val_loss, "best_step": best_step, "stopped_early": res.stopped_early,
                     "final_val_of_kept_weights": tr.evaluate()})
    print(f"{s['subset']} training conversations, up to {s['overfit_steps']} steps at constant lr 1e-3; "
          "losses in eval mode (no dropout)")
    print(f"{'variant':<30}{'steps':>6}{'train loss':>11}{'val loss':>10}{'best val':>10}{'@step':>7}{'gap':>7}")
    for r in rows:
        gap = r["final_val_of_kept_weights"] - r["train_loss"]
        print(f"{r['variant']:<30}{r['steps']:>6}{r['train_loss']:>11.3f}{r['final_val_of_kept_weights']:>10.3f}"
              f"{r['best_val']:>10.3f}{r['best_step']:>7}{gap:>7.2f}")
    print("val loss = of the weights the run ends with (early stopping restores its best ones);")
    print("gap = val - train: how much the model fits the small training set beyond what generalises.")
    return rows


# ------------------------------------------------------------------ Q5
def q5_inference_speed(base, data, work: Path, s) -> list[dict]:
    """Q5 (推理加速): how much the KV cache saves, by prompt length, on the Q2-Q4 base model."""
    from ..train.runs import load_model_dir
    from .inference_speed import batched_throughput, print_kv_table
    print("\n== Q5 如何加速推理? / faster inference: KV cache vs recomputation, batching ==")
    model, _ = load_model_dir(base)
    block = model.config.block_size
    lens = [8, block // 2] if s["quick"] else [8, block // 4, block // 2, 3 * block // 4]
    new = 16 if s["quick"] else 32
    rows = print_kv_table(model, lens, new)
    for b in (1, 8):
        print(f"  {b} sequence{'s' if b > 1 else ''} at once: {batched_throughput(model, b, 8, new):.0f} decode tokens/s")
    print("  quantization (int8/int4) and pruning: `scratchgpt quantize` / `scratchgpt prune` --report")
    return rows


QUESTIONS = {"q2": q2_learning_rate, "q3": q3_resources, "q4": q4_overfitting, "q5": q5_inference_speed}


def main(argv=None) -> int:
    from ..train.experiments import add_base_arguments, resolve_base

    ap = chapter_parser("ch9", "Chapter 9: FAQ Q2-Q5 as experiments",
                        quick_help="tiny model and few steps (what the tests run)")
    ap.add_argument("--only", choices=sorted(QUESTIONS), default=None, help="run only this question")
    ap.add_argument("--dist", action="store_true",
                    help="only Q3 across processes: launch 2 MPI ranks (needs the dist extra: mpi4py + mpich)")
    add_base_arguments(ap)
    args = chapter_args(ap, argv)
    if args.dist:
        q3_distributed(args.quick)
        return 0
    s = settings(args.quick)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.out or tmp)
        base, data = resolve_base(ap, args, work, s)
        for name, fn in QUESTIONS.items():
            if args.only in (None, name):
                fn(base, data, work / "ch9", s)
    return 0


if __name__ == "__main__":
    raise SystemExit(run_chapter(main, "ch9"))
