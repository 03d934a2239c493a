"""Chapter 7 — 工具和资源 (tools): experiment tracking with a metrics log and plots.

    python -m scratchgpt.chapters.ch7            # three short pretraining runs (~3 min on 2 cores)
    python -m scratchgpt.chapters.ch7 --quick    # tiny settings (what tests run)

The tutorial's §7.2 recommends Weights & Biases and TensorBoard. Their core is small: every
run appends its numbers to a log, and a viewer draws them. Here that is ``metrics.jsonl``
(one JSON object per logged step: step, loss, val_loss, lr, grad_norm, tokens_per_s, elapsed),
``train_config.json`` beside it (what was run), ``scratchgpt plot RUN`` (the curves as SVG)
and ``compare_figure`` (several runs in one chart). The chapter runs a small learning-rate
comparison, reads the logs back, prints a table, draws the charts, and shows that a run
interrupted and resumed writes the same log as one that was not.
Guide: chapters/ch7.md.
"""
from __future__ import annotations

import json
import tempfile
from dataclasses import replace
from pathlib import Path

from ..commands._flags import chapter_args, chapter_parser, kept_note, run_chapter
from ..train.config import ModelConfig, TrainConfig


def settings(quick: bool):
    if quick:
        return dict(vocab=512, model=ModelConfig(n_layer=2, n_head=2, n_embd=64, block_size=64),
                    train=TrainConfig(warmup_steps=3, max_steps=20, batch_size=8, seq_len=64, eval_every=5,
                                      eval_batches=2, log_every=2, checkpoint_every=10, progress=False),
                    lrs=(1e-3, 1e-2))
    return dict(vocab=1024, model=ModelConfig(n_layer=3, n_head=4, n_embd=96, block_size=128),
                train=TrainConfig(warmup_steps=20, max_steps=200, batch_size=16, seq_len=128, eval_every=20,
                                  eval_batches=4, log_every=5, checkpoint_every=50, progress=True),
                lrs=(3e-4, 1e-3, 3e-3))


def main(argv=None) -> int:
    ap = chapter_parser("ch7", "Chapter 7: experiment tracking",
                        quick_help="tiny model and few steps (what the tests run)",
                        out_help="keep the runs, logs and SVG charts here (default: a temporary folder, "
                                 "deleted at the end)")
    args = chapter_args(ap, argv)
    from ..train.experiments import ensure_prepared
    from ..train.metrics import read_metrics
    from ..train.plot import compare_figure, plot_run
    from ..train.runs import pretrain
    s = settings(args.quick)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.out or tmp)
        show = (lambda p: str(p)) if args.out else (lambda p: str(Path(p).relative_to(work)))
        dirs = ensure_prepared(work, s["vocab"])
        print("== 1. runs write their own logs ==")
        runs = {}
        for lr in s["lrs"]:
            run = work / "ch7" / f"lr{lr:g}"
            cfg = replace(s["train"], lr=lr, min_lr=lr / 10)
            pretrain(dirs["pretrain_dir"], dirs["tokenizer"], run, s["model"], cfg, log=lambda m: None)
            runs[f"lr {lr:g}"] = read_metrics(run / "metrics.jsonl")
            print(f"  {show(run)}: {', '.join(sorted(p.name for p in run.iterdir()))}")
        first = next(iter(runs))
        print("\n  metrics.jsonl, first two lines of run", first)
        for rec in runs[first][:2]:
            print("   ", json.dumps(rec))
        print("\n== 2. reading the logs back: a comparison table ==")
        print(f"  {'run':<10}{'steps':>6}{'final loss':>12}{'best val':>10}{'@step':>7}{'tokens/s':>10}{'time s':>8}")
        for name, recs in runs.items():
            vals = [r for r in recs if "val_loss" in r]
            best = min(vals, key=lambda r: r["val_loss"])
            tps = [r["tokens_per_s"] for r in recs if "tokens_per_s" in r]
            print(f"  {name:<10}{recs[-1]['step']:>6}{recs[-1]['loss']:>12.3f}{best['val_loss']:>10.3f}"
                  f"{best['step']:>7}{sorted(tps)[len(tps) // 2]:>10.0f}{recs[-1]['elapsed']:>8.1f}")
        print("\n== 3. the dashboard: SVG charts ==")
        for name in runs:
            svg = plot_run(work / "ch7" / name.replace(" ", ""))
            print(f"  {show(svg)}  (loss + val loss, learning rate, gradient norm)")
        cmp_path = work / "ch7" / "compare_val_loss.svg"
        cmp_path.write_text(compare_figure(runs, "val_loss", "validation loss by learning rate"), encoding="utf-8")
        print(f"  {show(cmp_path)}  (all runs, one chart)")
        print(f"  ({kept_note(args.out, 'the runs and charts')})")
        print("\n== 4. interrupted and resumed: the same log ==")
        lr = s["lrs"][0]
        cfg = replace(s["train"], lr=lr, min_lr=lr / 10)
        run = work / "ch7" / "resumed"
        pretrain(dirs["pretrain_dir"], dirs["tokenizer"], run, s["model"], cfg, log=lambda m: None,
                 stop_after=cfg.checkpoint_every + cfg.checkpoint_every // 2)
        print(f"  stopped after step {read_metrics(run / 'metrics.jsonl')[-1]['step']} "
              f"(last checkpoint: step {cfg.checkpoint_every}); resuming ...")
        pretrain(dirs["pretrain_dir"], dirs["tokenizer"], run, s["model"], cfg, resume=True, log=lambda m: None)
        strip = lambda recs: [{k: v for k, v in r.items() if k not in ("elapsed", "tokens_per_s")} for r in recs]
        same = strip(read_metrics(run / "metrics.jsonl")) == strip(runs[f"lr {lr:g}"])
        print(f"  resumed log == uninterrupted log (except timings): {same}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
