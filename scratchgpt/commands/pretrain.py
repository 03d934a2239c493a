"""``scratchgpt pretrain``: train a GPT from scratch on a prepared pretraining corpus."""
from __future__ import annotations

from pathlib import Path

from ..train.config import ModelConfig, TrainConfig, add_config_arguments, config_from_args
from ._dist import add_dist, note_once, run_training
from ._flags import add_device, add_progress, add_threads, add_tokenizer, apply_device


def register(sub) -> None:
    p = sub.add_parser("pretrain", help="pretrain a small GPT on token shards (random windows)",
                       description="Pretrain a GPT on the shards written by `scratchgpt data prepare`. "
                                   "Every ModelConfig/TrainConfig field can be overridden as --field-name VALUE.")
    p.add_argument("--data", required=True, metavar="DIR",
                   help="prepared data directory (with shards/pretrain_train.bin)")
    add_tokenizer(p, help="the tokenizer the shards were written with: tokenizer.json or a directory holding one")
    p.add_argument("--out", default="runs/pretrain", metavar="DIR", help="run directory (default runs/pretrain)")
    p.add_argument("--resume", action="store_true", help="continue from OUT's latest checkpoint")
    p.add_argument("--overwrite", action="store_true", help="start over in an OUT that already holds a run")
    add_progress(p)
    add_dist(p)
    add_threads(p)
    add_device(p)
    add_config_arguments(p, ModelConfig)
    add_config_arguments(p, TrainConfig)
    p.set_defaults(func=run)


def run(args) -> int:
    from ..train.plot import plot_run
    from ..train.runs import check_run_dir, pretrain
    device = apply_device(args)
    model_cfg = config_from_args(ModelConfig, args)
    train_cfg = config_from_args(TrainConfig, args, note=note_once)

    def body(parallel, log, is_root) -> int:
        if is_root:
            check_run_dir(args.out, resume=args.resume, overwrite=args.overwrite)
        if parallel is not None:
            parallel.world.barrier("run directory check")
        res = pretrain(args.data, args.tokenizer, args.out, model_cfg, train_cfg, resume=args.resume, log=log,
                       parallel=parallel, device=device)
        if not is_root:
            return 0
        svg = plot_run(args.out)
        model = Path(args.out) / "model"
        print(f"done: {res.steps} steps, final train loss {res.final_loss:.4f}, val loss {res.last_val_loss:.4f}; "
              f"model in {model}, curves in {svg}")
        print(f"next: scratchgpt sft --base {model} --data DIALOGUE_DIR   "
              "(DIALOGUE_DIR from `scratchgpt data prepare --preset customer_service --tokenizer "
              f"{model / 'tokenizer.json'} --out DIALOGUE_DIR`)")
        return 0
    return run_training(args, body)
