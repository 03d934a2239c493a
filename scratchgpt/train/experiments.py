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
