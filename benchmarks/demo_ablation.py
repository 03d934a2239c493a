"""Ablations of the demo configuration: one variant, one seed per process; JSON line out.

    python benchmarks/demo_ablation.py VARIANT --seed 1337 --out /tmp/run_dir [--eval-limit N]

Runs ``scratchgpt demo``'s pipeline (train/demo.py ``run_demo``) with the variant's DemoConfig,
one thread (like the demo), and prints task accuracy (test split and paraphrase set) with the
process's CPU time (user + sys), which is what the 10-minute budget is measured in on a shared
machine. Variants are cumulative changes named in VARIANTS below; chapters/ch5.md has the table.
"""
from __future__ import annotations

import os

for v in ("NUMBA_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[v] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from dataclasses import replace  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scratchgpt.train.demo import DemoConfig  # noqa: E402


def variants() -> dict:
    """Cumulative changes, from the demo defaults before issue 9 ("base") — spelled out here so
    the table stays reproducible when DemoConfig's defaults move."""
    d = DemoConfig()
    base = replace(d, model=replace(d.model, smear=False), copy_drills=0, rare_slot_boost=1,
                   pretokenizer="scratchgpt", number_groups=True, drill_wide_formats=False, varied_more_wordings=False,
                   sft_slot_weight=1, varied_wide_values=0.0, slot_wide_values=0.0,
                   slot_copies=12, pretrain_slot_copies=8, varied_sft=0, varied_pretrain=0, drill_made_up_names=False,
                   pretrain=replace(d.pretrain, max_steps=400), sft=replace(d.sft, max_steps=1400))
    out = {"base": base}
    out["smear"] = smear = replace(base, model=replace(base.model, smear=True))
    out["smear+drills"] = drills = replace(smear, copy_drills=4000)

    def longer(cfg, f):   # f x the steps of pretraining and SFT (the cosine decay stretches; warmup stays)
        return replace(cfg, pretrain=replace(cfg.pretrain, max_steps=round(cfg.pretrain.max_steps * f)),
                       sft=replace(cfg.sft, max_steps=round(cfg.sft.max_steps * f)))
    out["smear+steps1.4"] = longer(smear, 1.4)
    # + e-mail users redrawn in slot resampling (slot_augment._reshape; not switchable: it is how
    # resampling works now) and 4x copies for conversations with rare slot types
    out["smear+drills+boost4+steps1.4"] = prev = longer(replace(drills, rare_slot_boost=4), 1.4)
    out["smear+boost4+steps1.4"] = longer(replace(smear, rare_slot_boost=4), 1.4)
    # + varied conversations (datasets/customer_service/variety.py) in SFT and pretraining, with
    # fewer slot-resampled copies so the template data is not drowned; same steps, same time
    out["varied6k"] = replace(prev, varied_sft=6000, varied_pretrain=3000, slot_copies=6, pretrain_slot_copies=4)
    out["varied12k"] = replace(prev, varied_sft=12000, varied_pretrain=4000, slot_copies=4, pretrain_slot_copies=4)
    out["varied6k+names"] = replace(out["varied6k"], drill_made_up_names=True)
    # the defaults (smear, drills, varied data, made-up e-mail users) with the "scratchgpt-values"
    # pre-tokenizer: one token per digit, no leading space on value-like words (issue 9, copy9)
    out["values-pretok"] = replace(out["varied6k+names"], pretokenizer="scratchgpt-values", number_groups=False)
    # + half of the copy drills' values in wide formats (copy_drill.py: lower-case/mixed ids with
    # dashes, slashes, underscores, spaces; € / EUR amounts with commas; e-mails with "+", capitals)
    out["values-pretok+wide-drills"] = replace(out["values-pretok"], drill_wide_formats=True)
    out["varied6k+names+wide-drills"] = replace(out["varied6k+names"], drill_wide_formats=True)
    # + many more hand-written request wordings in the varied conversations (templates_more.py, data9)
    out["varied6k+names+more"] = replace(out["varied6k+names"], varied_more_wordings=True)
    # + SFT loss weight 3 on reply tokens that copy a value from the user (slot_augment.weight_copied_tokens)
    out["varied6k+names+w3"] = replace(out["varied6k+names"], sft_slot_weight=3)
    out["varied6k+names+more+w3"] = replace(out["varied6k+names+more"], sft_slot_weight=3)
    # + varied conversations answer only with replies filed under their intent's topic (variety.on_topic)
    out["varied6k+names+more+ontopic"] = replace(out["varied6k+names+more"], varied_on_topic_replies=True)
    # issue 9, vary9: order ids / amounts / e-mails in a wide family of shapes (value_shapes.py) in half
    # of the varied conversations' values and 30 % of the slot-resampled copies' values
    vd = out["values-pretok+wide-drills"]
    out["vd+wide-values"] = replace(vd, varied_wide_values=0.5, slot_wide_values=0.3)
    out["vd+wide-varied"] = replace(vd, varied_wide_values=0.5)          # the varied conversations only
    out["vd+wide-copies"] = replace(vd, slot_wide_values=0.3)            # the slot-resampled copies only
    out["vd+wide-values+more"] = replace(out["vd+wide-values"], varied_more_wordings=True)
    out["vd+more"] = replace(vd, varied_more_wordings=True)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("variant", choices=sorted(variants()))
    ap.add_argument("--seed", type=int, default=1337)
    ap.add_argument("--out", required=True)
    ap.add_argument("--eval-limit", type=int, default=None)
    args = ap.parse_args(argv)
    from scratchgpt.train.demo import run_demo
    cfg = variants()[args.variant]
    if args.eval_limit:
        cfg = replace(cfg, eval_limit=args.eval_limit)
    t0 = time.perf_counter()
    ev = run_demo(args.out, progress=False, cfg=cfg, seed=args.seed)
    ru = resource.getrusage(resource.RUSAGE_SELF)
    row = {"variant": args.variant, "seed": args.seed, "task_accuracy": ev["task_accuracy"],
           "slot_accuracy": ev["slot_accuracy"], "topic_accuracy": ev["topic_accuracy"],
           "by_slot_type": {k: v["echoed"] for k, v in ev["by_slot_type"].items()},
           "paraphrase_task_accuracy": ev["paraphrase"]["task_accuracy"],
           "paraphrase_slot_accuracy": ev["paraphrase"]["slot_accuracy"],
           "paraphrase_topic_accuracy": ev["paraphrase"]["topic_accuracy"],
           "paraphrase_by_slot_type": {k: v["echoed"] for k, v in ev["paraphrase"]["by_slot_type"].items()},
           "values_dev_task_accuracy": ev.get("values_dev", {}).get("task_accuracy"),
           "values_dev_by_slot_type": {k: v["echoed"] for k, v in ev.get("values_dev", {}).get("by_slot_type", {}).items()},
           **{f"{k}_{m}": ev[k][m] for k in ("dev", "paraphrase_blind") for m in ("task_accuracy", "topic_accuracy")},
           "val_loss": ev["val_loss"], "cpu_s": round(ru.ru_utime + ru.ru_stime, 1),
           "wall_s": round(time.perf_counter() - t0, 1), "timings_s": ev["timings_s"]}
    print("RESULT " + json.dumps(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
