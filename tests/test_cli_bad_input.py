"""Bad input, as a new user types it: every case runs the real command in a subprocess and must
exit 2 with one line on stderr, no traceback, and leave the files around it as they were."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# this checkout's package whatever the cwd; one thread per process (the suite runs with -n 2)
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "NUMBA_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
       "OMP_NUM_THREADS": "1"}
ENV.pop("SCRATCHGPT_DEBUG", None)


def run(cwd, *argv, module="scratchgpt"):
    return subprocess.run([sys.executable, "-m", module, *map(str, argv)], cwd=cwd, capture_output=True,
                          text=True, env=ENV, timeout=120)


def snapshot(root: Path) -> dict:
    """Every file under ``root`` with its size and modification time; every directory."""
    return {str(p.relative_to(root)): "dir" if p.is_dir() else (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*"))}


def assert_user_error(proc, *needles):
    err = proc.stderr
    assert proc.returncode == 2, (proc.returncode, err[-2000:])
    assert "Traceback" not in err and "Warning" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(("scratchgpt ", "python -m scratchgpt")) and ": error: " in lines[0], lines[0]
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tokenizer and a prepared dialogue directory with shards, made in-process (fast)."""
    from scratchgpt.cli import main
    from scratchgpt.tokenizer import BPETokenizer
    from scratchgpt.tokenizer.special import CHAT_SPECIAL_TOKENS
    root = tmp_path_factory.mktemp("tiny")
    rows = ["conversation_id,turn,context,reply"]
    rows += [f"c{i},0,Where is my order A{10000 + i}?,Order A{10000 + i} ships tomorrow." for i in range(40)]
    (root / "chats.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    tok = BPETokenizer.train([r for r in rows] * 3, 300, special_tokens=CHAT_SPECIAL_TOKENS)
    tok.save(root / "tok" / "tokenizer.json")
    assert main(["data", "prepare", "--input", root / "chats.csv", "--ratios", "0.8,0.2,0", "--out", root / "data",
                 "--tokenizer", root / "tok", "--no-progress"]) == 0
    return root


# --------------------------------------------------------------- one line, exit 2, nothing touched
def test_ch5_from_a_missing_run_dir(tmp_path):
    before = snapshot(tmp_path)
    assert_user_error(run(tmp_path, "--quick", "--from", tmp_path / "no" / "such", module="scratchgpt.chapters.ch5"),
                      "--from", "no such directory", "scratchgpt demo --out")
    assert snapshot(tmp_path) == before


def test_ch5_from_a_directory_that_is_not_a_finished_run(tmp_path):
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "eval.json").write_text("{}", encoding="utf-8")
    before = snapshot(tmp_path)
    assert_user_error(run(tmp_path, "--from", tmp_path / "half", module="scratchgpt.chapters.ch5"),
                      "not a finished demo run", "sft/model/config.json missing")
    assert snapshot(tmp_path) == before


def test_demo_out_is_an_existing_file(tmp_path):
    (tmp_path / "notes.txt").write_text("keep me", encoding="utf-8")
    before = snapshot(tmp_path)
    assert_user_error(run(tmp_path, "demo", "--quick", "--out", "notes.txt"), "--out notes.txt", "not a directory")
    assert snapshot(tmp_path) == before and (tmp_path / "notes.txt").read_text() == "keep me"


def test_data_prepare_empty_input_writes_nothing(tmp_path):
    (tmp_path / "empty.txt").write_text("", encoding="utf-8")
    before = snapshot(tmp_path)
    assert_user_error(run(tmp_path, "data", "prepare", "--input", "empty.txt", "--out", "X"),
                      "scratchgpt data prepare: error:", "no records")
    assert snapshot(tmp_path) == before


def test_data_prepare_keeps_an_existing_out_dir_when_nothing_survives(tmp_path):
    (tmp_path / "X").mkdir()
    (tmp_path / "X" / "train.jsonl").write_text('{"id": "earlier run", "text": "kept"}\n', encoding="utf-8")
    (tmp_path / "empty.txt").write_text("\n\n", encoding="utf-8")
    before = snapshot(tmp_path)
    assert_user_error(run(tmp_path, "data", "prepare", "--input", "empty.txt", "--out", "X"), "no records")
    assert snapshot(tmp_path) == before


NOT_UTF8 = "hello world\nprix: 10 \u20ac\n".encode("utf-8") + b"caf\xe9 au lait\n"  # a Latin-1 byte on line 3
BAD_OFFSET = NOT_UTF8.index(b"\xe9")


@pytest.mark.parametrize("argv", [
    ["data", "prepare", "--input", "latin1.txt", "--out", "X"],
    ["tokenizer", "train", "--input", "latin1.txt", "--vocab-size", "300", "--out", "X"],
])
def test_non_utf8_input_is_refused_with_its_offset_by_every_command(tmp_path, argv):
    """One rule for data prepare and tokenizer train: refuse, naming the file, byte and line."""
    (tmp_path / "latin1.txt").write_bytes(NOT_UTF8)
    before = snapshot(tmp_path)
    assert_user_error(run(tmp_path, *argv), "latin1.txt", "not UTF-8", f"offset {BAD_OFFSET}", "line 3", "0xe9")
    assert snapshot(tmp_path) == before


