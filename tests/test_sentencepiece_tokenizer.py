"""SentencePieceTokenizer: lossless roundtrip (with its two documented exceptions), specials, IO, errors."""
import json

import pytest
from hypothesis import given, strategies as st

from scratchgpt.errors import CheckpointError, ConfigError, DataError
from scratchgpt.tokenizer.sentencepiece_tokenizer import SentencePieceTokenizer
from scratchgpt.tokenizer.special import CHAT_SPECIAL_TOKENS, END, USER

CORPUS = [
    "Hello world, this is a small test corpus.\nIt has two  spaces and a\ttab.",
    "The quick brown fox jumps over the lazy dog. 12345 67890",
    "你好，世界！今天天气很好。我们去公园散步吧。研究生命的起源。",
    "Emoji 😀 and accents: café, naïve, Ærøskøbing.",
] * 20


@pytest.fixture(scope="module", params=["bpe", "unigram"])
def tok(request):
    return SentencePieceTokenizer.train(CORPUS, 420, special_tokens=CHAT_SPECIAL_TOKENS, model_type=request.param)


# every character except the two documented lossy cases: U+2581 and lone surrogates
lossless_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\u2581"), max_size=60)


@given(lossless_text)
def test_roundtrip_is_exact(tok, text):
    assert tok.decode(tok.encode(text)) == text


@given(st.text(max_size=40))
def test_roundtrip_documented_exceptions(tok, text):
    """U+2581 comes back as a space; a lone surrogate as U+FFFD; nothing else changes."""
    expected = text.replace("\u2581", " ").encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    assert tok.decode(tok.encode(text)) == expected


def test_whitespace_is_preserved(tok):
    for s in ["  leading", "trailing  ", "a\n\nb", "\t\r\n", " ", "x  y   z"]:
        assert tok.decode(tok.encode(s)) == s


def test_special_tokens_only_when_allowed(tok):
    end = tok.token_to_id(END)
    assert tok.special_tokens == {s: tok.vocab_size - len(CHAT_SPECIAL_TOKENS) + i
                                  for i, s in enumerate(CHAT_SPECIAL_TOKENS)}
    text = "hi <|end|> there<|user|>"
    plain = tok.encode(text)
    assert end not in plain and tok.token_to_id(USER) not in plain
    assert tok.decode(plain) == text
    both = tok.encode(text, allowed_special="all")
    assert both.count(end) == 1 and both.count(tok.token_to_id(USER)) == 1
    assert tok.decode(both) == text
    only_end = tok.encode(text, allowed_special={END})
    assert only_end.count(end) == 1 and tok.token_to_id(USER) not in only_end


@given(st.lists(st.integers(0, 419), max_size=30))
def test_incremental_decoder_matches_decode(tok, ids):
    ids = [i % tok.vocab_size for i in ids]  # includes byte pieces that form invalid UTF-8
    dec = tok.decoder()
    parts = [dec.feed(i) for i in ids]
    assert "".join(parts) + dec.flush() == tok.decode(ids)


def test_incremental_decoder_never_splits_a_character(tok):
    text = "😀你好"
    ids = tok.encode(text)
    dec = tok.decoder()
    for i in ids:
        piece = dec.feed(i)
        assert "\ufffd" not in piece   # a half character would surface as U+FFFD
    assert dec.flush() == ""


def test_save_load_roundtrip(tok, tmp_path):
    path = tok.save(tmp_path / "tokenizer.json")
    doc = json.loads(path.read_text(encoding="utf-8"))
    assert doc["type"] == "sentencepiece" and doc["model_type"] == tok.model_type
    again = SentencePieceTokenizer.load(tmp_path)          # a directory works too
    text = "Hello 你好 <|end|> 😀"
    assert again.encode(text, allowed_special="all") == tok.encode(text, allowed_special="all")
    assert again.vocab_size == tok.vocab_size and again.special_tokens == tok.special_tokens


