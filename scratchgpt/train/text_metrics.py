"""Text-generation metrics, written from their definitions: ROUGE-L, BLEU, distinct-n.

Tokenisation for metrics (``metric_tokens``): lower-cased words and numbers for Latin script;
each CJK character is its own token (Chinese has no spaces, and character-level scoring is the
usual convention for Chinese BLEU/ROUGE). Punctuation is dropped.

ROUGE-L (Lin, 2004): with LCS the longest common subsequence of candidate c and reference r,
    P = LCS/|c|, R = LCS/|r|, F = (1+β²)PR / (R + β²P).  We report β = 1 (the F1 form).
BLEU (Papineni et al., 2002), corpus level: modified n-gram precisions p_n (clipped counts) for
    n = 1..4 pooled over the corpus, geometric mean, brevity penalty BP = exp(1 − R/C) if C < R.
    ``smooth=True`` adds 1 to numerator and denominator of p_n for n > 1 (Lin & Och 2004's
    "+1" smoothing) so short corpora do not score 0 from one missing 4-gram.
distinct-n (Li et al., 2016): unique n-grams / total n-grams over all generated replies.
"""
from __future__ import annotations

import math
import re
from collections import Counter

_TOKEN_RE = re.compile(r"[\u4e00-\u9fff\u3400-\u4dbf]|[A-Za-z0-9]+(?:['\-][A-Za-z0-9]+)*")


def metric_tokens(text: str) -> list[str]:
    return [t.lower() for t in _TOKEN_RE.findall(text)]


def lcs_length(a: list, b: list) -> int:
    """Length of the longest common subsequence, O(|a||b|) time, O(min) memory."""
    if len(a) < len(b):
        a, b = b, a
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def rouge_l(candidate: str, reference: str, beta: float = 1.0) -> float:
    c, r = metric_tokens(candidate), metric_tokens(reference)
    if not c or not r:
        return 1.0 if not c and not r else 0.0
    lcs = lcs_length(c, r)
    if lcs == 0:
        return 0.0
    p, rec = lcs / len(c), lcs / len(r)
    return (1 + beta ** 2) * p * rec / (rec + beta ** 2 * p)


def _ngrams(tokens: list, n: int) -> Counter:
    return Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


def corpus_bleu(candidates: list[str], references: list[str], max_n: int = 4, smooth: bool = True) -> float:
    """Corpus BLEU in [0, 1] with one reference per candidate."""
    if len(candidates) != len(references):
        raise ValueError(f"corpus_bleu: {len(candidates)} candidates but {len(references)} references")
    matches = [0] * max_n
    totals = [0] * max_n
    cand_len = ref_len = 0
    for cand, ref in zip(candidates, references):
        c, r = metric_tokens(cand), metric_tokens(ref)
        cand_len += len(c)
        ref_len += len(r)
        for n in range(1, max_n + 1):
            cn, rn = _ngrams(c, n), _ngrams(r, n)
            matches[n - 1] += sum(min(cnt, rn[g]) for g, cnt in cn.items())
            totals[n - 1] += max(len(c) - n + 1, 0)
    if cand_len == 0:
        return 0.0
    log_p = 0.0
    for n in range(max_n):
        num, den = matches[n], totals[n]
        if smooth and n > 0:
            num, den = num + 1, den + 1
        if num == 0 or den == 0:
            return 0.0
        log_p += math.log(num / den) / max_n
    bp = 1.0 if cand_len >= ref_len else math.exp(1 - ref_len / cand_len)
    return bp * math.exp(log_p)


def distinct_n(texts: list[str], n: int) -> float:
    grams = Counter()
    for t in texts:
        grams.update(_ngrams(metric_tokens(t), n))
    total = sum(grams.values())
    return len(grams) / total if total else 0.0
