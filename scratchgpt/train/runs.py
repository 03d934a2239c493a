"""Whole runs: pretraining, SFT (full or PEFT) and evaluation, from directories on disk.

These functions are what the CLI commands, ``scratchgpt demo`` and the chapters call:

    pretrain(data_dir, tokenizer, out_dir, model_cfg, train_cfg)       -> RUN/model/
    sft(data_dir, base_dir, out_dir, train_cfg, peft_cfg)              -> RUN/model/ or RUN/peft/
    evaluate_model(model_dir, data_dir, ...)                            -> metrics dict (eval.json)

``data_dir`` is a directory written by ``scratchgpt.data.pipeline.prepare`` with a tokenizer:
``shards/pretrain_{train,val}.*`` for pretraining, ``shards/sft_{train,val}.*`` and
``test.jsonl`` for SFT and evaluation. A model directory holds ``config.json``,
``model.safetensors`` and ``tokenizer.json`` (the design's checkpoint layout).
"""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np

from ..errors import CheckpointError, ConfigError, DataError
from .eval_batches import conversation_eval_batches, fixed_windows
from .config import ModelConfig, PeftConfig, TrainConfig, to_dict
from .trainer import Trainer, TrainResult, evaluate_loss

TOKENIZER_FILE = "tokenizer.json"


# ------------------------------------------------------------------ loading helpers
def load_tokenizer_file(path):
    """A tokenizer from a file or a directory holding one (``tokenizer.tokenizer_file``)."""
    from ..tokenizer import load_tokenizer
    return load_tokenizer(path)


def load_model_dir(model_dir):
    """(GPT, tokenizer) from a model directory; PEFT directories are applied on top of their base.
    (The loader lives in infer/load.py, beside ``load_for_inference``, which also merges LoRA.)"""
    from ..infer.load import load_gpt_dir
    return load_gpt_dir(model_dir)


def not_a_model_dir(path) -> str:
    from ..infer.load import not_a_model_dir as _why
    return _why(path)


RUN_FILES = ("checkpoints", "metrics.jsonl", "model", "peft", "best", "curves.svg")
WORTH_KEEPING = ("checkpoints", "model", "peft", "best")  # a run that never got this far has nothing to lose


