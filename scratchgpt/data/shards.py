"""Token shards on disk — no pickle, only raw arrays and JSON.

Pretraining shard ``<name>.bin`` + ``<name>.meta.json``: every document's token ids, each followed
by the end-of-text id, as one flat little-endian array (uint16 when the vocabulary fits in
65536 ids, else uint32), read back with ``np.memmap`` so a corpus larger than memory can be
sampled. meta.json: dtype, token count, document count, eot id, vocabulary size and a hash of the
tokenizer — a shard tokenized by another tokenizer is refused, not silently misread.

SFT shard ``<name>.ids.bin`` + ``<name>.mask.bin`` (uint8) + ``<name>.offsets.npy`` (int64, n+1)
+ ``<name>.meta.json``: conversation i is ``ids[offsets[i]:offsets[i+1]]``, rendered by the chat
template (``render_chat``); its mask is 1 exactly on assistant content tokens and their ``<|end|>``.
"""
from __future__ import annotations

import hashlib
import json
import tempfile
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
from tqdm import tqdm

from ..errors import DataError
from .records import Conversation

PRETRAIN_FORMAT = "scratchgpt-pretrain-v1"
SFT_FORMAT = "scratchgpt-sft-v1"
_PROBE = "Hello, world! 你好，世界。 <|endoftext|> order #A12345"


def dtype_for(vocab_size: int) -> np.dtype:
    return np.dtype("<u2") if vocab_size <= 2 ** 16 else np.dtype("<u4")


def tokenizer_hash(tok) -> str:
    """SHA-256 of the tokenizer's saved file when it can save itself; otherwise of its class,
    vocabulary size and the encoding of a probe string (enough to tell tokenizers apart)."""
    if hasattr(tok, "save"):
        with tempfile.TemporaryDirectory() as d:
            p = Path(d) / "tokenizer.json"
            tok.save(str(p))
            if p.is_file():
                return hashlib.sha256(p.read_bytes()).hexdigest()
    probe = {"class": type(tok).__name__, "vocab_size": int(tok.vocab_size), "probe": list(tok.encode(_PROBE))}
    return hashlib.sha256(json.dumps(probe).encode()).hexdigest()


def eot_id(tok):
    specials = getattr(tok, "special_tokens", None) or {}
    return specials.get("<|endoftext|>")


def _write_meta(path: Path, meta: dict):
    path.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")


