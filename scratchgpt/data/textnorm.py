"""Text normalization shared by cleaning and dedup.

Order matters for idempotence: control characters go first (removing one can bring a base
letter and a combining mark together, which NFKC then composes), then NFKC (which can turn
compatibility spaces such as U+3000 or U+00A0 into ordinary spaces), then whitespace.
NFKC also maps full-width ASCII forms (``，？！０-９Ａ-Ｚ``) to their ASCII twins, so Chinese
text ends up with ASCII commas and question marks; ``。`` and ``、`` are not compatibility
characters and stay.
"""
from __future__ import annotations

import re
import unicodedata

# Invisible characters that are not category Cc but still break dedup and tokenization.
_ZERO_WIDTH = {"\u200b", "\u200c", "\u200e", "\u200f", "\u2060", "\ufeff", "\u00ad"}
_NA_STRINGS = {"", "nan", "na", "n/a", "null", "<na>"}
_SPACES = re.compile(r"[^\S\n]+")        # whitespace except newline
_ALL_WS = re.compile(r"\s+")
_MANY_NEWLINES = re.compile(r"\n{3,}")


def remove_control(text: str, keep_newlines: bool = False) -> str:
    out = []
    for ch in text:
        if ch in _ZERO_WIDTH:
            continue
        if unicodedata.category(ch) == "Cc" and not (keep_newlines and ch in "\n\t"):
            # a tab or CR between words must still separate them
            out.append(" " if ch in "\t\r\n\x0b\x0c" else "")
            continue
        out.append(ch)
    return "".join(out)


def normalize_turn(text: str) -> str:
    """One chat turn: a single line, single spaces, NFKC."""
    text = remove_control(text)
    text = unicodedata.normalize("NFKC", text)
    return _ALL_WS.sub(" ", text).strip()


def normalize_document(text: str) -> str:
    """Pretraining text: keep paragraph structure (newlines), clean everything else."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = remove_control(text, keep_newlines=True)
    text = unicodedata.normalize("NFKC", text)
    lines = [_SPACES.sub(" ", ln).strip() for ln in text.split("\n")]
    text = "\n".join(lines)
    return _MANY_NEWLINES.sub("\n\n", text).strip()


def is_na(text) -> bool:
    """Empty or a spreadsheet NA marker ("NaN", "N/A", "null"). "None" is NOT NA: it is a real answer."""
    return text is None or str(text).strip().lower() in _NA_STRINGS
