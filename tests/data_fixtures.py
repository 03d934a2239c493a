"""Shared helpers for the tests/test_data_*.py files: a tiny byte-level tokenizer with the
project's tokenizer interface (encode/decode/vocab_size/special_tokens), so the data code is
tested independently of the real tokenizers, and small file writers."""
from __future__ import annotations

import re
from pathlib import Path

from scratchgpt.tokenizer.special import CHAT_SPECIAL_TOKENS


class ByteTokenizer:
    """ids 0..255 = UTF-8 bytes; 256.. = the chat special tokens."""

    def __init__(self):
        self.special_tokens = {s: 256 + i for i, s in enumerate(CHAT_SPECIAL_TOKENS)}
        self._inv = {v: k for k, v in self.special_tokens.items()}
        self.vocab_size = 256 + len(CHAT_SPECIAL_TOKENS)

    def token_to_id(self, s):
        return self.special_tokens[s]

    def encode(self, text, allowed_special=()):
        if allowed_special == "all":
            allowed = set(self.special_tokens)
        else:
            allowed = set(allowed_special)
        if not allowed:
            return list(text.encode("utf-8"))
        pattern = "(" + "|".join(re.escape(s) for s in sorted(allowed, key=len, reverse=True)) + ")"
        ids = []
        for part in re.split(pattern, text):
            ids += [self.special_tokens[part]] if part in allowed else list(part.encode("utf-8"))
        return ids

    def decode(self, ids):
        out, buf = [], bytearray()
        for i in ids:
            i = int(i)
            if i in self._inv:
                out.append(buf.decode("utf-8", errors="replace"))
                buf = bytearray()
                out.append(self._inv[i])
            else:
                buf.append(i)
        out.append(buf.decode("utf-8", errors="replace"))
        return "".join(out)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path
