"""Opt-in, seeded data augmentation: EDA rewriting and back-translation.

EDA (Wei & Zou, 2019, "Easy Data Augmentation"): each augmented copy applies ONE of
- synonym replacement (SR): replace n = max(1, alpha_sr * words) words by a synonym,
- random insertion (RI): insert a synonym of a random word at a random place, n times,
- random swap (RS): swap two words, n times,
- random deletion (RD): delete each word with probability p_rd (never all of them).
Synonyms come from ``synonyms.py``, a small table written for this project.

What is rewritten: only the *user* turns by default. The assistant replies are the training
targets; a reply with a deleted word teaches the model broken answers. Slot values
(``meta["slots"]``: order numbers, product names) and anything with a digit or '#' are
protected — the reply echoes them, so deleting one from the question would make the pair wrong.

Chinese has no spaces: we segment greedily against the synonym table (longest match first),
other Han characters become one-character units, Latin/digit runs stay whole. This is cruder
than a real segmenter (e.g. jieba), so swap/deletion in Chinese work on characters outside
the table's words.

Every copy is marked: ``augmented_from`` = the source id, ``meta["augment"]`` = the operation,
``id`` = ``<source id>#aug<k>``. The pipeline augments only conversations already assigned to
the train split, and the split hashes ``augmented_from``, so no copy reaches val/test.

Back-translation: ``back_translate(conv, translator)`` sends each user turn to a pivot
language and back through a ``Translator`` — any callable ``(text, src, tgt) -> str``. Real
back-translation needs a translation model (e.g. a trained seq2seq model); this package ships
the interface, and its tests use a deterministic fake translator. Nothing here pretends to
translate.
"""
from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Callable

from .records import Conversation, Message
from .synonyms import SYNONYMS_EN, SYNONYMS_ZH, ZH_WORDS

Translator = Callable[[str, str, str], str]  # (text, source language, target language) -> text

EDA_OPS = ("synonym_replacement", "random_insertion", "random_swap", "random_deletion")
_PUNCT_EDGES = ".,!?;:'\"()[]"


@dataclass(frozen=True)
class AugmentConfig:
    num_aug: int = 2          # copies per conversation
    alpha_sr: float = 0.1
    alpha_ri: float = 0.1
    alpha_rs: float = 0.1
    p_rd: float = 0.1
    ops: tuple = EDA_OPS
    roles: tuple = ("user",)  # which turns are rewritten
    seed: int = 0


# -- tokens: (text, kind) with kind "word" (may change), "fixed" (protected), "sep" (spaces/punct)
def _tokens(text: str, lang: str, protected: list[str]) -> list[list]:
    parts = [text]
    for value in sorted(protected, key=len, reverse=True):  # cut slot values out first, longest first
        nxt = []
        for p in parts:
            if isinstance(p, tuple):
                nxt.append(p)
                continue
            pieces = p.split(value)
            for i, piece in enumerate(pieces):
                if i:
                    nxt.append((value,))
                nxt.append(piece)
        parts = nxt
    out: list[list] = []
    for p in parts:
        if isinstance(p, tuple):
            out.append([p[0], "fixed"])
            continue
        i = 0
        while i < len(p):
            ch = p[i]
            if ch.isspace():
                j = i
                while j < len(p) and p[j].isspace():
                    j += 1
                out.append([p[i:j], "sep"])
                i = j
                continue
            if lang == "zh" and not ch.isascii():
                word = next((w for w in ZH_WORDS if p.startswith(w, i)), None) or ch
                kind = "word" if ch.isalpha() else "sep"
                out.append([word, kind])
                i += len(word)
                continue
            j = i
            while j < len(p) and not p[j].isspace() and (p[j].isascii() or lang != "zh"):
                j += 1
            tok = p[i:j]
            kind = "fixed" if any(c.isdigit() for c in tok) or "#" in tok else "word"
            if not any(c.isalnum() for c in tok):
                kind = "sep"
            out.append([tok, kind])
            i = j
    return out


def _core(tok: str) -> tuple[str, str, str]:
    """Split 'order?' into ('', 'order', '?') so the synonym lookup sees the bare word."""
    core = tok.strip(_PUNCT_EDGES)
    if not core:
        return "", tok, ""
    start = tok.index(core)
    return tok[:start], core, tok[start + len(core):]


