"""Data: load, clean, annotate, augment, split and shard dialogue and text corpora.

    from scratchgpt.data import prepare, preset
    report = prepare(preset("customer_service"), "runs/cs")    # JSONL per split + report.json
    print(report.format())

Modules, in pipeline order: records (Conversation, Document), load_csv / load_jsonl /
load_yaml / load_text (+ loaders: dispatch), textnorm + clean + dedup + language (Cleaner),
annotate, augment (+ synonyms), split, pipeline (prepare, presets), shards, batches, download.
"""
from .batches import Batch, PretrainBatches, SFTBatches
from .clean import CleanConfig, Cleaner
from .pipeline import PrepareConfig, prepare, preset, read_jsonl, write_shards
from .records import Conversation, Document, Message
from .report import Report
from .shards import SFTShard, load_pretrain_shard, write_pretrain_shard, write_sft_shard

__all__ = ["Batch", "PretrainBatches", "SFTBatches", "CleanConfig", "Cleaner", "PrepareConfig", "prepare",
           "preset", "read_jsonl", "write_shards", "Conversation", "Document", "Message", "Report",
           "SFTShard", "load_pretrain_shard", "write_pretrain_shard", "write_sft_shard"]
