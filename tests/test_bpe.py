"""Byte-level BPE: Cython == reference, roundtrips, special tokens, streaming, files, errors."""
import json
import random
import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scratchgpt.errors import CheckpointError, ConfigError, DataError
from scratchgpt.tokenizer import BPETokenizer, load_tokenizer
from scratchgpt.tokenizer.pretokenize import split_ref

SPECIALS = ["<|endoftext|>", "<|user|>", "<|end|>"]
# Pieces that make merges happen and exercise every scanner rule.
PIECES = ["a", "b", "ab", " ", "  ", "\n", "\t", "'", "'s", "'T", "'re", "'LL", "1", "23", "٣",
          "中", "文", "中文", "你好", "カタ", "한", "!", ",", ".", "😀", "e\u0301", "\u3000",
          "\x00", "\x1c", "\u2028", "\u00a0", "Hello", " world", "don't", "ǅ", "\U00020000"]
MODES = ["scratchgpt", "gpt2", "scratchgpt-values"]

any_char = st.characters(blacklist_categories=("Cs",))  # every plane, no lone surrogates
mixed_text = st.lists(st.one_of(st.sampled_from(PIECES), any_char), max_size=30).map("".join)
corpus = st.lists(st.lists(st.sampled_from(PIECES), max_size=25).map("".join), min_size=1, max_size=6)


def _train(texts, extra, mode, backend="cython", specials=()):
    return BPETokenizer.train(texts, 256 + len(specials) + extra, special_tokens=list(specials),
                              pretokenizer=mode, backend=backend)


@pytest.fixture(scope="module")
def tok():
    rng = random.Random(0)
    texts = ["".join(rng.choice(PIECES) for _ in range(40)) for _ in range(60)]
    return BPETokenizer.train(texts, 256 + 200 + len(SPECIALS), special_tokens=SPECIALS)


# ------------------------------------------------------------------ pre-tokenizer
@given(text=st.one_of(mixed_text, st.text()), mode=st.sampled_from(MODES))
def test_cython_scanner_equals_reference(tok, text, mode):
    fast = tok.with_backend("cython")
    fast.pretokenizer = mode
    assert fast.pretokenize(text) == split_ref(text, mode)
    assert "".join(split_ref(text, mode)) == text


def test_fast_class_table_equals_unicodedata_table():
    from scratchgpt.tokenizer.bpe import fast_class_table
    from scratchgpt.tokenizer.pretokenize import class_table
    assert fast_class_table() == class_table()


GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
# Code points unassigned in Python's Unicode tables may be letters in the newer tables of the
# `regex` package; their class is a Unicode-version question, not a scanner one.
assigned_char = st.characters(blacklist_categories=("Cs", "Cn"))


@given(text=st.lists(st.one_of(st.sampled_from(PIECES), assigned_char), max_size=30).map("".join))
def test_gpt2_mode_splits_like_the_gpt2_regex(text):
    regex = pytest.importorskip("regex")  # installed with transformers (test reference only)
    assert split_ref(text, "gpt2") == regex.findall(GPT2_PATTERN, text)


def test_scratchgpt_mode_rules():
    assert split_ref("DON'T say 1234567 我们是中国人民的朋友abc", "scratchgpt") == [
        "DON", "'T", " say", " 123", "456", "7", " ", "我们是中", "国人民的", "朋友", "abc"]
    assert split_ref("DON'T 1234567 我们是中国人", "gpt2") == [
        "DON", "'", "T", " 1234567", " 我们是中国人"]
    assert split_ref("a  \n\n  b", "gpt2") == ["a", "  \n\n ", " b"]


VALUE_PIECES = PIECES + ["@", "#", "-", ".", "SG", "7", " 42", "x9", " ben", "元", "$"]


def test_scratchgpt_values_mode_rules():
    mode = "scratchgpt-values"
    assert split_ref("Order SG-145978 is ok, mail ben.t42@x.com", mode) == [
        "Order", " ", "SG", "-", "1", "4", "5", "9", "7", "8", " is", " ok", ",", " mail", " ",
        "ben", ".", "t", "4", "2", "@", "x", ".", "com"]
    assert split_ref("订单SG-145978 邮箱ben@x.com", mode) == [
        "订单", "SG", "-", "1", "4", "5", "9", "7", "8", " ", "邮箱", "ben", "@", "x", ".", "com"]
    assert split_ref("  paid $3 x", mode) == [" ", " paid", " ", "$", "3", " x"]


