"""``scratchgpt tokenizer ...`` end to end on tiny files."""
import json

import pytest

from scratchgpt.cli import main
from scratchgpt.tokenizer import load_tokenizer
from scratchgpt.tokenizer.special import END

LINES = ["Hello world, the quick brown fox jumps over the lazy dog.\n",
         "你好，世界！今天天气很好。\n",
         "Numbers 12345 and more text here.\n"] * 30


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("".join(LINES), encoding="utf-8")
    return path


@pytest.mark.parametrize("kind,vocab", [("bpe", 300), ("sentencepiece-bpe", 320), ("sentencepiece-unigram", 320)])
def test_train_encode_decode_stats(tmp_path, corpus, capsys, kind, vocab):
    out = tmp_path / "tok"
    assert main(["tokenizer", "train", "--input", str(corpus), "--vocab-size", str(vocab),
                 "--out", str(out), "--kind", kind]) == 0
    saved = json.loads((out / "tokenizer.json").read_text(encoding="utf-8"))
    assert saved["type"] == ("bpe" if kind == "bpe" else "sentencepiece")
    tok = load_tokenizer(out / "tokenizer.json")
    assert tok.vocab_size <= vocab and END in tok.special_tokens
    capsys.readouterr()

    text = "Hello 你好 <|end|>"
    assert main(["tokenizer", "encode", "--tokenizer", str(out), text]) == 0
    ids = [int(x) for x in capsys.readouterr().out.split()]
    assert ids == tok.encode(text) and tok.token_to_id(END) not in ids

    assert main(["tokenizer", "encode", "--tokenizer", str(out), "--allow-special", text]) == 0
    assert tok.token_to_id(END) in [int(x) for x in capsys.readouterr().out.split()]

    assert main(["tokenizer", "decode", "--tokenizer", str(out / "tokenizer.json"), *map(str, ids)]) == 0
    assert capsys.readouterr().out == text + "\n"

    assert main(["tokenizer", "stats", "--tokenizer", str(out), "--input", str(corpus), "--top", "3"]) == 0
    report = capsys.readouterr().out
    n_tokens = sum(len(tok.encode(line)) for line in LINES)
    n_chars = sum(len(line) for line in LINES)
    assert f"tokens           {n_tokens:,}" in report
    assert f"tokens / char    {n_tokens / n_chars:.4f}" in report
    assert ("merges learned" in report) == (kind == "bpe")


def test_missing_input_file_is_one_line_exit_2(tmp_path, capsys):
    code = main(["tokenizer", "train", "--input", str(tmp_path / "nope.txt"), "--vocab-size", "300",
                 "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "nope.txt" in err and "no such file" in err


def test_bad_tokenizer_and_ids(tmp_path, corpus, capsys):
    assert main(["tokenizer", "decode", "--tokenizer", str(tmp_path / "none"), "1"]) == 2
    assert "no such file or directory (expected a tokenizer file" in capsys.readouterr().err
    bad = tmp_path / "tokenizer.json"
    bad.write_text("{broken", encoding="utf-8")
    assert main(["tokenizer", "encode", "--tokenizer", str(bad), "x"]) == 2
    assert "not valid JSON" in capsys.readouterr().err
    out = tmp_path / "tok"
    assert main(["tokenizer", "train", "--input", str(corpus), "--vocab-size", "280", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["tokenizer", "decode", "--tokenizer", str(out), "12", "abc"]) == 2
    assert "'abc'" in capsys.readouterr().err
    assert main(["tokenizer", "decode", "--tokenizer", str(out), "99999"]) == 2
    assert "outside" in capsys.readouterr().err


def test_too_small_vocab_and_non_utf8(tmp_path, corpus, capsys):
    assert main(["tokenizer", "train", "--input", str(corpus), "--vocab-size", "100", "--out", str(tmp_path / "o")]) == 2
    assert "vocab_size" in capsys.readouterr().err
    latin = tmp_path / "latin1.txt"
    latin.write_bytes("café".encode("latin-1"))
    assert main(["tokenizer", "train", "--input", str(latin), "--vocab-size", "300", "--out", str(tmp_path / "o")]) == 2
    assert "not UTF-8" in capsys.readouterr().err
