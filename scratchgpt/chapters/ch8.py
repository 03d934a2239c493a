"""Chapter 8 — 参数高效微调 side by side: full fine-tuning vs LoRA vs Adapter vs Prefix-tuning.

    python -m scratchgpt.chapters.ch8                         # pretrains a base once (kept in --out DIR, reused next time)
    python -m scratchgpt.chapters.ch8 --base runs/demo/pretrain/model --data runs/demo/data/customer_service
    python -m scratchgpt.chapters.ch8 --quick                 # tiny settings (what tests run)

Guide: chapters/ch8.md. The tutorial's §8.2 predicts that parameter-efficient methods
(Prefix-Tuning, LoRA, Adapters — §7.3's papers) will matter more; this chapter measures them
on the same base model, data and step budget: trainable parameters, size on disk, time,
validation loss and task accuracy, and checks that the base weights stay bit-identical.
"""
from __future__ import annotations

import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..commands._flags import chapter_args, chapter_parser, run_chapter
from ..train.config import ModelConfig, TrainConfig

METHODS = [
    ("full", None),
    ("lora", {"method": "lora", "rank": 8, "alpha": 16.0, "targets": ("c_attn", "c_proj", "c_fc")}),
    ("adapter", {"method": "adapter", "adapter_size": 16}),
    ("prefix", {"method": "prefix", "prefix_len": 8}),
]


def settings(quick: bool):
    if quick:
        return dict(vocab=512, model=ModelConfig(n_layer=2, n_head=2, n_embd=64, block_size=96),
                    pre=TrainConfig(lr=3e-3, warmup_steps=5, max_steps=30, batch_size=8, seq_len=96, eval_every=30,
                                    eval_batches=2, progress=False),
                    sft=TrainConfig(lr=2e-3, min_lr=2e-4, warmup_steps=3, max_steps=12, batch_size=8, seq_len=96,
                                    weight_decay=0.0, eval_every=12, eval_batches=2, progress=False),
                    n_eval=4)
    return dict(vocab=1024, model=ModelConfig(n_layer=4, n_head=4, n_embd=128, block_size=128),
                pre=TrainConfig(lr=3e-3, min_lr=3e-4, warmup_steps=30, max_steps=600, batch_size=16, seq_len=128,
                                eval_every=200, eval_batches=4, progress=True),
                sft=TrainConfig(lr=1.5e-3, min_lr=1.5e-4, warmup_steps=20, max_steps=300, batch_size=16,
                                seq_len=128, weight_decay=0.0, eval_every=100, eval_batches=4, progress=True),
                n_eval=60)


def compare(base_dir, data_dir, work: Path, sft_cfg: TrainConfig, n_eval: int, methods=METHODS) -> list[dict]:
    """SFT with each method from the same base; returns one row per method."""
    from ..nn.peft import count_parameters, save_peft
    from ..train.experiments import sft_trainer
    from ..train.runs import evaluate_model
    rows = []
    for name, peft in methods:
        # PEFT trains few parameters from a good starting point: a higher lr is usual (LoRA paper)
        cfg = sft_cfg if peft is None else replace(sft_cfg, lr=sft_cfg.lr * 2, min_lr=sft_cfg.min_lr * 2)
        tr, tok = sft_trainer(base_dir, data_dir, cfg, work / name, peft=peft)
        base_before = {n: p.data.copy() for n, p in tr.model.named_parameters() if not p.requires_grad}
        t0 = time.perf_counter()
        res = tr.fit(desc=f"sft-{name}")
        secs = time.perf_counter() - t0
        frozen_ok = all(np.array_equal(base_before[n], p.data) for n, p in tr.model.named_parameters()
                        if n in base_before)
        ev = evaluate_model(tr.model, tok, data_dir, seq_len=cfg.seq_len, limit=n_eval, max_new_tokens=40,
                            progress=False)
        counts = count_parameters(tr.model)
        if peft is None:
            size = sum(p.data.nbytes for p in tr.model.parameters())
        else:
            size = (save_peft(tr.model, work / name / "peft") / "peft.safetensors").stat().st_size
        rows.append({"method": name, "trainable": counts["trainable"], "pct": counts["trainable_pct"],
                     "saved_bytes": size, "seconds": secs, "steps": res.steps, "val_loss": ev["val_loss"],
                     "task_accuracy": ev["task_accuracy"], "rouge_l": ev["rouge_l"],
                     "base_unchanged": frozen_ok if peft else None, "lr": cfg.lr})
    return rows


def print_table(rows: list[dict]) -> None:
    print(f"{'method':<9}{'trainable':>11}{'%':>8}{'saved':>10}{'lr':>9}{'time s':>8}{'val loss':>10}"
          f"{'task acc':>10}{'ROUGE-L':>9}  base frozen")
    for r in rows:
        frozen = "n/a (all train)" if r["base_unchanged"] is None else ("bit-identical" if r["base_unchanged"] else "CHANGED")
        print(f"{r['method']:<9}{r['trainable']:>11,}{r['pct']:>8.2f}{r['saved_bytes'] / 1024:>8.0f}KB"
              f"{r['lr']:>9.1e}{r['seconds']:>8.1f}{r['val_loss']:>10.3f}{r['task_accuracy']:>10.1%}"
              f"{r['rouge_l']:>9.3f}  {frozen}")


def main(argv=None) -> int:
    from ..train.experiments import add_base_arguments, resolve_base

    ap = chapter_parser("ch8", "Chapter 8: full fine-tuning vs LoRA vs Adapter vs Prefix-tuning",
                        quick_help="tiny model and few steps (what the tests run)")
    add_base_arguments(ap)
    args = chapter_args(ap, argv)
    s = settings(args.quick)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.out or tmp)
        base, data = resolve_base(ap, args, work, s)
        where = base if (args.out or args.base) else "pretrained in a temporary folder (--out DIR keeps it)"
        print(f"base model {where}; SFT {s['sft'].max_steps} steps x {s['sft'].batch_size} conversations per method; "
              f"task accuracy on {s['n_eval']} test conversations\n")
        rows = compare(base, data, work / "ch8", s["sft"], s["n_eval"])
        print_table(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(run_chapter(main, "ch8"))