@given(before=st.sampled_from(["", " ", "订单", "Order ", "order: ", "(", "\n", "号码"]),
       value=st.lists(st.sampled_from(["SG", "-", "#", "ben", ".", "_", "7", "42", "@", "x", "$"]),
                      min_size=1, max_size=8).map("".join),
       after=st.sampled_from(["", " ok", "。", " is", "\n"]))
def test_values_mode_cuts_a_value_the_same_way_in_any_context(before, value, after):
    """A value-like word (digit or "@" inside) is the same pieces wherever it stands."""
    if not any(ch.isdigit() or ch == "@" for ch in value) or (before.endswith(("(", ": ")) and value[0] in "#-._$@"):
        return  # not a value, or the value's own punctuation runs on from the punctuation before it
    alone = split_ref(value + after, "scratchgpt-values")
    pieces = split_ref(before + value + after, "scratchgpt-values")
    assert pieces[len(pieces) - len(alone):] == alone
    assert "".join(pieces) == before + value + after


@given(text=st.lists(st.one_of(st.sampled_from(VALUE_PIECES), any_char), max_size=30).map("".join))
def test_values_mode_cython_equals_reference(tok, text):
    fast = tok.with_backend("cython")
    fast.pretokenizer = "scratchgpt-values"
    assert fast.pretokenize(text) == split_ref(text, "scratchgpt-values")


# ------------------------------------------------------------------ training
@given(texts=corpus, extra=st.integers(0, 60), mode=st.sampled_from(MODES))
def test_cython_training_equals_reference(texts, extra, mode):
    if not "".join(texts):
        return
    fast = _train(texts, extra, mode)
    ref = _train(texts, extra, mode, backend="ref")
    assert fast.merges == ref.merges
    assert len(fast.merges) <= extra


@given(texts=corpus, extra=st.integers(0, 80), mode=st.sampled_from(MODES),
       samples=st.lists(st.one_of(mixed_text, st.text()), min_size=1, max_size=5))
def test_cython_encoding_equals_reference(texts, extra, mode, samples):
    if not "".join(texts):
        return
    fast = _train(texts, extra, mode)
    ref = fast.with_backend("ref")
    for text in samples:  # st.text() includes lone surrogates and unassigned code points
        assert fast.encode(text) == ref.encode(text)
        assert fast.decode(fast.encode(text)) == ref.decode(ref.encode(text))


def test_training_is_deterministic_and_order_free():
    rng = random.Random(3)
    texts = ["".join(rng.choice(PIECES) for _ in range(30)) for _ in range(50)]
    a = BPETokenizer.train(texts, 500)
    b = BPETokenizer.train(list(reversed(texts)), 500)
    assert a.merges == b.merges and len(a.merges) > 150
    assert BPETokenizer.train(texts, 500).merges == a.merges


def test_tie_break_prefers_highest_count_then_smallest_pair():
    # counts: (b, a) 2, (a, b) 1, (c, d) 2 -> (b, a)=(98, 97) and (c, d)=(99, 100) tie; smaller wins
    tok = BPETokenizer.train(["ba", "ba", "ab", "cd", "cd"], 257, pretokenizer="gpt2")
    assert tok.merges == [(98, 97)]
    tok = BPETokenizer.train(["ba", "ba", "ab", "cd", "cd"], 258, pretokenizer="gpt2", backend="ref")
    assert tok.merges == [(98, 97), (99, 100)]


def test_overlapping_pairs_merge_left_to_right():
    tok = BPETokenizer.train(["aaa"], 257, pretokenizer="gpt2")
    assert tok.merges == [(97, 97)]
    for backend in ("cython", "ref"):
        assert tok.with_backend(backend).encode("aaa") == [256, 97]
        assert tok.with_backend(backend).encode("aaaa") == [256, 256]


def test_progress_bar_gives_the_same_merges(capsys):
    texts = ["hello world"] * 3 + ["你好世界"] * 2
    assert (BPETokenizer.train(texts, 270, progress=True).merges
            == BPETokenizer.train(texts, 270).merges)


# ------------------------------------------------------------------ encode / decode
@given(text=mixed_text)
def test_roundtrip(tok, text):
    for backend in ("cython", "ref"):
        t = tok.with_backend(backend)
        assert t.decode(t.encode(text)) == text
        assert t.decode(t.encode(text, allowed_special="all")) == text


