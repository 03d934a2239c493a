"""Chapter helpers for "text -> ids" (ch3 §3.2.1, ch4 §4.2.1): BPE step by step, then fast
tokenizers side by side on English and Chinese.

Both functions print what they show and return it, so a chapter script can print it and a
test can check it. Every number is computed here from the text given.

    from scratchgpt.chapters.tokenization_walkthrough import show_merges_step_by_step
    show_merges_step_by_step(["low low low lower", "newest newest widest"], 5)
"""
from __future__ import annotations

import time

from ..tokenizer import bpe_ref


def _show(data: bytes) -> str:
    """A token's bytes as readable text; bytes that are not whole UTF-8 characters as \\x.."""
    return data.decode("utf-8", errors="backslashreplace")


def _segmentation(ids, id_to_bytes) -> str:
    # "␣" makes a token's leading space visible: " low" and "low" are different tokens
    return " ".join(_show(id_to_bytes[i]).replace(" ", "\u2423") for i in ids)


def show_merges_step_by_step(corpus_lines, n_merges: int, print_fn=print, max_words: int = 8) -> list[str]:
    """Learn ``n_merges`` BPE merges on a tiny corpus with the readable ``bpe_ref`` and show each one.

    For every step: the pair merged, how many times it occurred in the corpus at that moment
    (counted over the pre-tokenized words, weighted by each word's frequency), the new token,
    and how the most frequent words are segmented afterwards. The merges are ``bpe_ref``'s own
    choices (``bpe_ref.learn_merges``); this function only replays them to report the counts.
    Returns the printed lines.
    """
    lines: list[str] = []

    def say(s: str = "") -> None:
        lines.append(s)
        print_fn(s)

    word_counts = bpe_ref.count_words(corpus_lines)
    merges = bpe_ref.learn_merges(word_counts, n_merges)
    id_to_bytes = [bytes([b]) for b in range(256)]
    words = [list(bpe_ref.to_bytes(w)) for w in word_counts]
    freqs = list(word_counts.values())
    shown = sorted(range(len(words)), key=lambda k: (-freqs[k], k))[:max_words]

    say(f"corpus: {len(corpus_lines)} lines -> {len(words)} distinct pre-tokens "
        f"({sum(freqs)} in all), {sum(len(w) * f for w, f in zip(words, freqs))} byte tokens")
    say("start: every word is a sequence of bytes (ids 0..255)")
    for k in shown:
        say(f"  {freqs[k]:4d} x  {_segmentation(words[k], id_to_bytes)}")
    for step, pair in enumerate(merges):
        count = bpe_ref.count_pairs(words, freqs)[pair]
        new_id = 256 + step
        id_to_bytes.append(id_to_bytes[pair[0]] + id_to_bytes[pair[1]])
        words = [bpe_ref.merge_word(w, pair, new_id) for w in words]
        n_tokens = sum(len(w) * f for w, f in zip(words, freqs))
        a, b, ab = (_show(id_to_bytes[i]).replace(" ", "\u2423") for i in (pair[0], pair[1], new_id))
        say(f"merge {step + 1}: {a!r} + {b!r} -> {ab!r} (id {new_id}), seen {count} times; "
            f"corpus now {n_tokens} tokens")
        for k in shown:
            say(f"  {freqs[k]:4d} x  {_segmentation(words[k], id_to_bytes)}")
    if len(merges) < n_merges:
        say(f"stopped after {len(merges)} merges: no adjacent pair left to merge")
    return lines


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines(keepends=True) if line.strip()]


def compare_fast_tokenizers(english_text: str, chinese_text: str, vocab_size: int = 1000,
                            print_fn=print) -> list[dict]:
    """Train our byte-level BPE, sentencepiece-BPE and sentencepiece-Unigram on both texts
    (same vocab_size), then measure each on English and on Chinese separately.

    Returns one row per tokenizer: name, vocab (the real size; sentencepiece may stop below
    ``vocab_size`` on a small corpus), train_s, and per language tokens/char (lower = fewer
    steps for the model) and bytes/token (UTF-8 bytes per token = compression). Measured on
    the training text itself, so these are best-case numbers for each tokenizer.
    """
    from ..tokenizer import BPETokenizer
    from ..tokenizer.sentencepiece_tokenizer import SentencePieceTokenizer

    en, zh = _lines(english_text), _lines(chinese_text)
    if not en or not zh:
        from ..errors import DataError
        raise DataError("compare_fast_tokenizers: both english_text and chinese_text need some non-blank lines")
    corpus = en + zh
    builders = [
        ("bpe (ours)", lambda: BPETokenizer.train(corpus, vocab_size)),
        ("sentencepiece-bpe", lambda: SentencePieceTokenizer.train(corpus, vocab_size, model_type="bpe")),
        ("sentencepiece-unigram", lambda: SentencePieceTokenizer.train(corpus, vocab_size, model_type="unigram")),
    ]
    rows, toks = [], []
    for name, build in builders:
        t0 = time.perf_counter()
        tok = build()
        row = {"tokenizer": name, "vocab": tok.vocab_size, "train_s": time.perf_counter() - t0}
        for lang, texts in (("en", en), ("zh", zh)):
            n_chars = sum(len(t) for t in texts)
            n_bytes = sum(len(t.encode("utf-8")) for t in texts)
            n_tokens = sum(len(tok.encode(t)) for t in texts)
            row[f"{lang}_tokens"] = n_tokens
            row[f"{lang}_tokens_per_char"] = n_tokens / n_chars
            row[f"{lang}_bytes_per_token"] = n_bytes / n_tokens
        rows.append(row)
        toks.append((name, tok))

    print_fn(f"trained on {sum(len(t) for t in en):,} English + {sum(len(t) for t in zh):,} Chinese characters, "
             f"vocab_size {vocab_size}; measured on the same text")
    print_fn(f"{'tokenizer':24s} {'vocab':>6s} {'train s':>8s} | {'EN tok/char':>11s} {'EN B/tok':>8s} | "
             f"{'ZH tok/char':>11s} {'ZH B/tok':>8s}")
    for r in rows:
        print_fn(f"{r['tokenizer']:24s} {r['vocab']:6d} {r['train_s']:8.3f} | {r['en_tokens_per_char']:11.3f} "
                 f"{r['en_bytes_per_token']:8.2f} | {r['zh_tokens_per_char']:11.3f} {r['zh_bytes_per_token']:8.2f}")
    cjk = [t.strip() for t in zh if sum("\u4e00" <= ch <= "\u9fff" for ch in t) >= 8]
    sample = (cjk[0] if cjk else zh[0].strip())[:30]
    print_fn(f"how each splits {sample!r}:")
    for name, tok in toks:
        ids = tok.encode(sample)
        print_fn(f"  {name:24s} {len(ids):3d} tokens: " + " | ".join(_show(tok.id_to_token_bytes(i)) for i in ids))
    return rows
