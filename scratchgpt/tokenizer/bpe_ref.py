"""Byte-level BPE in plain Python — the version to read. ``_bpe.pyx`` is the fast twin and must
give the same merges and the same ids on every input (tests/test_bpe.py checks it).

Byte-level: text -> UTF-8 bytes, so the 256 byte values are the base tokens and ANY string can
be encoded (no unknown token). Lone surrogates (which UTF-8 cannot encode) are kept as their
3 "surrogatepass" bytes, so encoding never fails; decoding uses errors="replace", so those
bytes come back as U+FFFD characters.

Training (``train``):
1. pre-tokenize every text and count each distinct piece once ("word" -> frequency);
2. repeat: count every adjacent token pair over all words (weighted by frequency), take the
   most frequent pair, give it the next id, and replace it in every word (left to right,
   non-overlapping: "a a a" with merge (a, a) -> "aa a").
   Ties: the highest count wins; among equal counts the pair (left id, right id) that is
   smallest wins. (HF tokenizers breaks ties its own way, so we compare with HF by importing
   its merges, never by comparing training runs.)
   Training stops when the vocabulary is full or no pair is left.
This version recounts all pairs after every merge: O(merges x corpus), fine for a tiny corpus.
The Cython version updates only the pairs a merge touches, with a priority queue.

Encoding (``encode_piece``): start from the bytes of a pre-token; repeatedly find the adjacent
pair with the lowest merge rank (= learned earliest) and merge all its occurrences; stop when
no adjacent pair has a rank. This is GPT-2's algorithm, and equals HF tokenizers' BPE.
"""
from __future__ import annotations

from collections import Counter

from .pretokenize import DEFAULT_MODE, split_ref


def to_bytes(text: str) -> bytes:
    """UTF-8, keeping lone surrogates as bytes instead of raising (see module docstring)."""
    return text.encode("utf-8", "surrogatepass")


def count_words(texts, mode: str = DEFAULT_MODE) -> Counter:
    """Pre-token -> how often it occurs in ``texts``."""
    counts = Counter()
    for text in texts:
        counts.update(split_ref(text, mode))
    return counts


def merge_word(ids: list[int], pair: tuple[int, int], new_id: int) -> list[int]:
    """Replace every occurrence of ``pair`` in ``ids`` by ``new_id``, left to right."""
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and (ids[i], ids[i + 1]) == pair:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def count_pairs(words: list[list[int]], freqs: list[int]) -> Counter:
    counts = Counter()
    for ids, freq in zip(words, freqs):
        for pair in zip(ids, ids[1:]):
            counts[pair] += freq
    return counts


def train(texts, num_merges: int, mode: str = DEFAULT_MODE) -> list[tuple[int, int]]:
    """Learn up to ``num_merges`` merges; merge i creates token id 256 + i."""
    return learn_merges(count_words(texts, mode), num_merges)


def learn_merges(word_counts: dict, num_merges: int) -> list[tuple[int, int]]:
    """The merge loop over {pre-token str: frequency}."""
    words = [list(to_bytes(w)) for w in word_counts]
    freqs = list(word_counts.values())
    merges = []
    for step in range(num_merges):
        pairs = count_pairs(words, freqs)
        if not pairs:
            break
        # highest count first; on a tie the smallest (left, right) ids
        best = max(pairs, key=lambda p: (pairs[p], -p[0], -p[1]))
        new_id = 256 + step
        merges.append(best)
        words = [merge_word(ids, best, new_id) for ids in words]
    return merges


def encode_piece(piece: bytes, byte_to_id: list[int], ranks: dict) -> list[int]:
    """ranks: (left id, right id) -> (rank, merged id)."""
    ids = [byte_to_id[b] for b in piece]
    while len(ids) >= 2:
        ranked = [(ranks[p][0], p) for p in zip(ids, ids[1:]) if p in ranks]
        if not ranked:
            break
        rank, pair = min(ranked)
        ids = merge_word(ids, pair, ranks[pair][1])
    return ids


def encode(text: str, byte_to_id: list[int], ranks: dict, mode: str = DEFAULT_MODE) -> list[int]:
    """Ordinary text -> ids (special tokens are handled by the caller, BPETokenizer)."""
    out = []
    for piece in split_ref(text, mode):
        out.extend(encode_piece(to_bytes(piece), byte_to_id, ranks))
    return out


def decode(ids, id_to_bytes: list[bytes]) -> str:
    return b"".join(id_to_bytes[i] for i in ids).decode("utf-8", "replace")
