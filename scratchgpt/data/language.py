"""Language by script: good enough to tell Chinese from English (and both from the rest).

A Han character carries roughly as much meaning as an English word, so we compare the number
of Han characters with the number of Latin *words* (not letters — otherwise one English
product name in a Chinese sentence would outvote it). Kana or Hangul means Japanese/Korean,
which we label "other" rather than misfiling them as Chinese.
"""
from __future__ import annotations

import re
import unicodedata

LANGUAGES = ("en", "zh", "other", "unknown")
# chatterbot-corpus folder names -> our codes
CORPUS_LANGUAGE_CODES = {"english": "en", "chinese": "zh", "traditionalchinese": "zh"}

_LATIN_WORD = re.compile(r"[A-Za-z\u00c0-\u024f]+")


def _is_han(ch: str) -> bool:
    o = ord(ch)
    return (0x4E00 <= o <= 0x9FFF or 0x3400 <= o <= 0x4DBF or 0xF900 <= o <= 0xFAFF
            or 0x20000 <= o <= 0x2FA1F)


def _is_kana_or_hangul(ch: str) -> bool:
    o = ord(ch)
    return 0x3040 <= o <= 0x30FF or 0xAC00 <= o <= 0xD7AF or 0x1100 <= o <= 0x11FF


def script_counts(text: str) -> dict:
    han = kana = other_letters = 0
    for ch in text:
        if _is_han(ch):
            han += 1
        elif _is_kana_or_hangul(ch):
            kana += 1
        elif unicodedata.category(ch).startswith("L") and not ("A" <= ch <= "z" or "\u00c0" <= ch <= "\u024f"):
            other_letters += 1
    latin_words = len(_LATIN_WORD.findall(text))
    return {"han": han, "kana_hangul": kana, "latin_words": latin_words, "other_letters": other_letters}


def detect_language(text: str) -> str:
    c = script_counts(text)
    if c["kana_hangul"] > 0 and c["kana_hangul"] >= 0.1 * (c["han"] + c["kana_hangul"]):
        return "other"
    # other scripts (Cyrillic, Arabic, Devanagari ...): count ~5 letters as one word-like unit
    other_units = c["other_letters"] / 5.0
    total = c["han"] + c["latin_words"] + other_units
    if total == 0:
        return "unknown"
    if c["han"] / total >= 0.5:
        return "zh"
    if c["latin_words"] / total >= 0.5:
        return "en"
    return "other"