def check_run_dir(out_dir, resume: bool = False, overwrite: bool = False) -> None:
    """Refuse to train into a directory that already holds a run unless the user said what to do
    with it: ``resume`` continues it, ``overwrite`` deletes that run's files (and only those)."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out_dir}: exists and is not a directory")
    if resume and overwrite:
        raise ConfigError("--resume and --overwrite contradict each other; pick one")
    found = [name for name in RUN_FILES if (out / name).exists()]
    if resume or not any(name in WORTH_KEEPING for name in found):
        return
    if not overwrite:
        raise ConfigError(f"--out {out_dir} already holds a run ({', '.join(found)}); pass --resume to continue "
                          "it, --overwrite to start over, or another --out")
    for name in found:
        p = out / name
        shutil.rmtree(p) if p.is_dir() else p.unlink()


def export_model(model, tok_path, out_dir) -> Path:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save(out_dir)
    if Path(tok_path).name == "vocab.json":  # GPT-2 files: write them as one tokenizer.json
        from ..tokenizer import load_tokenizer
        load_tokenizer(tok_path).save(out_dir / TOKENIZER_FILE)
    else:
        shutil.copyfile(tok_path, out_dir / TOKENIZER_FILE)
    return out_dir


def _shard_dir(data_dir) -> Path:
    d = Path(data_dir) / "shards"
    if not d.is_dir():
        raise DataError(f"{data_dir}: no shards/ directory; run `scratchgpt data prepare` with a tokenizer first")
    return d


def _tok_path(tok_or_path, where) -> Path:
    from ..tokenizer import tokenizer_file
    try:
        return tokenizer_file(tok_or_path)
    except CheckpointError as err:
        raise CheckpointError(f"--tokenizer {err}" if where == "pretrain" else str(err)) from None


# ------------------------------------------------------------------ pretraining
def pretrain(data_dir, tokenizer_path, out_dir, model_cfg: ModelConfig, train_cfg: TrainConfig,
             resume: bool = False, log=print, stop_after: int | None = None, parallel=None,
             device: str = "cpu") -> TrainResult:
    """``parallel``: a ``scratchgpt.dist.DataParallel`` when this is one rank of a data-parallel run."""
    from ..data.batches import PretrainBatches
    from ..data.shards import load_pretrain_shard
    from ..models import GPT, GPTConfig
    tok_path = _tok_path(tokenizer_path, "pretrain")
    tok = load_tokenizer_file(tok_path)
    shards = _shard_dir(data_dir)
    train_tokens, _ = load_pretrain_shard(shards, "pretrain_train", tok)
    try:
        val_tokens, _ = load_pretrain_shard(shards, "pretrain_val", tok)
    except DataError:
        val_tokens = None
    if train_cfg.seq_len > model_cfg.block_size:
        raise ConfigError(f"seq_len={train_cfg.seq_len} is longer than the model's block_size={model_cfg.block_size}")
    if val_tokens is None or len(val_tokens) < train_cfg.seq_len + 2:
        # no separate validation shard: hold out the last 5% of the training tokens
        n_val = max(train_cfg.seq_len + 2, len(train_tokens) // 20)
        val_tokens = train_tokens[-n_val:]
        train_tokens = train_tokens[:-n_val]
        log(f"no usable pretrain_val shard; holding out the last {n_val} training tokens for validation")
    gcfg = GPTConfig(vocab_size=tok.vocab_size, block_size=model_cfg.block_size, n_layer=model_cfg.n_layer,
                     n_head=model_cfg.n_head, n_embd=model_cfg.n_embd, dropout=train_cfg.dropout,
                     bias=model_cfg.bias, smear=model_cfg.smear)
    model = GPT(gcfg, seed=train_cfg.seed, device=device)
    batches = PretrainBatches(train_tokens, train_cfg.batch_size, train_cfg.seq_len, seed=train_cfg.seed)
    if parallel is not None:
        batches = parallel.shard(batches)
    val = fixed_windows(val_tokens, train_cfg.batch_size, train_cfg.seq_len, train_cfg.eval_batches)
    out_dir = Path(out_dir)
    trainer = Trainer(model, train_cfg, batches, val, out_dir, resume=resume, log=log,
                      **(parallel.trainer_hooks() if parallel is not None else {}),
                      extra_state={"kind": "pretrain", "model": to_dict(model_cfg),
                                   "data_dir": str(data_dir), "tokenizer": str(tok_path)})
    if parallel is not None:
        parallel.check_start(trainer, {"model": to_dict(model_cfg)})
    log(f"pretraining a GPT with {model.num_parameters():,} parameters on {len(train_tokens):,} tokens "
        f"({train_cfg.max_steps} steps x {train_cfg.tokens_per_step:,} tokens)")
    result = trainer.fit(stop_after=stop_after, desc="pretrain")
    if (trainer.step >= train_cfg.max_steps or result.stopped_early) and trainer.writes_files:
        export_model(model, tok_path, out_dir / "model")
    return result


# ------------------------------------------------------------------ SFT
def sft_examples(data_dir, split: str, tok):
    from ..data.shards import SFTShard
    shard = SFTShard(_shard_dir(data_dir), f"sft_{split}", tok)
    return shard


def sft(data_dir, base_dir, out_dir, train_cfg: TrainConfig, peft_cfg: PeftConfig | None = None,
        resume: bool = False, log=print, stop_after: int | None = None, packing: str = "packed",
        slot_copies: int = 0, rare_slot_boost: int = 1, parallel=None, device: str = "cpu",
        extra_conversations: list | None = None, slot_weight: int = 1, slot_wide: float = 0.0):
    """Fine-tune the model in ``base_dir`` on the SFT shards of ``data_dir``.

    ``parallel``: a ``scratchgpt.dist.DataParallel`` when this is one rank of a data-parallel run.
    ``slot_copies > 0`` adds that many slot-resampled variants of every training conversation
    with slot values (``slot_augment.py``), rendered from ``data_dir``/train.jsonl; conversations
    with a rare slot type get up to ``rare_slot_boost`` times as many. ``extra_conversations``
    (message lists) are added to the training set as they are. ``slot_weight > 1`` weighs the
    reply tokens that copy a value from the user's turns that much more in the loss
    (``slot_augment.weight_copied_tokens``; CPU only). ``slot_wide``: that share of the resampled
    copies' order ids / amounts / e-mails in wide shapes (``slot_augment.resample_slots``).
    """
    from ..data.batches import SFTBatches
    from ..nn.peft import apply_peft, count_parameters, save_peft
    peft_cfg = peft_cfg or PeftConfig()
    model, tok = load_model_dir(base_dir)
    tok_path = _tok_path(base_dir, "sft")
    if train_cfg.seq_len > model.config.block_size:
        raise ConfigError(f"seq_len={train_cfg.seq_len} is longer than the base model's block_size="
                          f"{model.config.block_size}")
    train_shard = sft_examples(data_dir, "train", tok)
    if slot_copies or extra_conversations or slot_weight != 1:
        from .slot_augment import augmented_sft_shard
        convs = load_test_conversations(data_dir, "train")
        train_shard = augmented_sft_shard(convs, tok, slot_copies, seed=train_cfg.seed, max_boost=rare_slot_boost,
                                          extra=extra_conversations, slot_weight=slot_weight, wide=slot_wide)
        log(f"slot resampling: {len(convs)} training conversations -> {len(train_shard)} with {slot_copies} "
            "slot-resampled copies of each one that has slot values"
            + (f" and {len(extra_conversations)} extra ones" if extra_conversations else ""))
    try:
        val_shard = sft_examples(data_dir, "val", tok)
    except (DataError, FileNotFoundError):
        raise DataError(f"{data_dir}: no sft_val shard; SFT needs a validation split (prepare with a val ratio > 0)")
    pad = tok.special_tokens.get("<|pad|>", 0)
    if peft_cfg.method != "none":
        apply_peft(model, peft_cfg.method, rank=peft_cfg.lora_rank, alpha=peft_cfg.lora_alpha,
                   dropout=peft_cfg.lora_dropout, targets=peft_cfg.target_list,
                   adapter_size=peft_cfg.adapter_size, prefix_len=peft_cfg.prefix_len, seed=train_cfg.seed)
    counts = count_parameters(model)
    model.to(device)                       # after PEFT wrapped it: adapters move with the base
    batches = SFTBatches(train_shard, train_cfg.batch_size, train_cfg.seq_len, seed=train_cfg.seed,
                         packing=packing, pad_id=pad)
    if parallel is not None:
        batches = parallel.shard(batches)
    val_examples = [val_shard[i] for i in range(len(val_shard))]
    val = conversation_eval_batches(val_examples, train_cfg.batch_size, train_cfg.seq_len, pad)
    if train_cfg.eval_batches:
        val = val[:max(1, train_cfg.eval_batches)]
    out_dir = Path(out_dir)
    trainer = Trainer(model, train_cfg, batches, val, out_dir, resume=resume, log=log,
                      **(parallel.trainer_hooks() if parallel is not None else {}),
                      extra_state={"kind": "sft", "peft": to_dict(peft_cfg), "base_dir": str(base_dir),
                                   "data_dir": str(data_dir), "slot_copies": slot_copies, "packing": packing})
    if parallel is not None:
        parallel.check_start(trainer, {"peft": to_dict(peft_cfg), "slot_copies": slot_copies,
                                        "rare_slot_boost": rare_slot_boost, "packing": packing})
    log(f"SFT ({peft_cfg.method if peft_cfg.method != 'none' else 'full fine-tuning'}): "
        f"{counts['trainable']:,} of {counts['total']:,} parameters train ({counts['trainable_pct']}%), "
        f"{len(train_shard)} training conversations")
    t0 = time.perf_counter()
    result = trainer.fit(stop_after=stop_after, desc=f"sft{'-' + peft_cfg.method if peft_cfg.method != 'none' else ''}")
    result.wall = time.perf_counter() - t0
    result.param_counts = counts
    if (trainer.step >= train_cfg.max_steps or result.stopped_early) and trainer.writes_files:
        if peft_cfg.method == "none":
            export_model(model, tok_path, out_dir / "model")
        else:
            d = save_peft(model, out_dir / "peft")
            info = json.loads((d / "peft.json").read_text(encoding="utf-8"))
            info["base_dir"] = str(Path(base_dir).resolve())
            (d / "peft.json").write_text(json.dumps(info, indent=2), encoding="utf-8")
    result.model = model
    result.tokenizer = tok
    return result


# ------------------------------------------------------------------ evaluation
def load_test_conversations(data_dir, split: str = "test", limit: int | None = None) -> list:
    from ..data.pipeline import read_jsonl
    from ..data.records import Conversation
    path = Path(data_dir) / f"{split}.jsonl"
    if not path.is_file():
        raise DataError(f"{path}: missing; `scratchgpt data prepare --preset customer_service` writes it")
    convs = [r for r in read_jsonl(path) if isinstance(r, Conversation)]
    if limit is not None:
        # spread the subset over the file so every topic is represented, deterministically
        if limit < len(convs):
            idx = np.linspace(0, len(convs) - 1, limit).round().astype(int)
            convs = [convs[i] for i in idx]
    return convs


def evaluate_model(model, tok, data_dir, seq_len: int = 128, batch_size: int = 16, limit: int | None = None,
                   max_new_tokens: int = 48, progress: bool = True, paraphrase: bool = False) -> dict:
    """val_loss/perplexity on sft_val (assistant tokens), and dialogue metrics on test.jsonl;
    ``paraphrase=True`` adds the same dialogue metrics on the hand-written sets never trained on:
    the paraphrase set, the dev set, the blind paraphrase set and the value-format set, under
    "paraphrase", "dev", "paraphrase_blind" and "values_dev" (``limit`` caps them too)."""
    from .evaluate import (dev_set, evaluate_dialogues, paraphrase_blind_set, paraphrase_set, perplexity,
                           values_dev_set)
    pad = tok.special_tokens.get("<|pad|>", 0)
    val_shard = sft_examples(data_dir, "val", tok)
    seq_len = min(seq_len, model.config.block_size)
    val = conversation_eval_batches([val_shard[i] for i in range(len(val_shard))], batch_size, seq_len, pad)
    t0 = time.perf_counter()
    vl = evaluate_loss(model, val)
    convs = load_test_conversations(data_dir, "test", limit)
    dia = evaluate_dialogues(model, tok, convs, max_new_tokens=max_new_tokens, progress=progress)
    if paraphrase:
        for name, sub in (("paraphrase", paraphrase_set(limit)), ("dev", dev_set(limit)),
                          ("paraphrase_blind", paraphrase_blind_set(limit)), ("values_dev", values_dev_set(limit))):
            dia[name] = evaluate_dialogues(model, tok, sub, max_new_tokens=max_new_tokens, progress=progress)
    return {"val_loss": vl, "perplexity": perplexity(vl), **dia, "eval_seconds": round(time.perf_counter() - t0, 2)}


def eval_setup(model_dir, data_dir, limit, max_new_tokens) -> dict:
    """What produced an eval.json: which model on which data, with which limits."""
    return {"model": str(Path(model_dir).resolve()), "data": str(Path(data_dir).resolve()),
            "limit": limit, "max_new_tokens": max_new_tokens, "decoding": "greedy"}
