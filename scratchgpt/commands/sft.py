"""``scratchgpt sft``: fine-tune a pretrained GPT on chat conversations (full, LoRA, Adapter, Prefix)."""
from __future__ import annotations

from pathlib import Path

from ..train.config import PeftConfig, TrainConfig, add_config_arguments, config_from_args, with_overrides
from ._dist import add_dist, note_once, run_training
from ._flags import add_device, add_progress, add_threads, apply_device

# SFT defaults differ from pretraining: a smaller learning rate (tutorial §9 Q2) and short runs
SFT_DEFAULTS = TrainConfig(lr=1e-3, min_lr=1e-4, warmup_steps=20, max_steps=300, weight_decay=0.0,
                           eval_every=50)


def register(sub) -> None:
    p = sub.add_parser("sft", help="supervised fine-tuning on dialogues (loss on assistant tokens only)",
                       description="Fine-tune a model directory on the SFT shards of a prepared dialogue "
                                   "dataset. --peft picks parameter-efficient tuning; every TrainConfig/"
                                   "PeftConfig field can be overridden as --field-name VALUE.")
    p.add_argument("--data", required=True, metavar="DIR",
                   help="prepared dialogue directory (shards/sft_train, sft_val)")
    p.add_argument("--base", required=True, metavar="DIR",
                   help="model directory to start from (config.json, model.safetensors, tokenizer.json)")
    p.add_argument("--out", default="runs/sft", metavar="DIR", help="run directory (default runs/sft)")
    p.add_argument("--peft", choices=["none", "lora", "adapter", "prefix"], default="none",
                   help="parameter-efficient method (default none = full fine-tuning)")
    p.add_argument("--packing", choices=["packed", "padded"], default="packed",
                   help="lay conversations end to end (packed) or one per row (padded)")
    p.add_argument("--slot-copies", type=int, default=0,
                   metavar="N", help="add N slot-resampled copies of each training conversation with slots (teaches copying "
                        "order numbers etc.; default 0)")
    p.add_argument("--resume", action="store_true", help="continue from OUT's latest checkpoint")
    p.add_argument("--overwrite", action="store_true", help="start over in an OUT that already holds a run")
    add_progress(p)
    add_dist(p)
    add_threads(p)
    add_device(p)
    add_config_arguments(p, TrainConfig, defaults=SFT_DEFAULTS)
    add_config_arguments(p, PeftConfig, exclude=("method",))
    p.set_defaults(func=run)


def run(args) -> int:
    from ..train.plot import plot_run
    from ..train.runs import check_run_dir, sft
    device = apply_device(args)
    train_cfg = config_from_args(TrainConfig, args, base=SFT_DEFAULTS, note=note_once)
    peft_cfg = with_overrides(config_from_args(PeftConfig, args), {"method": args.peft})

    def body(parallel, log, is_root) -> int:
        if is_root:
            check_run_dir(args.out, resume=args.resume, overwrite=args.overwrite)
        if parallel is not None:
            parallel.world.barrier("run directory check")
        res = sft(args.data, args.base, args.out, train_cfg, peft_cfg, resume=args.resume, packing=args.packing,
                  slot_copies=args.slot_copies, log=log, parallel=parallel, device=device)
        if not is_root:
            return 0
        svg = plot_run(args.out)
        where = Path(args.out) / ("model" if peft_cfg.method == "none" else "peft")
        print(f"done: {res.steps} steps, final train loss {res.final_loss:.4f}, val loss {res.last_val_loss:.4f}; "
              f"weights in {where}, curves in {svg}")
        print(f"next: scratchgpt eval {where} --data {args.data}")
        return 0
    return run_training(args, body)
