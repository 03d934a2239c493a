"""Tokenizers: text <-> token ids.

``BPETokenizer`` (byte-level BPE, ours, Cython + a pure-Python twin) and
``SentencePieceTokenizer`` (a wrapper over the sentencepiece library) share one interface;
``load_tokenizer(path)`` reads the "type" field of a saved tokenizer JSON and builds the right one.
"""
from .bpe import BPETokenizer, read_json

# "type" field -> (module, class). Imported only when that type is requested, so using BPE never
# needs the sentencepiece library and a missing module fails loudly instead of silently.
TOKENIZER_TYPES = {
    "bpe": (".bpe", "BPETokenizer"),
    "sentencepiece": (".sentencepiece_tokenizer", "SentencePieceTokenizer"),
}


def load_tokenizer(path):
    """Load any tokenizer saved by this package (or a HF tokenizer.json byte-level BPE)."""
    import importlib

    from ..errors import CheckpointError
    data = read_json(path)
    if not isinstance(data, dict):
        raise CheckpointError(f"tokenizer file {path} holds {type(data).__name__}, expected a JSON object")
    kind = data.get("type")
    if kind is None and isinstance(data.get("model"), dict):  # a Hugging Face tokenizer.json
        return BPETokenizer.from_huggingface(path)
    if kind not in TOKENIZER_TYPES:
        raise CheckpointError(f"tokenizer file {path} has type {kind!r}; expected one of {sorted(TOKENIZER_TYPES)}")
    module_name, class_name = TOKENIZER_TYPES[kind]
    cls = getattr(importlib.import_module(module_name, __name__), class_name)
    return cls.load(path)


def __getattr__(name):
    if name == "SentencePieceTokenizer":
        from .sentencepiece_tokenizer import SentencePieceTokenizer
        return SentencePieceTokenizer
    raise AttributeError(name)


__all__ = ["BPETokenizer", "SentencePieceTokenizer", "load_tokenizer", "TOKENIZER_TYPES"]
