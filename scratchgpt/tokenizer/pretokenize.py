"""Pre-tokenization: cut text into pieces before BPE, so merges never cross piece boundaries.

Why: without it BPE happily learns tokens like "dog." and "dog!" and "dog?" — wasted vocab.
GPT-2 cuts text with one regular expression; we do the same cut with a hand-written scanner
(this file is the readable version; ``_bpe.pyx`` has the same scanner in Cython). We do not use
a regex engine because Python's ``re`` has no ``\\p{L}`` (letter) class and the ``regex`` package
is not a dependency; a scanner over a character-class table is also several times faster.

Two modes (the mode name is saved with every tokenizer):

``"gpt2"``  exactly the GPT-2 / Hugging Face ``ByteLevel`` pre-tokenizer regex
            ``'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+``.
            Used for files imported from HF / GPT-2, so our ids equal theirs id for id.
``"scratchgpt"`` our default for training; GPT-2's rules with three changes:
            * contractions are matched in either ASCII case ("DON'T" -> "DON", "'T");
            * digits are cut into groups of at most 3 (" 12345" -> " 123", "45"), as GPT-4 does,
              so numbers do not eat the vocabulary;
            * a run of CJK characters (Han ideographs, Hiragana, Katakana) is its own class,
              without the optional leading space, cut into chunks of at most 4 characters.
              Chinese/Japanese have no spaces, so a whole clause would otherwise be one piece:
              every piece unique, nothing for the word counter to share, and the encode cache
              would miss. Most Chinese words are 1-4 characters, so merges still learn words.
              (Rejected: one piece per character — then BPE can never learn a word.)
``"scratchgpt-values"`` "scratchgpt" with two more changes, so that a value the user typed
            (an order number, an amount, an e-mail) is the same token sequence wherever it
            stands — after a space, after a Chinese character, at the start of a turn, after
            "#" or ":" — and a model can copy it token for token (issue 9):
            * every digit is its own piece (" 145978" -> " ", "1", "4", "5", "9", "7", "8"),
              so no digit group is a token the model must learn to split or rebuild;
            * a space is NOT glued onto a *value-like word*: the run of non-space, non-CJK
              characters after it contains a digit or "@" ("SG-145978", "$35.49",
              "ben.t42@example.com", "42"). " SG-145978" -> " ", "SG", "-", "1", ...; the same
              value after "订单" or at the start is "SG", "-", "1", ... too. Ordinary words
              keep their leading space (" refund"), so plain text grows by only a few tokens.

Character classes. ``\\p{L}`` = Unicode categories Lu Ll Lt Lm Lo, ``\\p{N}`` = Nd Nl No (from
Python's ``unicodedata``), ``\\s`` = the Unicode White_Space property — the set Oniguruma (HF's
regex engine) uses, which is NOT ``str.isspace()`` (that one also counts U+001C..U+001F).
Everything else, including lone surrogates, unassigned code points and combining marks, is
"other" (punctuation-like). So any str can be split; nothing raises.
"""
from __future__ import annotations

import unicodedata
from dataclasses import dataclass

OTHER, LETTER, NUMBER, SPACE, CJK = 0, 1, 2, 3, 4

# Unicode White_Space (what Oniguruma's \s matches with Unicode on).
WHITE_SPACE = (
    [0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x20, 0x85, 0xA0, 0x1680]
    + list(range(0x2000, 0x200B))
    + [0x2028, 0x2029, 0x202F, 0x205F, 0x3000]
)

# Code point ranges whose letters count as CJK in "scratchgpt" mode (scripts written without spaces).
CJK_RANGES = (
    (0x3040, 0x30FF),    # Hiragana, Katakana
    (0x31F0, 0x31FF),    # Katakana phonetic extensions
    (0x3400, 0x4DBF),    # CJK Extension A
    (0x4E00, 0x9FFF),    # CJK Unified Ideographs
    (0xF900, 0xFAFF),    # CJK Compatibility Ideographs
    (0xFF66, 0xFF9D),    # Halfwidth Katakana
    (0x20000, 0x3FFFF),  # CJK Extensions B.. (planes 2 and 3)
)

_CATEGORY_CLASS = {"Lu": LETTER, "Ll": LETTER, "Lt": LETTER, "Lm": LETTER, "Lo": LETTER,
                   "Nd": NUMBER, "Nl": NUMBER, "No": NUMBER}
_TABLE: bytes | None = None


