"""``prepare``: load -> clean -> annotate -> split -> [augment] -> write, with a report.

Records stream through in chunks (``chunk_size``), so memory holds one chunk plus the dedup
indexes, never the corpus. Output in ``out_dir``:
- ``train.jsonl``, ``val.jsonl``, ``test.jsonl``: one record per line (``Conversation.to_dict``
  or ``Document.to_dict``), readable by ``load_jsonl`` / ``records.record_from_dict``;
- ``{split}.txt`` when ``write_text`` (pretraining corpora): each record's text, records
  separated by a blank line;
- ``report.json``: what every step kept and dropped, and why.

Held-out files (``test_inputs``) are read FIRST and all go to the test split, so a training
conversation that duplicates a test one is dropped as a duplicate — test data cannot leak.
Augmentation runs after the split and only on train records.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterable

from tqdm import tqdm

from ..errors import ConfigError, DataError
from .annotate import annotate
from .augment import AugmentConfig, augment_conversation
from .clean import CleanConfig, Cleaner
from .load_yaml import chatterbot_files
from .loaders import chunked, expand_inputs, load_records, require_utf8
from .records import Conversation, Message
from .report import Report
from .split import SPLITS, assign_split, check_ratios
from .textnorm import normalize_turn


@dataclass
class PrepareConfig:
    inputs: list = field(default_factory=list)        # files / folders
    fmt: str = "auto"
    chatterbot_languages: tuple = ()                  # e.g. ("english", "chinese")
    test_inputs: list = field(default_factory=list)   # held-out files: all -> test split
    ratios: tuple = (0.9, 0.05, 0.05)
    split_seed: int = 0
    clean: CleanConfig = field(default_factory=CleanConfig)
    augment: AugmentConfig | None = None
    write_text: bool = False
    chunk_size: int = 1000


def conversation_text(conv: Conversation) -> str:
    """A conversation as pretraining text: its turns, one per line (no role markup — the chat
    template adds that at SFT time)."""
    return conv.text()


def record_text(rec) -> str:
    return conversation_text(rec) if isinstance(rec, Conversation) else rec.text


def preset(name: str, **overrides) -> PrepareConfig:
    """Named configurations. ``customer_service``: the bundled dialogue data (train.csv split
    into train/val, test.csv held out). ``default``: the offline pretraining corpus."""
    from ..datasets import customer_service_file
    if name == "customer_service":
        cfg = PrepareConfig(
            inputs=[customer_service_file("train")], test_inputs=[customer_service_file("test")], ratios=(0.9, 0.1, 0.0),
            # templated data: two requests that differ only in the order number are both
            # wanted (the model must learn to copy slots), so near-dup is off here.
            clean=CleanConfig(languages=("en", "zh"), near_dedup=False))
    elif name == "default":
        cfg = PrepareConfig(
            inputs=[customer_service_file("train")], chatterbot_languages=("english", "chinese"),
            ratios=(0.95, 0.05, 0.0), clean=CleanConfig(languages=("en", "zh")), write_text=True)
    elif name == "none":
        cfg = PrepareConfig()
    else:
        raise ConfigError(f"unknown preset {name!r}; expected 'default', 'customer_service' or 'none'")
    for p in cfg.inputs + cfg.test_inputs:
        if not Path(p).exists():
            raise DataError(f"preset {name!r} needs {p}, which is missing (python -m scratchgpt.datasets.customer_service.generate writes it)")
    return replace(cfg, **overrides) if overrides else cfg


def _augmented(conv: Conversation, cfg: AugmentConfig, report: Report) -> list[Conversation]:
    out = []
    for copy in augment_conversation(conv, cfg):
        copy.messages = [Message(m.role, normalize_turn(m.content)) for m in copy.messages]
        report.keep("augment")
        report.tally("augment ops", copy.meta["augment"])
        out.append(copy)
    return out


def prepare(cfg: PrepareConfig, out_dir, tokenizer=None, progress: bool = True) -> Report:
    ratios = check_ratios(cfg.ratios)
    if not cfg.inputs and not cfg.chatterbot_languages and not cfg.test_inputs:
        raise DataError("nothing to prepare: give input files/folders, chatterbot languages or a preset")
    for path in expand_inputs(list(cfg.test_inputs) + list(cfg.inputs), cfg.fmt):  # fail before writing anything
        require_utf8(path)
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise DataError(f"--out {out_dir}: exists and is not a directory")
    created_dir = not out_dir.exists()
    out_dir.mkdir(parents=True, exist_ok=True)
    report = Report()
    cleaner = Cleaner(cfg.clean, report, tokenizer)
    if not cfg.clean.near_dedup:
        report.note("near-duplicate removal is off for this run")
    if tokenizer is None and cfg.clean.max_tokens is not None:
        report.note(f"token length filter ({cfg.clean.max_tokens}) used the approximate count "
                    "(no tokenizer given): words, digit runs and single CJK characters")
    if ratios[2] == 0 and not cfg.test_inputs:
        report.note("test ratio is 0: no test split")

    def stream() -> Iterable[tuple[object, str | None]]:
        if cfg.test_inputs:
            for rec in load_records(cfg.test_inputs, report, cfg.fmt):
                yield rec, "test"
        inputs = list(cfg.inputs)
        if cfg.chatterbot_languages:
            inputs += chatterbot_files(cfg.chatterbot_languages)
        if inputs:
            for rec in load_records(inputs, report, cfg.fmt):
                yield rec, None

    # written under temporary names and renamed only when the whole run succeeded, so a failed
    # run (bad row, nothing left, Ctrl-C) leaves an earlier prepared corpus in out_dir intact
    names = [f"{s}.jsonl" for s in SPLITS] + ([f"{s}.txt" for s in SPLITS] if cfg.write_text else [])
    partial = {name: out_dir / f"{name}.partial" for name in names}
    files = {s: open(partial[f"{s}.jsonl"], "w", encoding="utf-8") for s in SPLITS}
    texts = {s: open(partial[f"{s}.txt"], "w", encoding="utf-8") for s in SPLITS} if cfg.write_text else {}
    first_text = {s: True for s in SPLITS}
    written = [0]
    bar = tqdm(desc="prepare", unit="rec", disable=not progress)
    try:
        def write(rec, split):
            files[split].write(json.dumps(rec.to_dict(), ensure_ascii=False) + "\n")
            if texts:
                texts[split].write(("" if first_text[split] else "\n\n") + record_text(rec))
                first_text[split] = False
            kind = "conversations" if isinstance(rec, Conversation) else "documents"
            report.tally(f"{split} {kind} by language", rec.language or "unknown")
            if isinstance(rec, Conversation):
                report.tally(f"{split} conversations by topic", rec.topic or "none")
                if rec.augmented_from:
                    report.tally("augmented copies by split", split)
            report.tally("records per split", split)
            written[0] += 1

        for chunk in chunked(stream(), cfg.chunk_size):
            for rec, forced in chunk:
                bar.update(1)
                rec = cleaner.clean(rec)
                if rec is None:
                    continue
                rec = annotate(rec, report)
                if rec is None:
                    continue
                split = forced or assign_split(rec.split_key, ratios, cfg.split_seed)
                write(rec, split)
                if cfg.augment is not None and split == "train" and isinstance(rec, Conversation):
                    for copy in _augmented(rec, cfg.augment, report):
                        write(copy, "train")
        if not written[0]:  # nothing survived: no corpus of nothing
            raise DataError(f"no records to write: {report.empty_reason()}")
    except BaseException:
        for f in list(files.values()) + list(texts.values()):
            f.close()
        for path in partial.values():
            path.unlink(missing_ok=True)
        if created_dir and not any(out_dir.iterdir()):
            out_dir.rmdir()
        raise
    finally:
        bar.close()
    for f in list(files.values()) + list(texts.values()):
        f.close()
    for name, path in partial.items():
        path.replace(out_dir / name)
    if tokenizer is not None:
        write_shards(out_dir, tokenizer, report, progress)
    report.save(out_dir / "report.json")
    return report


def read_jsonl(path) -> Iterable:
    from .records import record_from_dict
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield record_from_dict(json.loads(line))


def write_shards(out_dir, tokenizer, report: Report | None = None, progress: bool = False) -> dict:
    """Tokenize every split's JSONL: a pretraining shard of all record texts and, when the split
    holds conversations, an SFT shard (ids + assistant-only loss masks)."""
    from .shards import write_pretrain_shard, write_sft_shard
    out_dir = Path(out_dir)
    metas = {}
    for split in SPLITS:
        path = out_dir / f"{split}.jsonl"
        if not path.is_file() or path.stat().st_size == 0:
            continue
        meta = write_pretrain_shard((record_text(r) for r in read_jsonl(path)), tokenizer,
                                    out_dir / "shards", f"pretrain_{split}", progress)
        metas[f"pretrain_{split}"] = meta
        if report is not None:
            report.tally("tokens per pretraining shard", split, meta["n_tokens"])
        convs = (r for r in read_jsonl(path) if isinstance(r, Conversation))
        smeta = write_sft_shard(convs, tokenizer, out_dir / "shards", f"sft_{split}", progress=progress)
        metas[f"sft_{split}"] = smeta
        if report is not None:
            report.tally("tokens per SFT shard", split, smeta["n_tokens"])
    return metas
