"""What a new user meets after the happy path: short runs, reruns, tokenizers from prepared data,
what --quick says, what eval.json records, how charts and shard summaries read."""
import json
import re

import pytest

from scratchgpt.cli import main


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tokenizer and a prepared dialogue directory with shards, made in-process."""
    from scratchgpt.tokenizer import BPETokenizer
    from scratchgpt.tokenizer.special import CHAT_SPECIAL_TOKENS
    root = tmp_path_factory.mktemp("tiny")
    rows = ["conversation_id,turn,context,reply"]
    rows += [f"c{i},0,Where is my order A{10000 + i}?,Order A{10000 + i} ships tomorrow." for i in range(40)]
    (root / "chats.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    BPETokenizer.train(rows * 3, 300, special_tokens=CHAT_SPECIAL_TOKENS).save(root / "tok" / "tokenizer.json")
    assert main(["data", "prepare", "--input", root / "chats.csv", "--ratios", "0.6,0.2,0.2", "--out", root / "data",
                 "--tokenizer", root / "tok", "--no-progress"]) == 0
    return root


TINY_MODEL = ["--n-layer", "1", "--n-head", "2", "--n-embd", "16", "--block-size", "32", "--seq-len", "32",
              "--batch-size", "2", "--eval-every", "2", "--eval-batches", "1", "--no-progress"]


def test_short_pretraining_scales_warmup_says_next_and_refuses_a_silent_restart(tiny, tmp_path, capsys):
    out = tmp_path / "pre"
    # --max_steps (underscore spelling) is accepted; 3 steps < the default warmup of 20 must not fail
    assert main(["pretrain", "--data", tiny / "data", "--tokenizer", tiny / "tok", "--out", out,
                 "--max_steps", "3", *TINY_MODEL]) == 0
    text = capsys.readouterr().out
    assert "using --warmup-steps 0" in text
    assert re.search(r"^next: scratchgpt sft --base .*pre/model --data ", text, flags=re.M), text
    weights = (out / "model" / "model.safetensors").read_bytes()

    assert main(["pretrain", "--data", tiny / "data", "--tokenizer", tiny / "tok", "--out", out,
                 "--max-steps", "3", *TINY_MODEL]) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert (out / "model" / "model.safetensors").read_bytes() == weights  # untouched

    assert main(["pretrain", "--data", tiny / "data", "--tokenizer", tiny / "tok", "--out", out,
                 "--max-steps", "3", "--overwrite", "--seed", "7", *TINY_MODEL]) == 0
    assert (out / "model" / "model.safetensors").read_bytes() != weights  # a new run, another seed
    capsys.readouterr()


def test_tokenizer_trains_on_prepared_dialogues_not_on_json_syntax(tiny, tmp_path, capsys):
    from scratchgpt.tokenizer import load_tokenizer
    assert main(["tokenizer", "train", "--input", tiny / "data", "--vocab-size", "280", "--out", tmp_path / "a",
                 "--no-progress"]) == 0
    assert main(["tokenizer", "train", "--input", tiny / "data" / "train.jsonl", "--vocab-size", "280",
                 "--out", tmp_path / "b", "--no-progress"]) == 0
    captured = capsys.readouterr()
    assert "warning" not in captured.err
    a = load_tokenizer(tmp_path / "a")
    assert (tmp_path / "a" / "tokenizer.json").read_bytes() == (tmp_path / "b" / "tokenizer.json").read_bytes()
    # learned from the texts: JSON keys never became tokens
    vocab = {a.id_to_token_bytes(i) for i in range(a.vocab_size)}
    assert not any(b'"messages"' in t or b'"role"' in t for t in vocab)

    (tmp_path / "raw.txt").write_text((tiny / "data" / "train.jsonl").read_text(encoding="utf-8"), encoding="utf-8")
    assert main(["tokenizer", "train", "--input", tmp_path / "raw.txt", "--vocab-size", "280", "--out",
                 tmp_path / "c", "--no-progress"]) == 0
    assert "looks like JSON" in capsys.readouterr().err


def test_stats_read_a_directory_tokenizer_and_a_gpt2_pair(tiny, tmp_path, capsys):
    from scratchgpt.tokenizer import BPETokenizer, load_tokenizer
    tok = BPETokenizer.train(["hello world hello there"] * 20, 270, pretokenizer="gpt2")
    tok.to_gpt2(tmp_path / "gpt2")
    for given in (tmp_path / "gpt2", tmp_path / "gpt2" / "vocab.json", tmp_path / "gpt2" / "merges.txt"):
        assert load_tokenizer(given).encode("hello world") == tok.encode("hello world")
    assert main(["tokenizer", "stats", "--tokenizer", tiny, "--input", tiny / "data"]) == 2  # root: no tokenizer
    assert "no tokenizer.json in this directory" in capsys.readouterr().err
    assert main(["tokenizer", "stats", "--tokenizer", tiny / "tok", "--input", tiny / "data"]) == 0
    assert "tokens / char" in capsys.readouterr().out


def test_eval_json_records_its_setup_and_keeps_examples_apart(tiny, tmp_path, capsys):
    assert main(["pretrain", "--data", tiny / "data", "--tokenizer", tiny / "tok", "--out", tmp_path / "pre",
                 "--max-steps", "2", *TINY_MODEL]) == 0
    target = tmp_path / "e.json"
    assert main(["eval", tmp_path / "pre" / "model", "--data", tiny / "data", "--limit", "3",
                 "--max-new-tokens", "4", "--no-paraphrase", "--out", target, "--no-progress"]) == 0
    ev = json.loads(target.read_text(encoding="utf-8"))
    setup = ev["setup"]
    assert setup["model"] == str((tmp_path / "pre" / "model").resolve())
    assert setup["data"] == str((tiny / "data").resolve())
    assert (setup["limit"], setup["max_new_tokens"]) == (3, 4)
    ok = {json.dumps(r, sort_keys=True) for r in ev["examples_ok"]}
    failed = {json.dumps(r, sort_keys=True) for r in ev["examples_failed"]}
    assert not ok & failed and all(r["ok"] for r in ev["examples_ok"]) and not any(r["ok"] for r in ev["examples_failed"])
    assert len(ok) + len(failed) >= 1
    capsys.readouterr()


def test_shard_summary_speaks_plain_dtypes(tiny, capsys):
    assert main(["data", "shard", "--dir", tiny / "data", "--tokenizer", tiny / "tok", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "stored as uint16" in out and "<u2" not in out


def test_bpe_progress_bar_ends_at_its_real_count(tmp_path):
    """Redirected to a file (as in a log), the bar's last state is the real count, not 0/250."""
    import os
    import subprocess
    import sys
    code = ("from scratchgpt.tokenizer import BPETokenizer\n"
            "tok = BPETokenizer.train(['abcabc abd'] * 10, 256 + 250, progress=True)\n"  # fewer merges exist
            "print(len(tok.merges))")
    root = str(__import__("pathlib").Path(__file__).resolve().parents[1])
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": root, "TQDM_DELAY": "0"})
    assert proc.returncode == 0, proc.stderr
    n = int(proc.stdout.split()[-1])
    last = [ln for ln in proc.stderr.replace("\r", "\n").splitlines() if ln.startswith("BPE merges")][-1]
    assert n < 250 and f"{n}/{n}" in last, last