def test_tokenizer_stats_on_an_empty_file(tmp_path, tiny):
    (tmp_path / "empty.txt").write_text("", encoding="utf-8")
    line = assert_user_error(run(tmp_path, "tokenizer", "stats", "--tokenizer", tiny / "tok", "--input", "empty.txt"),
                             "no text")
    assert "nan" not in line


def test_tokenizer_vocab_json_without_merges(tmp_path):
    (tmp_path / "vocab.json").write_text(json.dumps({"a": 0, "b": 1}), encoding="utf-8")
    assert_user_error(run(tmp_path, "tokenizer", "encode", "--tokenizer", "vocab.json", "ab"),
                      "vocab.json", "merges.txt")


def test_tokenizer_file_of_another_kind(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"n_layer": 2}), encoding="utf-8")
    line = assert_user_error(run(tmp_path, "tokenizer", "encode", "--tokenizer", "config.json", "ab"),
                             "not a tokenizer file")
    assert "None" not in line


def test_huge_learning_rate_is_one_line_with_numpys_warning_inside(tmp_path, tiny):
    proc = run(tmp_path, "pretrain", "--data", tiny / "data", "--tokenizer", tiny / "tok", "--out", "run",
               "--lr", "1e9", "--max-steps", "3", "--n-layer", "1", "--n-head", "2", "--n-embd", "32",
               "--block-size", "32", "--seq-len", "32", "--batch-size", "2", "--eval-every", "3", "--no-progress")
    assert_user_error(proc, "non-finite loss", "Lower lr")
    assert not (tmp_path / "run" / "model").exists() and not (tmp_path / "run" / "checkpoints").exists()


@pytest.mark.parametrize("command", ["eval", "sft"])
def test_run_directory_where_a_model_directory_is_expected(tmp_path, tiny, command):
    (tmp_path / "runs" / "pre" / "model").mkdir(parents=True)
    (tmp_path / "runs" / "pre" / "model" / "config.json").write_text("{}", encoding="utf-8")
    before = snapshot(tmp_path)
    argv = (["eval", "runs/pre", "--data", tiny / "data"] if command == "eval"
            else ["sft", "--base", "runs/pre", "--data", tiny / "data", "--out", "sft_run"])
    assert_user_error(run(tmp_path, *argv), "did you mean runs/pre/model?")
    assert snapshot(tmp_path) == before


def test_pretrain_refuses_to_restart_an_existing_run_silently(tmp_path, tiny):
    run_dir = tmp_path / "run"
    (run_dir / "checkpoints" / "step_10").mkdir(parents=True)
    (run_dir / "checkpoints" / "step_10" / "trainer.json").write_text('{"step": 10}', encoding="utf-8")
    (run_dir / "metrics.jsonl").write_text('{"step": 10, "loss": 2.0}\n', encoding="utf-8")
    before = snapshot(tmp_path)
    assert_user_error(run(tmp_path, "pretrain", "--data", tiny / "data", "--tokenizer", tiny / "tok", "--out", "run"),
                      "already holds a run", "--resume", "--overwrite")
    assert snapshot(tmp_path) == before


def test_plot_on_a_truncated_metrics_file(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "metrics.jsonl").write_text('{"step": 1, "lo', encoding="utf-8")
    before = snapshot(tmp_path)
    assert_user_error(run(tmp_path, "plot", "run"), "cut off")
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("argv, needle", [
    (["eval", "m", "--data", "d", "--limit", "0"], "--limit must be >= 1"),
    (["demo", "--quick", "--threads", "many"], "--threads expects a positive integer"),
    (["tokenizer", "train", "--input", "missing.txt", "--vocab-size", "300", "--out", "t"], "no such file"),
    (["sft", "--data", "d", "--base", "b", "--lr", "fast"], "lr expects a number"),
])
def test_bad_values(tmp_path, argv, needle):
    before = snapshot(tmp_path)
    assert_user_error(run(tmp_path, *argv), needle)
    assert snapshot(tmp_path) == before


# --------------------------------------------------------------- usage errors: the subcommand's usage
def test_unknown_flag_shows_the_subcommands_usage_and_the_closest_flag(tmp_path):
    proc = run(tmp_path, "pretrain", "--data", "d", "--tokenizer", "t", "--max-stepz", "5")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("usage: scratchgpt pretrain "), proc.stderr[:200]
    assert "unrecognized arguments: --max-stepz 5 (did you mean --max-steps?)" in proc.stderr
    proc = run(tmp_path, "data", "prepare", "--out", "x", "--quiet")
    assert proc.stderr.startswith("usage: scratchgpt data prepare "), proc.stderr[:200]
    assert list(tmp_path.iterdir()) == []


def test_version_and_python_dash_m(tmp_path):
    import scratchgpt
    proc = run(tmp_path, "--version")
    assert proc.returncode == 0 and proc.stdout.strip() == f"scratchgpt {scratchgpt.__version__}"
    proc = run(tmp_path, "--help")
    assert proc.returncode == 0 and proc.stdout.startswith("usage: scratchgpt ")
