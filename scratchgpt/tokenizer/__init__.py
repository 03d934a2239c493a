"""Tokenizers: text <-> token ids.

``BPETokenizer`` (byte-level BPE, ours, Cython + a pure-Python twin) and
``SentencePieceTokenizer`` (a wrapper over the sentencepiece library) share one interface;
``load_tokenizer(path)`` reads the "type" field of a saved tokenizer JSON and builds the right one.
``path`` may be the file or a directory holding it (a model directory, or a run directory whose
``model/`` holds it) or a GPT-2 ``vocab.json`` with ``merges.txt`` beside it: ``tokenizer_file``
says which file that is, or why there is none.
"""
from pathlib import Path

from .bpe import BPETokenizer, read_json

# "type" field -> (module, class). Imported only when that type is requested, so using BPE never
# needs the sentencepiece library and a missing module fails loudly instead of silently.
TOKENIZER_TYPES = {
    "bpe": (".bpe", "BPETokenizer"),
    "sentencepiece": (".sentencepiece_tokenizer", "SentencePieceTokenizer"),
}


TOKENIZER_FILE = "tokenizer.json"
GPT2_FILES = ("vocab.json", "merges.txt")


def tokenizer_file(path) -> Path:
    """The tokenizer file ``path`` means: the file itself, ``DIR/tokenizer.json``,
    ``DIR/model/tokenizer.json`` (a run directory) or ``DIR/vocab.json`` (GPT-2 files).
    Nothing there -> CheckpointError saying what was found instead."""
    from ..errors import CheckpointError
    p = Path(path)
    if p.is_dir():
        for cand in (p / TOKENIZER_FILE, p / "model" / TOKENIZER_FILE):
            if cand.is_file():
                return cand
        if all((p / f).is_file() for f in GPT2_FILES):
            return p / GPT2_FILES[0]
        found = sorted(x.name for x in p.iterdir())[:6]
        raise CheckpointError(f"{path}: no tokenizer.json in this directory (it holds: "
                              f"{', '.join(found) or 'nothing'}); pass a tokenizer.json or the model directory")
    if not p.exists():
        raise CheckpointError(f"{path}: no such file or directory (expected a tokenizer file: tokenizer.json or a directory holding one)")
    if p.name in GPT2_FILES and not (p.parent / GPT2_FILES[1 - GPT2_FILES.index(p.name)]).is_file():
        other = GPT2_FILES[1 - GPT2_FILES.index(p.name)]
        raise CheckpointError(f"{path}: a GPT-2 {p.name} needs its {other} in the same directory")
    if p.name == GPT2_FILES[1]:
        return p.parent / GPT2_FILES[0]
    return p


def load_tokenizer(path):
    """Load any tokenizer saved by this package, a HF tokenizer.json byte-level BPE or GPT-2
    vocab.json + merges.txt; ``path`` may be a directory (see ``tokenizer_file``)."""
    import importlib

    from ..errors import CheckpointError
    path = tokenizer_file(path)
    if path.name == GPT2_FILES[0] and (path.parent / GPT2_FILES[1]).is_file():
        return BPETokenizer.from_gpt2(path, path.parent / GPT2_FILES[1])
    data = read_json(path)
    if not isinstance(data, dict):
        raise CheckpointError(f"tokenizer file {path} holds {type(data).__name__}, expected a JSON object")
    kind = data.get("type")
    if kind is None and isinstance(data.get("model"), dict):  # a Hugging Face tokenizer.json
        return BPETokenizer.from_huggingface(path)
    if kind not in TOKENIZER_TYPES:
        what = "no \"type\" field" if kind is None else f"type {kind!r}"
        raise CheckpointError(f"{path}: not a tokenizer file this package reads ({what}; expected a type in "
                              f"{sorted(TOKENIZER_TYPES)} or a Hugging Face tokenizer.json)")
    module_name, class_name = TOKENIZER_TYPES[kind]
    cls = getattr(importlib.import_module(module_name, __name__), class_name)
    return cls.load(path)


def __getattr__(name):
    if name == "SentencePieceTokenizer":
        from .sentencepiece_tokenizer import SentencePieceTokenizer
        return SentencePieceTokenizer
    raise AttributeError(name)


__all__ = ["BPETokenizer", "SentencePieceTokenizer", "load_tokenizer", "tokenizer_file", "TOKENIZER_TYPES"]