def test_log_axis_labels_are_round_numbers():
    from scratchgpt.train.plot import log_ticks, panel
    for lo, hi in [(-1.0, 0.5), (0.2, 0.5), (-3.0, 3.0), (-8.0, 4.0)]:
        ticks = [10 ** t for t in log_ticks(lo, hi)]
        assert len(ticks) >= 2
        assert all(10 ** lo - 1e-9 <= v <= 10 ** hi + 1e-9 for v in ticks)
        for v in ticks:  # a 1, 2, 2.5 or 5 times a power of ten: never 3.16228 or 1.58489
            mantissa = v / 10 ** __import__("math").floor(__import__("math").log10(v) + 1e-12)
            assert any(abs(mantissa - m) < 1e-9 for m in (1, 2, 2.5, 3, 5)), v
    svg = panel({"grad norm": ([1, 2, 3, 4], [0.9, 1.7, 2.6, 3.1])}, "grad norm", 0, 0, log_y=True)
    labels = re.findall(r'text-anchor="end" font-size="11">([^<]+)<', svg)
    assert labels and not any(len(lab) > 4 for lab in labels), labels


def test_percent_never_rounds_a_failure_up():
    from scratchgpt.chapters.ch4 import percent
    assert percent(199, 200) == "99.5 %" and percent(200, 200) == "100 %" and percent(1, 200) == "0.5 %"
    assert percent(0, 200) == "0 %" and percent(150, 200) == "75 %"


def test_ch1_says_what_this_version_has():
    from scratchgpt.chapters.ch1 import where_now
    assert where_now("scratchgpt/train/") == "scratchgpt/train/"
    assert where_now("scratchgpt/no_such_pkg/") == "(scratchgpt/no_such_pkg/ is not part of this version)"


def test_quick_demo_says_its_model_is_untrained_on_purpose():
    from scratchgpt.commands.demo import register
    from scratchgpt.train.demo import QUICK_NOTE
    import argparse
    sub = argparse.ArgumentParser().add_subparsers()
    register(sub)
    help_text = " ".join(sub.choices["demo"].format_help().split())
    assert "deliberately untrained" in help_text and "untrained on purpose" in QUICK_NOTE


def test_chapters_without_out_do_not_point_into_a_deleted_folder():
    from scratchgpt.commands._flags import kept_note
    assert kept_note(None).endswith("deleted now; pass --out DIR to keep them")
    assert kept_note("runs/ch7", "the charts") == "the charts are kept in runs/ch7"
