"""Shared set-up for the chapters' experiments: prepared data, a tokenizer and a pretrained base.

Each ``ensure_*`` step is cached in a work directory (it is skipped when its output exists), so
chapters 7-9 can run several experiments on the same data without redoing the pipeline.
Measurement helpers (peak memory of a training step) live here too.
"""
from __future__ import annotations

import time
import tracemalloc
from dataclasses import replace
from pathlib import Path

from ..errors import CheckpointError, DataError
from .config import ModelConfig, TrainConfig


def ensure_prepared(work, vocab_size: int = 512, progress: bool = False) -> dict:
    """Bundled data prepared, a BPE tokenizer trained, shards written — once per ``work`` dir."""
    from .demo import prepare_data, train_tokenizer, write_all_shards
    from .runs import load_tokenizer_file
    work = Path(work)
    tok_path = work / "tokenizer.json"
    dirs = {"pretrain_dir": work / "data" / "pretrain", "sft_dir": work / "data" / "customer_service",
            "tokenizer": tok_path}
    done = (tok_path.is_file() and (dirs["sft_dir"] / "shards" / "sft_val.meta.json").is_file()
            and (dirs["pretrain_dir"] / "shards" / "pretrain_train.meta.json").is_file())
    if not done:
        d = prepare_data(work, progress)
        tok = train_tokenizer(d["pretrain_dir"], vocab_size, tok_path, progress)
        write_all_shards(d, tok, progress)
    dirs["tok"] = load_tokenizer_file(tok_path)
    return dirs


def ensure_base(work, dirs: dict, model_cfg: ModelConfig, train_cfg: TrainConfig, log=print) -> Path:
    """A pretrained base model in ``work``/base/model (trained once, then reused)."""
    from .runs import pretrain
    work = Path(work)
    model_dir = work / "base" / "model"
    if not (model_dir / "model.safetensors").is_file():
        pretrain(dirs["pretrain_dir"], dirs["tokenizer"], work / "base", model_cfg, train_cfg, log=log)
    return model_dir


def step_memory_and_time(trainer, steps: int = 2) -> dict:
    """Peak traced memory (MiB) and mean seconds of ``steps`` training steps after a warm-up step.

    tracemalloc sees every NumPy buffer (NumPy reports its allocations to it), i.e. the
    activations saved for backward, gradients and temporaries — the part of training memory
    that batch size, accumulation and precision change. Weights/optimizer state allocated
    before the measurement are excluded, so the number is what one step adds.
    """
    trainer.train_step()  # warm-up: Numba compilation, optimizer state allocation
    tracemalloc.start()
    tracemalloc.reset_peak()
    base, _ = tracemalloc.get_traced_memory()
    t0 = time.perf_counter()
    for _ in range(steps):
        trainer.train_step()
    dt = (time.perf_counter() - t0) / steps
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"peak_mib": (peak - base) / 2 ** 20, "step_s": dt}


def quiet(cfg: TrainConfig) -> TrainConfig:
    return replace(cfg, progress=False)


class ShardSubset:
    """The first ``n`` conversations of an SFT shard (same interface: len, [i], meta)."""

    def __init__(self, shard, n: int):
        self.shard, self.n = shard, min(int(n), len(shard))
        self.meta = shard.meta

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        if not 0 <= i < self.n:
            raise IndexError(i)
        return self.shard[i]


def sft_trainer(base_dir, data_dir, cfg: TrainConfig, run_dir, subset: int | None = None, peft=None,
                packing: str = "padded", log=lambda s: None):
    """A Trainer for SFT from ``base_dir`` on ``data_dir``'s shards (optionally on the first
    ``subset`` training conversations; ``peft`` = dict of apply_peft arguments incl. method)."""
    from ..data.batches import SFTBatches
    from ..nn.peft import apply_peft
    from .eval_batches import conversation_eval_batches
    from .runs import load_model_dir, sft_examples
    from .trainer import Trainer
    model, tok = load_model_dir(base_dir)
    shard = sft_examples(data_dir, "train", tok)
    if subset is not None:
        shard = ShardSubset(shard, subset)
    val_shard = sft_examples(data_dir, "val", tok)
    pad = tok.special_tokens.get("<|pad|>", 0)
    if peft:
        apply_peft(model, **{**peft, "seed": cfg.seed})
    batches = SFTBatches(shard, cfg.batch_size, cfg.seq_len, seed=cfg.seed, packing=packing, pad_id=pad)
    val = conversation_eval_batches([val_shard[i] for i in range(len(val_shard))], cfg.batch_size,
                                    cfg.seq_len, pad)[:cfg.eval_batches]
    return Trainer(model, cfg, batches, val, run_dir, log=log), tok


def train_loss_on(trainer, shard_like, seq_len: int, batch_size: int = 16) -> float:
    """Loss on (a subset of) the training conversations, in eval mode, for train/val tables."""
    from .eval_batches import conversation_eval_batches
    from .trainer import evaluate_loss
    pad = 0
    ex = [shard_like[i] for i in range(len(shard_like))]
    return evaluate_loss(trainer.model, conversation_eval_batches(ex, batch_size, seq_len, pad))


def add_base_arguments(ap) -> None:
    """The --base/--data options shared by the experiment chapters (ch8, ch9); ``--out`` comes
    from ``chapter_parser``."""
    ap.add_argument("--base", default=None, metavar="DIR",
                    help="pretrained model directory (default: pretrain a small one in --out)")
    ap.add_argument("--data", default=None, metavar="DIR", help="prepared customer-service directory (with --base)")


def resolve_base(ap, args, work, settings: dict):
    """(base model dir, prepared data dir): the user's --base/--data, or prepared and pretrained in
    ``work`` (with --out it is kept there, so a second run reuses them)."""
    if args.base:
        if not args.data:
            ap.error("--base needs --data (the prepared customer-service directory it was trained with)")
        from .runs import not_a_model_dir
        if not (Path(args.base) / "config.json").is_file():
            raise CheckpointError(f"--base {not_a_model_dir(args.base)}")
        if not (Path(args.data) / "shards").is_dir():
            raise DataError(f"--data {args.data}: not a prepared dialogue directory with shards/ "
                            "(e.g. runs/demo/data/customer_service)")
        return Path(args.base), Path(args.data)
    where = f"kept in {args.out} for the next run" if args.out else "in a temporary folder; --out DIR keeps it"
    print(f"preparing data and pretraining a base model ({where}) ...")
    dirs = ensure_prepared(work, settings["vocab"])
    base = ensure_base(work, dirs, settings["model"], settings["pre"], log=lambda m: None)
    return base, dirs["sft_dir"]