def write_pretrain_shard(texts: Iterable[str], tok, out_dir, name: str = "train", progress: bool = False) -> dict:
    """Tokenize ``texts`` into ``out_dir/<name>.bin``; returns the meta dict."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    dtype = dtype_for(tok.vocab_size)
    eot = eot_id(tok)
    n_tokens = n_docs = 0
    with open(out_dir / f"{name}.bin", "wb") as f:
        for text in tqdm(texts, desc=f"tokenize {name}", unit="doc", disable=not progress):
            ids = list(tok.encode(text))
            if eot is not None:
                ids.append(eot)
            arr = np.asarray(ids, dtype=np.int64)
            if arr.size and (arr.min() < 0 or arr.max() >= 2 ** (8 * dtype.itemsize)):
                raise DataError(f"token id out of range for {dtype} (vocab_size {tok.vocab_size})")
            f.write(arr.astype(dtype).tobytes())
            n_tokens += arr.size
            n_docs += 1
    meta = {"format": PRETRAIN_FORMAT, "dtype": dtype.str, "n_tokens": n_tokens, "n_documents": n_docs,
            "eot_id": eot, "vocab_size": int(tok.vocab_size), "tokenizer_hash": tokenizer_hash(tok)}
    _write_meta(out_dir / f"{name}.meta.json", meta)
    return meta


def _read_meta(path: Path, expected_format: str) -> dict:
    if not path.is_file():
        raise DataError(f"{path}: shard metadata missing (expected the .meta.json written with the shard)")
    meta = json.loads(path.read_text(encoding="utf-8"))
    if meta.get("format") != expected_format:
        raise DataError(f"{path}: format {meta.get('format')!r}, expected {expected_format!r}")
    return meta


def check_tokenizer(meta: dict, tok, where) -> None:
    if tok is not None and meta["tokenizer_hash"] != tokenizer_hash(tok):
        raise DataError(f"{where}: shard was tokenized with another tokenizer (hash "
                        f"{meta['tokenizer_hash'][:12]}..., this one {tokenizer_hash(tok)[:12]}...)")


def load_pretrain_shard(out_dir, name: str = "train", tok=None):
    """(memmap of token ids, meta). Pass ``tok`` to check the shard was made with it."""
    out_dir = Path(out_dir)
    meta = _read_meta(out_dir / f"{name}.meta.json", PRETRAIN_FORMAT)
    check_tokenizer(meta, tok, out_dir / f"{name}.bin")
    path = out_dir / f"{name}.bin"
    dtype = np.dtype(meta["dtype"])
    if path.stat().st_size != meta["n_tokens"] * dtype.itemsize:
        raise DataError(f"{path}: {path.stat().st_size} bytes, expected {meta['n_tokens']} tokens of {dtype}")
    if meta["n_tokens"] == 0:
        return np.zeros(0, dtype=dtype), meta
    return np.memmap(path, dtype=dtype, mode="r"), meta


def _default_render():
    from ..tokenizer.chat_template import render_chat
    return render_chat


def write_sft_shard(conversations: Iterable[Conversation], tok, out_dir, name: str = "train",
                    render: Callable | None = None, progress: bool = False) -> dict:
    """Render each conversation with the chat template into ids + loss mask."""
    render = render or _default_render()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    dtype = dtype_for(tok.vocab_size)
    offsets = [0]
    ids_ = []
    with open(out_dir / f"{name}.ids.bin", "wb") as fi, open(out_dir / f"{name}.mask.bin", "wb") as fm:
        for conv in tqdm(conversations, desc=f"render {name}", unit="conv", disable=not progress):
            msgs = [m.to_dict() for m in conv.messages]
            ids, mask = render(tok, msgs)
            if len(ids) != len(mask):
                raise DataError(f"conversation {conv.id}: render_chat gave {len(ids)} ids but {len(mask)} mask values")
            fi.write(np.asarray(ids, dtype=np.int64).astype(dtype).tobytes())
            fm.write(np.asarray(mask, dtype=np.uint8).tobytes())
            offsets.append(offsets[-1] + len(ids))
            ids_.append(conv.id)
    np.save(out_dir / f"{name}.offsets.npy", np.asarray(offsets, dtype=np.int64))
    meta = {"format": SFT_FORMAT, "dtype": dtype.str, "n_tokens": offsets[-1], "n_conversations": len(ids_),
            "vocab_size": int(tok.vocab_size), "tokenizer_hash": tokenizer_hash(tok),
            "pad_id": (getattr(tok, "special_tokens", None) or {}).get("<|pad|>"), "ids": ids_}
    _write_meta(out_dir / f"{name}.meta.json", meta)
    return meta


class SFTShard:
    """Read side of an SFT shard: ``len(shard)``, ``shard[i] -> (ids, mask)`` as NumPy views."""

    def __init__(self, out_dir, name: str = "train", tok=None):
        out_dir = Path(out_dir)
        self.meta = _read_meta(out_dir / f"{name}.meta.json", SFT_FORMAT)
        check_tokenizer(self.meta, tok, out_dir / f"{name}.ids.bin")
        self.offsets = np.load(out_dir / f"{name}.offsets.npy", allow_pickle=False)
        n = int(self.offsets[-1])
        dtype = np.dtype(self.meta["dtype"])
        for suffix, dt in (("ids.bin", dtype), ("mask.bin", np.dtype(np.uint8))):
            p = out_dir / f"{name}.{suffix}"
            if p.stat().st_size != n * dt.itemsize:
                raise DataError(f"{p}: {p.stat().st_size} bytes, expected {n} values of {dt}")
        self.ids = np.memmap(out_dir / f"{name}.ids.bin", dtype=dtype, mode="r") if n else np.zeros(0, dtype)
        self.mask = np.memmap(out_dir / f"{name}.mask.bin", dtype=np.uint8, mode="r") if n else np.zeros(0, np.uint8)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int):
        a, b = int(self.offsets[i]), int(self.offsets[i + 1])
        return self.ids[a:b], self.mask[a:b]
