"""Read and write Hugging Face ``tokenizer.json`` (byte-level BPE) and GPT-2 ``vocab.json`` +
``merges.txt``. Formats as documented by those projects; the code is ours.

What we accept from HF: model BPE without dropout / subword prefix / suffix / byte fallback /
ignore_merges, no normalizer, and either
* pre_tokenizer ByteLevel(add_prefix_space=false, use_regex=true) -> our "gpt2" mode, or
* Sequence[Split(<our "scratchgpt" regex>, isolated), ByteLevel(use_regex=false)], which is what
  ``to_huggingface`` writes for a "scratchgpt"-mode tokenizer.
Anything else raises CheckpointError saying which part is unsupported, rather than encoding
differently from HF without telling anyone. HF added tokens become our special tokens (HF
matches them in text always; ours only with ``allowed_special``).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from ..errors import CheckpointError, ConfigError
from .bytelevel import bytes_to_token, token_to_bytes
from .pretokenize import CJK_RANGES


def read_json(path) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except OSError as err:
        raise CheckpointError(f"cannot read tokenizer file {path}: {err.strerror or err}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"tokenizer file {path} is not valid JSON: {err}") from None


# The "scratchgpt" pre-tokenizer written as an Oniguruma regex (HF's engine), for export.
_CJK_CLASS = "".join(f"\\x{{{lo:X}}}-\\x{{{hi:X}}}" for lo, hi in CJK_RANGES)
SCRATCHGPT_REGEX = (
    "'(?:[sS]|[tT]|[rR][eE]|[vV][eE]|[mM]|[lL][lL]|[dD])"
    f"| ?[\\p{{L}}&&[^{_CJK_CLASS}]]+"
    f"|[\\p{{L}}&&[{_CJK_CLASS}]]{{1,4}}"
    "| ?\\p{N}{1,3}"
    "| ?[^\\s\\p{L}\\p{N}]+"
    "|\\s+(?!\\S)|\\s+"
)


def _fail(source, msg):
    raise CheckpointError(f"{source}: {msg}")


def _pretokenizer_mode(pre, source) -> str:
    if pre is None:
        _fail(source, "no pre_tokenizer; expected a byte-level BPE (ByteLevel pre-tokenizer)")
    if pre.get("type") == "ByteLevel":
        if pre.get("add_prefix_space", False):
            _fail(source, "ByteLevel(add_prefix_space=true) is not supported; only false")
        if not pre.get("use_regex", True):
            _fail(source, "ByteLevel(use_regex=false) alone is not supported")
        return "gpt2"
    if pre.get("type") == "Sequence":
        parts = pre.get("pretokenizers", [])
        if (len(parts) == 2 and parts[0].get("type") == "Split"
                and parts[0].get("pattern", {}).get("Regex") == SCRATCHGPT_REGEX
                and parts[0].get("behavior") == "Isolated" and not parts[0].get("invert", False)
                and parts[1].get("type") == "ByteLevel" and not parts[1].get("use_regex", True)
                and not parts[1].get("add_prefix_space", False)):
            return "scratchgpt"
    _fail(source, f"unsupported pre_tokenizer {json.dumps(pre)[:200]}")


def _check_model(model, source):
    if not isinstance(model, dict) or model.get("type") != "BPE":
        _fail(source, 'expected "model": {"type": "BPE", ...}')
    for field in ("dropout", "continuing_subword_prefix", "end_of_word_suffix"):
        if model.get(field):
            _fail(source, f"BPE option {field}={model[field]!r} is not supported")
    for field in ("byte_fallback", "ignore_merges"):
        if model.get(field):
            _fail(source, f"BPE option {field}=true is not supported")


def _parse_merge(m, source):
    if isinstance(m, str):
        parts = m.split(" ")
    else:
        parts = m
    if not isinstance(parts, list) or len(parts) != 2:
        _fail(source, f"bad merge entry {m!r}")
    return parts


def _assemble(cls, vocab: dict, merge_strs, specials: dict, mode, source, backend):
    """vocab: token string -> id (specials excluded); merge_strs: [(left str, right str)]."""
    byte_to_id = [None] * 256
    for tok, i in vocab.items():
        data = token_to_bytes(tok)
        if data is None:
            _fail(source, f"vocab token {tok!r} is not a byte-level token and not an added token")
        if len(data) == 1:
            byte_to_id[data[0]] = i
    missing = [b for b in range(256) if byte_to_id[b] is None]
    if missing:
        _fail(source, f"the vocab lacks single-byte tokens for bytes {missing[:8]}... "
                      "(train HF with initial_alphabet=ByteLevel.alphabet())")
    merges, merge_ids = [], []
    for left, right in merge_strs:
        for side in (left, right, left + right):
            if side not in vocab:
                _fail(source, f"merge ({left!r}, {right!r}) uses {side!r}, which is not in the vocab")
        merges.append((vocab[left], vocab[right]))
        merge_ids.append(vocab[left + right])
    produced = set(merge_ids) | set(byte_to_id)
    unreachable = [t for t, i in vocab.items() if i not in produced]
    if unreachable:
        _fail(source, f"vocab tokens no merge produces: {unreachable[:5]}")
    try:
        return cls(merges, specials, byte_to_id=byte_to_id, merge_ids=merge_ids,
                   pretokenizer=mode, backend=backend)
    except ConfigError as err:
        _fail(source, str(err))


def from_huggingface(cls, tokenizer_json, backend="cython"):
    source = str(tokenizer_json)
    data = read_json(tokenizer_json)
    if not isinstance(data, dict):
        _fail(source, "expected a JSON object")
    model = data.get("model")
    _check_model(model, source)
    if data.get("normalizer") is not None:
        _fail(source, f"normalizer {data['normalizer'].get('type')!r} is not supported (expected null)")
    mode = _pretokenizer_mode(data.get("pre_tokenizer"), source)
    specials = {}
    for added in data.get("added_tokens") or []:
        specials[added["content"]] = int(added["id"])
    vocab = {t: int(i) for t, i in model.get("vocab", {}).items() if t not in specials}
    merges = [_parse_merge(m, source) for m in model.get("merges", [])]
    return _assemble(cls, vocab, merges, specials, mode, source, backend)


def to_huggingface(tok, path):
    if tok.pretokenizer not in ("gpt2", "scratchgpt"):
        raise ConfigError(
            f"a Hugging Face tokenizer.json cannot record the {tok.pretokenizer!r} pre-tokenizer (its "
            "value rule needs a look-ahead over the whole word); use save(), or train with 'scratchgpt'")
    special_ids = set(tok.special_tokens.values())
    vocab = {bytes_to_token(data): i for i, data in enumerate(tok.id_to_bytes) if i not in special_ids}
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                  "use_regex": tok.pretokenizer == "gpt2"}
    if tok.pretokenizer == "gpt2":
        pre = byte_level
    else:
        pre = {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": SCRATCHGPT_REGEX}, "behavior": "Isolated",
             "invert": False},
            byte_level]}
    doc = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [
            {"id": i, "content": s, "single_word": False, "lstrip": False, "rstrip": False,
             "normalized": False, "special": True}
            for s, i in sorted(tok.special_tokens.items(), key=lambda kv: kv[1])],
        "normalizer": None,
        "pre_tokenizer": pre,
        "post_processor": None,
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True,
                    "use_regex": True},
        "model": {
            "type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
            "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
            "ignore_merges": False, "vocab": vocab,
            "merges": [[bytes_to_token(tok.id_to_bytes[a]), bytes_to_token(tok.id_to_bytes[b])]
                       for a, b in tok.merges],
        },
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")


def from_gpt2(cls, vocab_json, merges_txt, backend="cython"):
    """GPT-2 files. Specials are the vocab entries that are neither a byte nor made by a merge
    (for GPT-2 itself: "<|endoftext|>")."""
    vocab = read_json(vocab_json)
    if not isinstance(vocab, dict) or not all(isinstance(i, int) for i in vocab.values()):
        _fail(vocab_json, "expected a JSON object token -> int id")
    try:
        lines = Path(merges_txt).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise CheckpointError(f"cannot read merges file {merges_txt}: {err}") from None
    merges = [_parse_merge(line, merges_txt) for line in lines
              if line.strip() and not line.startswith("#version")]
    made = {a + b for a, b in merges}
    specials = {t: i for t, i in vocab.items()
                if t not in made and (token_to_bytes(t) is None or len(token_to_bytes(t)) != 1)}
    regular = {t: i for t, i in vocab.items() if t not in specials}
    return _assemble(cls, regular, merges, specials, "gpt2", f"{vocab_json} + {merges_txt}", backend)


def to_gpt2(tok, directory):
    if tok.pretokenizer != "gpt2":
        raise ConfigError(
            f"GPT-2 vocab.json/merges.txt cannot record the {tok.pretokenizer!r} pre-tokenizer "
            "(readers assume GPT-2's); use to_huggingface() or save(), or train with pretokenizer='gpt2'")
    special_ids = set(tok.special_tokens.values())
    vocab = {}
    for i, data in enumerate(tok.id_to_bytes):
        if i not in special_ids:
            vocab[bytes_to_token(data)] = i
    for s, i in tok.special_tokens.items():
        if s in vocab:
            raise ConfigError(f"special token {s!r} has the same text as regular token {vocab[s]}; "
                              "vocab.json cannot hold both")
        vocab[s] = i
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    lines = ["#version: 0.2"] + [
        f"{bytes_to_token(tok.id_to_bytes[a])} {bytes_to_token(tok.id_to_bytes[b])}" for a, b in tok.merges]
    (directory / "merges.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return os.fspath(directory)
