"""Cleaning: every record in, each one kept or dropped with a reason in the Report.

Conversation steps, in order:
1. turns: NFKC, control characters, whitespace (``textnorm.normalize_turn``); a turn that is
   empty or an NA marker ("", "NaN", "N/A", "null") is dropped (counted per turn).
2. a conversation left without an assistant reply (or without a user turn before it) is dropped.
3. length: a turn longer than ``max_turn_chars`` or a conversation shorter than
   ``min_chars`` / longer than ``max_tokens`` tokens drops the conversation (we never cut a
   reply in half: a truncated answer teaches the model to stop mid-sentence).
4. language (by script) and an optional language filter.
5. exact duplicates, then near-duplicates (MinHash/LSH), across the whole stream.

Documents get the same treatment with ``normalize_document`` (paragraphs kept).

``Cleaner`` is stateful (the dedup indexes), so a stream of chunks is deduplicated as a whole.
Cleaning is idempotent: every step maps its own output to itself.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from .dedup import ExactDeduper, MinHashLSH
from .language import detect_language
from .records import Conversation, Document, Message
from .report import Report
from .textnorm import is_na, normalize_document, normalize_turn

_WORDISH = re.compile(r"[A-Za-z0-9\u00c0-\u024f]+|[^\sA-Za-z0-9\u00c0-\u024f]")


def approx_tokens(text: str) -> int:
    """Token count without a tokenizer: a word, a digit run or one other character (a Han
    character, a punctuation mark) counts as one. Used when no tokenizer is given."""
    return len(_WORDISH.findall(text))


@dataclass
class CleanConfig:
    min_chars: int = 2                # whole conversation / document, after normalization
    max_turn_chars: int = 2000
    max_doc_chars: int = 1_000_000
    max_tokens: int | None = 1024     # whole conversation; None = no limit
    languages: tuple | None = None    # e.g. ("en", "zh"); None keeps every language
    exact_dedup: bool = True
    near_dedup: bool = True
    near_threshold: float = 0.8
    near_min_chars: int = 40          # shorter texts skip near-dup: "hi"/"hi!" are different replies
    shingle_size: int = 4
    num_perm: int = 64
    bands: int = 16
    seed: int = 0


@dataclass
class Cleaner:
    config: CleanConfig = field(default_factory=CleanConfig)
    report: Report = field(default_factory=Report)
    tokenizer: object = None          # anything with encode(str) -> list[int]

    def __post_init__(self):
        c = self.config
        self.exact = ExactDeduper()
        self.near = MinHashLSH(c.num_perm, c.bands, c.near_threshold, c.shingle_size, c.seed)

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text)) if self.tokenizer is not None else approx_tokens(text)

    # -- conversations -----------------------------------------------------------------------
    def clean_conversation(self, conv: Conversation):
        """The cleaned conversation, or None (with the reason recorded)."""
        rep, cfg = self.report, self.config
        msgs = []
        for m in conv.messages:
            if is_na(m.content):
                rep.drop("clean.turns", f"empty/NA {m.role} turn")
                continue
            text = normalize_turn(m.content)
            if not text:
                rep.drop("clean.turns", f"{m.role} turn empty after normalization")
                continue
            if text != m.content:
                rep.modify("clean.turns", "normalized")
            rep.keep("clean.turns")
            msgs.append(Message(m.role, text))
        roles = [m.role for m in msgs]
        if "assistant" not in roles:
            rep.drop("clean.structure", "no assistant reply", example=conv.source)
            return None
        if "user" not in roles[:roles.index("assistant")] and roles[0] != "system":
            rep.drop("clean.structure", "assistant reply without a user turn before it", example=conv.source)
            return None
        rep.keep("clean.structure")
        out = Conversation(msgs, topic=conv.topic, language=conv.language, source=conv.source,
                           id=conv.id, augmented_from=conv.augmented_from, meta=conv.meta)
        text = out.text()
        if len(text) < cfg.min_chars:
            rep.drop("clean.length", f"shorter than {cfg.min_chars} chars", example=conv.source)
            return None
        if any(len(m.content) > cfg.max_turn_chars for m in msgs):
            rep.drop("clean.length", f"a turn longer than {cfg.max_turn_chars} chars", example=conv.source)
            return None
        if cfg.max_tokens is not None and self.count_tokens(text) > cfg.max_tokens:
            rep.drop("clean.length", f"longer than {cfg.max_tokens} tokens", example=conv.source)
            return None
        rep.keep("clean.length")
        return out if self._language_and_dedup(out, text) else None

    # -- documents ---------------------------------------------------------------------------
    def clean_document(self, doc: Document):
        rep, cfg = self.report, self.config
        text = normalize_document(doc.text)
        if text != doc.text:
            rep.modify("clean.normalize", "normalized")
        rep.keep("clean.normalize")
        if len(text) < cfg.min_chars:
            rep.drop("clean.length", f"shorter than {cfg.min_chars} chars", example=doc.source)
            return None
        if len(text) > cfg.max_doc_chars:
            rep.drop("clean.length", f"document longer than {cfg.max_doc_chars} chars", example=doc.source)
            return None
        rep.keep("clean.length")
        out = Document(text, source=doc.source, id=doc.id, language=doc.language)
        return out if self._language_and_dedup(out, text) else None

    def clean(self, rec):
        return self.clean_conversation(rec) if isinstance(rec, Conversation) else self.clean_document(rec)

    # -- shared ------------------------------------------------------------------------------
    def _language_and_dedup(self, rec, text: str) -> bool:
        rep, cfg = self.report, self.config
        detected = detect_language(text)
        if rec.language and rec.language != detected:
            rep.modify("clean.language", f"label {rec.language} -> detected {detected}")
        rec.language = detected
        if cfg.languages is not None and detected not in cfg.languages:
            rep.drop("clean.language", f"language {detected} not in {list(cfg.languages)}", example=text[:80])
            return False
        rep.keep("clean.language")
        if cfg.exact_dedup:
            first = self.exact.check(text, rec.id)
            if first is not None:
                rep.drop("dedup.exact", "exact duplicate", example=f"{rec.id} = {first}")
                return False
            rep.keep("dedup.exact")
        if cfg.near_dedup:
            if len(text) < cfg.near_min_chars:
                rep.modify("dedup.near", f"skipped: shorter than {cfg.near_min_chars} chars")
                rep.keep("dedup.near")
                return True
            hit = self.near.check(text, rec.id)
            if hit is not None:
                rep.drop("dedup.near", f"near duplicate (Jaccard >= {cfg.near_threshold})",
                         example=f"{rec.id} ~ {hit[0]} ({hit[1]:.2f})")
                return False
            rep.keep("dedup.near")
        return True