def test_load_model_file(tok, tmp_path):
    model = tmp_path / "m.model"
    model.write_bytes(tok.sp.serialized_model_proto())
    wrapped = SentencePieceTokenizer.load_model(model, special_tokens=CHAT_SPECIAL_TOKENS)
    assert wrapped.encode("Hello world") == tok.encode("Hello world")
    assert wrapped.special_tokens == tok.special_tokens
    assert SentencePieceTokenizer.load_model(model).special_tokens == {}   # none unless asked


def test_training_is_deterministic():
    a = SentencePieceTokenizer.train(CORPUS, 400, model_type="unigram")
    b = SentencePieceTokenizer.train(CORPUS, 400, model_type="unigram")
    assert a.sp.serialized_model_proto() == b.sp.serialized_model_proto()


def test_unigram_keeps_frequent_chinese_words_whole():
    """On a corpus where 天气 and 公园 recur, Unigram gives them a single piece each."""
    corpus = ["今天天气很好。", "明天天气不好。", "我们去公园。", "公园里天气很好。"] * 30
    t = SentencePieceTokenizer.train(corpus, 300, model_type="unigram")
    assert len(t.encode("天气")) == 1 and len(t.encode("公园")) == 1


# ------------------------------------------------------------------ errors

def test_bad_training_inputs():
    with pytest.raises(DataError, match="empty"):
        SentencePieceTokenizer.train(["", ""], 400)
    with pytest.raises(ConfigError, match="vocab_size"):
        SentencePieceTokenizer.train(CORPUS, 200)
    with pytest.raises(ConfigError, match="model_type"):
        SentencePieceTokenizer.train(CORPUS, 400, model_type="wordpiece")
    with pytest.raises(DataError, match="single str"):
        SentencePieceTokenizer.train("just a string", 400)


def test_bad_files(tmp_path):
    with pytest.raises(CheckpointError, match="no such"):
        SentencePieceTokenizer.load(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(CheckpointError, match="valid tokenizer JSON"):
        SentencePieceTokenizer.load(bad)
    bad.write_text(json.dumps({"type": "bpe"}), encoding="utf-8")
    with pytest.raises(CheckpointError, match="sentencepiece"):
        SentencePieceTokenizer.load(bad)
    bad.write_text(json.dumps({"type": "sentencepiece", "version": 1, "special_tokens": {},
                               "model_b64": "bm90IGEgbW9kZWw="}), encoding="utf-8")
    with pytest.raises(CheckpointError, match="cannot parse"):
        SentencePieceTokenizer.load(bad)
    bad.write_text(json.dumps({"type": "sentencepiece", "version": 1, "special_tokens": {},
                               "model_b64": "###"}), encoding="utf-8")
    with pytest.raises(CheckpointError, match="corrupt"):
        SentencePieceTokenizer.load(bad)


def test_bad_call_arguments(tok):
    with pytest.raises(ConfigError, match="not a special token"):
        tok.token_to_id("<|nope|>")
    with pytest.raises(ConfigError, match="allowed_special"):
        tok.encode("x", allowed_special={"<|nope|>"})
    with pytest.raises(DataError, match="outside the vocabulary"):
        tok.decode([tok.vocab_size])
    with pytest.raises(DataError, match="expected str"):
        tok.encode(b"bytes")


def test_many_distinct_characters_small_vocab_is_still_lossless():
    """More distinct characters than the vocabulary can hold: the rare ones use byte fallback."""
    chars = [chr(0x4E00 + i) for i in range(600)]                  # 600 distinct CJK characters
    corpus = ["".join(chars[(i * 7 + k) % 600] for k in range(40)) for i in range(200)]
    t = SentencePieceTokenizer.train(corpus, 400, model_type="unigram")
    assert t.vocab_size <= 400
    text = "".join(chars[::3])
    assert t.decode(t.encode(text)) == text
