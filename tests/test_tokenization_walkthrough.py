"""Chapter helpers: the printed BPE walkthrough and the tokenizer comparison compute real numbers."""
import pytest

from scratchgpt.chapters.tokenization_walkthrough import compare_fast_tokenizers, show_merges_step_by_step
from scratchgpt.errors import DataError
from scratchgpt.tokenizer import bpe_ref


def test_merges_step_by_step_counts_by_hand():
    # pre-tokens: "ab", " ab", " ab", "abc" -> 2 + 3 + 3 + 3 = 11 byte tokens; the pair (a, b) occurs 4 times
    printed = []
    lines = show_merges_step_by_step(["ab ab ab", "abc"], 2, print_fn=printed.append)
    assert lines == printed
    assert lines[0].endswith("11 byte tokens")
    merge_lines = [line for line in lines if line.startswith("merge ")]
    assert merge_lines[0] == "merge 1: 'a' + 'b' -> 'ab' (id 256), seen 4 times; corpus now 7 tokens"
    # then " " + "ab" twice (in the two " ab"), 7 - 2 = 5 tokens
    assert merge_lines[1] == "merge 2: '␣' + 'ab' -> '␣ab' (id 257), seen 2 times; corpus now 5 tokens"


def test_merges_are_bpe_refs_own_and_stop_early():
    corpus = ["low lower lowest", "new newer"]
    lines = show_merges_step_by_step(corpus, 500, print_fn=lambda s: None)
    merges = bpe_ref.learn_merges(bpe_ref.count_words(corpus), 500)
    assert sum(line.startswith("merge ") for line in lines) == len(merges) < 500
    assert lines[-1] == f"stopped after {len(merges)} merges: no adjacent pair left to merge"


def test_compare_fast_tokenizers_rows_are_consistent():
    en = "\n".join(f"The weather on day {i} was {'nice' if i % 3 else 'rainy'}, so we walked to the park."
                   for i in range(60))
    zh = "\n".join(f"第{i}天天气{'很好' if i % 3 else '下雨'}，我们去公园散步，研究生命的起源。" for i in range(60))
    printed = []
    rows = compare_fast_tokenizers(en, zh, vocab_size=500, print_fn=printed.append)
    assert [r["tokenizer"] for r in rows] == ["bpe (ours)", "sentencepiece-bpe", "sentencepiece-unigram"]
    en_chars = sum(len(line) + 1 for line in en.splitlines()) - 1  # lines keep their "\n" but the last
    en_bytes = len(en.encode("utf-8"))
    zh_bytes = len(zh.encode("utf-8"))
    for r in rows:
        assert r["vocab"] <= 500
        assert r["en_tokens_per_char"] == pytest.approx(r["en_tokens"] / en_chars)
        assert r["en_bytes_per_token"] == pytest.approx(en_bytes / r["en_tokens"])
        assert r["zh_bytes_per_token"] == pytest.approx(zh_bytes / r["zh_tokens"])
        assert any(line.startswith(r["tokenizer"]) for line in printed)
    assert any("how each splits" in line for line in printed)


def test_compare_needs_both_languages():
    with pytest.raises(DataError, match="non-blank"):
        compare_fast_tokenizers("hello", "   ", print_fn=lambda s: None)