def class_table() -> bytes:
    """One class byte per code point 0..0x10FFFF (built once, ~0.1 s, then cached).

    This is the readable reference; the Cython backend builds the same bytes in C
    (``_bpe.build_class_table``, checked equal by a test)."""
    global _TABLE
    if _TABLE is None:
        get = _CATEGORY_CLASS.get
        table = bytearray(map(get, map(unicodedata.category, map(chr, range(0x110000))),
                              [OTHER] * 0x110000))
        for cp in WHITE_SPACE:
            table[cp] = SPACE
        for lo, hi in CJK_RANGES:  # only the letters of these blocks (not e.g. U+30FB, a Po)
            table[lo:hi + 1] = table[lo:hi + 1].replace(bytes([LETTER]), bytes([CJK]))
        _TABLE = bytes(table)
    return _TABLE


@dataclass(frozen=True)
class Mode:
    name: str
    case_insensitive_contractions: bool
    max_digits: int   # 0 = a digit run of any length is one piece
    cjk_chunk: int    # 0 = CJK letters are ordinary letters; else max CJK chars per piece
    values_apart: bool = False  # no leading space on value-like words (digit or "@" inside)


MODES = {
    "gpt2": Mode("gpt2", False, 0, 0),
    "scratchgpt": Mode("scratchgpt", True, 3, 4),
    "scratchgpt-values": Mode("scratchgpt-values", True, 1, 4, values_apart=True),
}
DEFAULT_MODE = "scratchgpt"


def get_mode(name: str) -> Mode:
    from ..errors import ConfigError
    if name not in MODES:
        raise ConfigError(f"pretokenizer must be one of {sorted(MODES)}, got {name!r}")
    return MODES[name]


_CONTRACTIONS = ("s", "t", "re", "ve", "m", "ll", "d")


def split_ref(text: str, mode: str = DEFAULT_MODE) -> list[str]:
    """Cut ``text`` into pre-tokens; ``"".join(split_ref(t)) == t`` always."""
    cfg = get_mode(mode)
    table = class_table()
    classes = [table[ord(ch)] for ch in text]
    if cfg.cjk_chunk == 0:  # GPT-2 does not know about CJK: they are letters
        classes = [LETTER if c == CJK else c for c in classes]
    pieces, i = [], 0
    while i < len(text):
        j = _match_at(text, classes, i, cfg)
        pieces.append(text[i:j])
        i = j
    return pieces


def _run_end(classes, start, cls, limit):
    """End of the run of class ``cls`` starting at ``start``, at most ``limit`` long (0 = no limit)."""
    j = start
    while j < len(classes) and classes[j] == cls and (limit == 0 or j - start < limit):
        j += 1
    return j


def _value_like(text, classes, k):
    """Does the run of non-space, non-CJK characters starting at ``k`` hold a digit or "@"?"""
    while k < len(text) and classes[k] not in (SPACE, CJK):
        if classes[k] == NUMBER or text[k] == "@":
            return True
        k += 1
    return False


def _match_at(text, classes, i, cfg):
    """End of the piece starting at ``i``: the regex alternatives above, tried in order."""
    n = len(text)
    # 1. contractions: 's 't 're 've 'm 'll 'd (ASCII apostrophe only)
    if text[i] == "'":
        for suffix in _CONTRACTIONS:
            seg = text[i + 1:i + 1 + len(suffix)]
            if seg == suffix or (cfg.case_insensitive_contractions and seg.isascii()
                                 and seg.lower() == suffix):
                return i + 1 + len(suffix)
    # 2-4. an optional single U+0020 space, then a run of letters / numbers / other
    start, cls = i, classes[i]
    if (text[i] == " " and i + 1 < n and classes[i + 1] in (LETTER, NUMBER, OTHER)
            and not (cfg.values_apart and _value_like(text, classes, i + 1))):
        start, cls = i + 1, classes[i + 1]
    if cls == LETTER or cls == OTHER:
        return _run_end(classes, start, cls, 0)
    if cls == NUMBER:
        return _run_end(classes, start, cls, cfg.max_digits)
    if cls == CJK:
        return _run_end(classes, start, cls, cfg.cjk_chunk)
    # 5-6. whitespace: \s+(?!\S) keeps the last space of a run for the next word; \s+ otherwise
    j = _run_end(classes, i, SPACE, 0)
    if j == n or j - i == 1:
        return j
    return j - 1