def _synonym(word: str, lang: str, rng: random.Random):
    table = SYNONYMS_ZH if lang == "zh" else SYNONYMS_EN
    pre, core, post = _core(word)
    cands = table.get(core.lower())
    if not cands:
        return None
    syn = rng.choice(cands)
    if core[:1].isupper():
        syn = syn[:1].upper() + syn[1:]
    return pre + syn + post


def _has_synonym(word: str, lang: str) -> bool:
    return _core(word)[1].lower() in (SYNONYMS_ZH if lang == "zh" else SYNONYMS_EN)


def eda(text: str, op: str, lang: str, rng: random.Random, cfg: AugmentConfig, protected=()) -> str:
    toks = _tokens(text, lang, list(protected))
    words = [i for i, t in enumerate(toks) if t[1] == "word"]
    if not words:
        return text
    space = "" if lang == "zh" else " "
    if op == "synonym_replacement":
        n = max(1, int(cfg.alpha_sr * len(words)))
        cands = [i for i in words if _has_synonym(toks[i][0], lang)]
        rng.shuffle(cands)
        for i in cands[:n]:
            toks[i][0] = _synonym(toks[i][0], lang, rng)
    elif op == "random_insertion":
        n = max(1, int(cfg.alpha_ri * len(words)))
        # the words themselves, not their indices: each insertion shifts the indices
        with_syn = [toks[i][0] for i in words if _has_synonym(toks[i][0], lang)]
        for _ in range(n):
            if not with_syn:
                break
            syn = _synonym(rng.choice(with_syn), lang, rng)
            _, bare, _ = _core(syn)
            at = rng.randrange(len(toks) + 1)
            toks.insert(at, [bare + space if space else bare, "sep"])
    elif op == "random_swap":
        n = max(1, int(cfg.alpha_rs * len(words)))
        for _ in range(n):
            if len(words) < 2:
                break
            a, b = rng.sample(words, 2)
            toks[a][0], toks[b][0] = toks[b][0], toks[a][0]
    elif op == "random_deletion":
        doomed = [i for i in words if rng.random() < cfg.p_rd]
        if len(doomed) == len(words):  # keep at least one word
            doomed = doomed[:-1]
        for i in doomed:
            toks[i][0] = ""
    else:
        raise ValueError(f"unknown EDA operation {op!r}; expected one of {EDA_OPS}")
    out = "".join(t[0] for t in toks)
    return " ".join(out.split()) if lang != "zh" else re.sub(r"\s{2,}", " ", out).strip()


def _slot_values(conv: Conversation) -> list[str]:
    slots = conv.meta.get("slots") or {}
    return [str(v) for v in slots.values() if str(v)]


def augment_conversation(conv: Conversation, cfg: AugmentConfig) -> list[Conversation]:
    """``cfg.num_aug`` EDA copies (fewer when a rewrite changes nothing). Seeded by (seed, id),
    so a conversation gets the same copies whatever else is in the corpus."""
    rng = random.Random(f"{cfg.seed}:{conv.id}")
    lang = conv.language or "en"
    protected = _slot_values(conv)
    copies = []
    for k in range(cfg.num_aug):
        op = rng.choice(cfg.ops)
        msgs = [Message(m.role, eda(m.content, op, lang, rng, cfg, protected) if m.role in cfg.roles else m.content)
                for m in conv.messages]
        if all(a.content == b.content for a, b in zip(msgs, conv.messages)):
            continue
        if any(not m.content.strip() for m in msgs):
            continue
        copies.append(Conversation(msgs, topic=conv.topic, language=conv.language, source=conv.source,
                                   id=f"{conv.id}#aug{k}", augmented_from=conv.id,
                                   meta={**conv.meta, "augment": op}))
    return copies


def back_translate(conv: Conversation, translator: Translator, pivot: str | None = None,
                   roles=("user",)) -> Conversation:
    """One copy whose ``roles`` turns went source -> pivot -> source through ``translator``."""
    lang = conv.language or "en"
    pivot = pivot or ("en" if lang == "zh" else "zh")
    msgs = [Message(m.role, translator(translator(m.content, lang, pivot), pivot, lang) if m.role in roles
                    else m.content) for m in conv.messages]
    return Conversation(msgs, topic=conv.topic, language=conv.language, source=conv.source,
                        id=f"{conv.id}#bt-{pivot}", augmented_from=conv.id,
                        meta={**conv.meta, "augment": f"back_translation via {pivot}"})
