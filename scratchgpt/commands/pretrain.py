"""``scratchgpt pretrain``: train a GPT from scratch on a prepared pretraining corpus."""
from __future__ import annotations

from pathlib import Path

from ..train.config import ModelConfig, TrainConfig, add_config_arguments, config_from_args


def register(sub) -> None:
    p = sub.add_parser("pretrain", help="pretrain a small GPT on token shards (random windows)",
                       description="Pretrain a GPT on the shards written by `scratchgpt data prepare`. "
                                   "Every ModelConfig/TrainConfig field can be overridden as --field VALUE.")
    p.add_argument("--data", required=True, help="prepared data directory (with shards/pretrain_train.bin)")
    p.add_argument("--tokenizer", required=True, help="tokenizer.json the shards were written with")
    p.add_argument("--out", default="runs/pretrain", help="run directory (default runs/pretrain)")
    p.add_argument("--resume", action="store_true", help="continue from OUT's latest checkpoint")
    add_config_arguments(p, ModelConfig)
    add_config_arguments(p, TrainConfig)
    p.set_defaults(func=run)


def run(args) -> int:
    from ..train.plot import plot_run
    from ..train.runs import pretrain
    model_cfg = config_from_args(ModelConfig, args)
    train_cfg = config_from_args(TrainConfig, args)
    res = pretrain(args.data, args.tokenizer, args.out, model_cfg, train_cfg, resume=args.resume)
    svg = plot_run(args.out)
    print(f"done: {res.steps} steps, final train loss {res.final_loss:.4f}, val loss {res.last_val_loss:.4f}; "
          f"model in {Path(args.out) / 'model'}, curves in {svg}")
    return 0