@given(text=st.lists(st.one_of(st.sampled_from(PIECES), st.characters(categories=["Cs"])),
                     max_size=12).map("".join))
def test_lone_surrogates_encode_and_decode_to_replacement_chars(tok, text):
    expected = "".join("\ufffd" * 3 if unicodedata.category(c) == "Cs" else c for c in text)
    for backend in ("cython", "ref"):
        t = tok.with_backend(backend)
        assert t.decode(t.encode(text)) == expected


@given(parts=st.lists(st.one_of(st.sampled_from(SPECIALS), mixed_text), max_size=8))
def test_special_tokens_only_when_allowed(tok, parts):
    text = "".join(parts)
    special_ids = set(tok.special_tokens.values())
    plain = tok.encode(text)
    assert not special_ids & set(plain)  # ordinary text never produces a special id
    allowed = tok.encode(text, allowed_special="all")
    assert sum(i in special_ids for i in allowed) == sum(text.count(s) for s in SPECIALS)
    assert tok.decode(allowed) == text
    assert allowed == tok.with_backend("ref").encode(text, allowed_special="all")


@pytest.mark.parametrize("cache_max", [0, 7, 1 << 18])
def test_piece_cache_growth_and_limit_do_not_change_ids(tok, cache_max):
    from scratchgpt.tokenizer import _bpe
    from scratchgpt.tokenizer.bpe import _splitter
    from scratchgpt.tokenizer.pretokenize import get_mode
    rng = random.Random(5)
    # ~6000 distinct pieces: the C hash table resizes several times (it starts at 4096 slots)
    words = [" " + "".join(rng.choice("abcde中文😀") for _ in range(rng.randint(1, 9))) for _ in range(6000)]
    text = "".join(words) + "x" * 100 + " " + "ab" * 80  # and pieces longer than the 64 cached
    enc = _bpe.Encoder(_splitter(get_mode(tok.pretokenizer)),
                       [(a, b, i) for (a, b), i in zip(tok.merges, tok.merge_ids)], tok.byte_to_id, cache_max)
    expected = tok.with_backend("ref").encode(text)
    assert enc.encode(text) == expected
    assert enc.encode(text) == expected  # second pass: served from the cache
    cacheable = {p for p in tok.pretokenize(text) if len(p) <= 64 and not (len(p) == 1 and p.isascii())}
    assert len(cacheable) > 1000
    assert enc.cached_pieces == min(cache_max, len(cacheable))


def test_special_token_ids_and_matching(tok):
    assert tok.vocab_size == 256 + len(tok.merges) + len(SPECIALS)
    first = 256 + len(tok.merges)
    assert [tok.token_to_id(s) for s in SPECIALS] == [first, first + 1, first + 2]
    end, eot = tok.token_to_id("<|end|>"), tok.token_to_id("<|endoftext|>")
    assert tok.encode("<|endoftext|>", allowed_special="all") == [eot]  # longest match wins
    assert tok.encode("a<|end|>", allowed_special={"<|end|>"})[-1] == end
    assert eot not in tok.encode("<|endoftext|>", allowed_special={"<|end|>"})
    with pytest.raises(ConfigError, match="<|nope|>"):
        tok.encode("x", allowed_special={"<|nope|>"})
    with pytest.raises(ConfigError):
        tok.token_to_id("<|nope|>")
    with pytest.raises(DataError):
        tok.encode(b"bytes")
    with pytest.raises(DataError, match="99999"):
        tok.decode([1, 99999])


@given(text=st.lists(st.sampled_from(["中", "文", "😀", "é", "a", " ", "\u0301", "ǅ"]), max_size=20).map("".join))
def test_stream_decoder_never_emits_half_a_character(text):
    tok = BPETokenizer.train(["中文 a é"], 258)  # few merges: multi-byte chars span several ids
    ids = tok.encode(text)
    dec = tok.decoder()
    chunks = [dec.feed(i) for i in ids] + [dec.flush()]
    assert "".join(chunks) == text
    assert all("\ufffd" not in c for c in chunks)


@given(ids=st.lists(st.integers(0, 255 + 3), max_size=20))
def test_stream_decoder_equals_decode_on_any_ids(ids):
    tok = BPETokenizer.train(["ab"], 256 + 1 + 2, special_tokens=["<|a|>", "<|b|>"])
    dec = tok.decoder()
    assert "".join(dec.feed(i) for i in ids) + dec.flush() == tok.decode(ids)


