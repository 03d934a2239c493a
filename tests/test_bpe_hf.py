"""Parity with Hugging Face `tokenizers` (test reference only): import its byte-level BPE and
encode id for id; export ours and let HF load it and encode id for id."""
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scratchgpt.errors import CheckpointError
from scratchgpt.tokenizer import BPETokenizer, load_tokenizer

tokenizers = pytest.importorskip("tokenizers")

CORPUS = [
    "Hello world! Don't panic: it's 42, we've 3.14159 reasons.",
    "The quick brown fox jumps over the lazy dog.\n\tIndented    spaces   here.",
    "我们是中国人民的朋友。你好，世界！今天天气很好。",
    "日本語のテキスト、カタカナ。한국어 텍스트입니다.",
    "emoji 😀😃 and combining e\u0301 marks, Ünïcödé, числа ١٢٣ and ½.",
    "<|endoftext|> special <|end|> tokens",
] * 4
SPECIALS = ["<|endoftext|>", "<|end|>"]
PIECES = ["Hello", " world", "'s", "'t", "  ", "\n", "中国", "人民", "你好", "😀", "e\u0301", " 42",
          "3.14", "!", "...", "<|end|>", "<|endoftext|>", "\u3000", "\u00a0", "Ünï", "١٢٣", "カタ"]
# Unassigned code points (in Python's Unicode tables) may be classified differently by the
# Oniguruma tables inside HF tokenizers; everything assigned must match exactly.
assigned = st.characters(blacklist_categories=("Cs", "Cn"))
text_st = st.lists(st.one_of(st.sampled_from(PIECES), assigned), max_size=40).map("".join)


def _hf_train(vocab_size):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    hf = Tokenizer(models.BPE())
    hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    hf.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIALS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    hf.train_from_iterator(CORPUS, trainer=trainer)
    return hf


@pytest.fixture(scope="module")
def hf_pair(tmp_path_factory):
    hf = _hf_train(600)
    path = tmp_path_factory.mktemp("hf") / "tokenizer.json"
    hf.save(str(path))
    return hf, BPETokenizer.from_huggingface(path), path


@given(text=text_st)
def test_imported_hf_tokenizer_encodes_id_for_id(hf_pair, text):
    hf, ours, _ = hf_pair
    expected = hf.encode(text, add_special_tokens=False).ids
    assert ours.encode(text, allowed_special="all") == expected  # HF always matches added tokens
    assert ours.with_backend("ref").encode(text, allowed_special="all") == expected
    assert ours.decode(expected) == hf.decode(expected, skip_special_tokens=False)


def test_imported_layout_keeps_hf_ids(hf_pair):
    hf, ours, path = hf_pair
    assert ours.vocab_size == hf.get_vocab_size()
    assert ours.special_tokens == {s: hf.token_to_id(s) for s in SPECIALS}
    assert len(ours.merges) > 100 and ours.pretokenizer == "gpt2"
    assert load_tokenizer(path).merges == ours.merges  # load_tokenizer recognises tokenizer.json


def test_imported_layout_survives_our_json(hf_pair, tmp_path):
    hf, ours, _ = hf_pair
    assert ours.byte_to_id != list(range(256))  # HF numbers bytes and specials its own way
    ours.save(tmp_path / "ours.json")
    back = BPETokenizer.load(tmp_path / "ours.json")
    text = "Hello <|end|> world! 我们是中国人民的朋友 😀"
    assert back.encode(text, allowed_special="all") == hf.encode(text).ids


def test_hf_gpt2_files_import(hf_pair, tmp_path):
    hf, ours, _ = hf_pair
    hf.model.save(str(tmp_path))  # vocab.json + merges.txt
    from_files = BPETokenizer.from_gpt2(tmp_path / "vocab.json", tmp_path / "merges.txt")
    assert from_files.merges == ours.merges
    text = "Hello world! 我们是中国人民的朋友 😀 it's"
    assert from_files.encode(text) == hf.encode(text).ids


@pytest.fixture(scope="module", params=["scratchgpt", "gpt2"])
def exported(request, tmp_path_factory):
    ours = BPETokenizer.train(CORPUS, 256 + 300 + len(SPECIALS), special_tokens=SPECIALS,
                              pretokenizer=request.param)
    path = tmp_path_factory.mktemp("export") / "tokenizer.json"
    ours.to_huggingface(path)
    return ours, tokenizers.Tokenizer.from_file(str(path)), path


@given(text=text_st)
def test_exported_tokenizer_loads_in_hf_and_encodes_id_for_id(exported, text):
    ours, hf, _ = exported
    ids = ours.encode(text, allowed_special="all")
    assert hf.encode(text, add_special_tokens=False).ids == ids
    assert hf.decode(ids, skip_special_tokens=False) == text


def test_export_then_import_is_identity(exported):
    ours, hf, path = exported
    back = BPETokenizer.from_huggingface(path)
    assert back.merges == ours.merges and back.special_tokens == ours.special_tokens
    assert back.pretokenizer == ours.pretokenizer
    assert hf.get_vocab_size() == ours.vocab_size


def test_unsupported_hf_files_are_refused(hf_pair, tmp_path):
    _, _, path = hf_pair
    data = json.loads(path.read_text(encoding="utf-8"))
    data["normalizer"] = {"type": "NFC"}
    bad = tmp_path / "nfc.json"
    bad.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(CheckpointError, match="nfc.json.*normalizer"):
        BPETokenizer.from_huggingface(bad)
    data["normalizer"] = None
    data["model"]["type"] = "WordPiece"
    bad.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(CheckpointError, match="BPE"):
        BPETokenizer.from_huggingface(bad)