# ------------------------------------------------------------------ files and errors
def test_save_load_roundtrip(tok, tmp_path):
    path = tmp_path / "tok" / "tokenizer.json"
    tok.save(path)
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["type"] == "bpe" and data["pretokenizer"] == "scratchgpt"
    for loaded in (BPETokenizer.load(path), load_tokenizer(path)):
        assert loaded.merges == tok.merges
        assert loaded.special_tokens == tok.special_tokens
        text = "Hello world 中文 <|end|> 😀"
        assert loaded.encode(text, allowed_special="all") == tok.encode(text, allowed_special="all")


def test_gpt2_files_roundtrip(tmp_path):
    texts = ["Hello world, hello you. 中文 😀"] * 3 + ["don't 12345"]
    tok = BPETokenizer.train(texts, 256 + 40 + 1, special_tokens=["<|endoftext|>"], pretokenizer="gpt2")
    tok.to_gpt2(tmp_path)
    vocab = json.loads((tmp_path / "vocab.json").read_text(encoding="utf-8"))
    assert vocab["Ġ"] == 32 and vocab["<|endoftext|>"] == tok.vocab_size - 1
    back = BPETokenizer.from_gpt2(tmp_path / "vocab.json", tmp_path / "merges.txt")
    assert back.merges == tok.merges and back.special_tokens == tok.special_tokens
    assert back.pretokenizer == "gpt2"
    for text in texts + ["<|endoftext|>x"]:
        assert back.encode(text, allowed_special="all") == tok.encode(text, allowed_special="all")
    with pytest.raises(ConfigError, match="pre-tokenizer"):
        BPETokenizer.train(texts, 260).to_gpt2(tmp_path / "other")


def test_bad_training_inputs(tmp_path):
    with pytest.raises(DataError, match="empty corpus"):
        BPETokenizer.train([], 300)
    with pytest.raises(DataError, match="empty corpus"):
        BPETokenizer.train(["", ""], 300)
    with pytest.raises(ConfigError, match="259"):
        BPETokenizer.train(["abc"], 258, special_tokens=SPECIALS)
    with pytest.raises(DataError, match="iterable of str"):
        BPETokenizer.train("abc", 300)
    with pytest.raises(DataError, match=r"texts\[1\]"):
        BPETokenizer.train(["abc", 5], 300)
    with pytest.raises(ConfigError, match="pretokenizer"):
        BPETokenizer.train(["abc"], 300, pretokenizer="bert")
    missing = tmp_path / "nope.txt"
    with pytest.raises(DataError, match="nope.txt"):
        BPETokenizer.train_from_files([missing], 300)


@pytest.mark.parametrize("content, match", [
    ("{not json", "not valid JSON"),
    ('{"type": "bpe", "format_version": 1}', "missing field"),
    ('{"type": "wordpiece"}', "wordpiece"),
    ('{"type": "bpe", "format_version": 1, "pretokenizer": "gpt2", "byte_to_id": [0],'
     ' "merges": [], "special_tokens": {}}', "256"),
])
def test_corrupt_tokenizer_file(tmp_path, content, match):
    path = tmp_path / "broken.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(CheckpointError, match=match) as info:
        load_tokenizer(path)
    assert "broken.json" in str(info.value)


def test_bad_merges_in_file(tok, tmp_path):
    data = tok.to_dict()
    data["merges"][3][0] = 10 ** 6
    path = tmp_path / "bad_ids.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(CheckpointError, match="bad_ids.json.*merge 3"):
        BPETokenizer.load(path)
    with pytest.raises(CheckpointError, match="missing.json"):
        BPETokenizer.load(tmp_path / "missing.json")


def test_values_mode_saves_and_refuses_hf_export(tmp_path):
    from scratchgpt.errors import ConfigError
    from scratchgpt.tokenizer.bpe_formats import to_huggingface
    t = BPETokenizer.train(["Order SG-145978 for ben@x.com, order SG-2"] * 3, 256 + 20, pretokenizer="scratchgpt-values")
    t.save(str(tmp_path / "t.json"))
    back = BPETokenizer.load(str(tmp_path / "t.json"))
    assert back.pretokenizer == "scratchgpt-values" and back.encode("订单SG-1") == t.encode("订单SG-1")
    with pytest.raises(ConfigError, match="scratchgpt-values"):
        to_huggingface(t, tmp_path / "hf.json")
