"""`scratchgpt demo --quick` end to end (offline, < 60 s), and the training CLI's error handling."""
import json
import os
import re
import subprocess
import sys
import time

import pytest

from scratchgpt.cli import main as cli_main

# one thread per process: the suite runs with pytest -n 2 on 2 cores, and spinning OpenMP/BLAS
# threads on an oversubscribed machine cost far more than they give (measured 10-20x)
ENV = {**os.environ, "NUMBA_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}


def run_cli(*argv):
    """The CLI in a one-thread subprocess (see ENV); returns the exit code."""
    proc = subprocess.run([sys.executable, "-m", "scratchgpt.cli", *argv], capture_output=True, text=True,
                          env=ENV, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.returncode


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "run"
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "scratchgpt.cli", "demo", "--quick", "--out", str(out),
                           "--no-progress"], capture_output=True, text=True, env=ENV, timeout=120)
    wall = time.perf_counter() - t0
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, proc.stdout, wall


def test_demo_quick_writes_eval_json(demo_run):
    out, stdout, wall = demo_run
    assert wall <= 60, f"demo --quick took {wall:.0f}s"
    ev = json.loads((out / "eval.json").read_text())
    for key in ("val_loss", "perplexity", "task_accuracy", "rouge_l", "bleu", "distinct_1", "distinct_2"):
        assert isinstance(ev[key], float), key
    assert 0.0 <= ev["task_accuracy"] <= 1.0 and 0.0 <= ev["rouge_l"] <= 1.0
    assert abs(ev["perplexity"] - __import__("math").exp(ev["val_loss"])) < 1e-6 * ev["perplexity"]
    assert ev["n_conversations"] > 0
    # issue 9: per-language / per-slot-type breakdown and the paraphrase set, in eval.json
    assert set(ev["by_language"]) <= {"en", "zh"} and ev["by_language"]
    assert all(0.0 <= v["echoed"] <= 1.0 for v in ev["by_slot_type"].values())
    assert ev["paraphrase"]["n_conversations"] > 0 and 0.0 <= ev["paraphrase"]["task_accuracy"] <= 1.0
    blind = ev["paraphrase_blind"]
    assert blind["n_conversations"] > 0 and 0.0 <= blind["task_accuracy"] <= 1.0 and blind["by_language"]
    assert ev["values_dev"]["n_conversations"] > 0 and set(ev["values_dev"]["by_slot_type"]) == {
        "order_id", "amount", "email"}
    for run in ("pretrain", "sft"):
        assert (out / run / "curves.svg").is_file() and (out / run / "metrics.jsonl").is_file()
    assert (out / "sft" / "model" / "tokenizer.json").is_file()
    assert "User: How are you?" in stdout and "next:" in stdout
    assert "scratchgpt chat " in stdout.split("next:")[-1]          # the demo names the chat command
    # --threads auto (the default): each stage says how many steps ran at which thread count
    if len(os.sched_getaffinity(0)) > 1:
        for stage in ("pretrain", "sft"):
            used = ev["setup"]["threads"][stage]
            steps = re.findall(r"(\d+) threads? for (\d+) steps", used)
            assert used.startswith("auto: ") and sum(int(k) for _, k in steps) == 40, used   # QUICK: 40 steps each
        assert "threads auto: " in stdout


def test_eval_and_plot_commands_on_the_demo_output(demo_run, tmp_path, capsys):
    out, _, _ = demo_run
    target = tmp_path / "e.json"
    rc = run_cli("eval", str(out / "sft" / "model"), "--data", str(out / "data" / "customer_service"),
                 "--limit", "2", "--max-new-tokens", "4", "--out", str(target))
    assert rc == 0
    ev = json.loads(target.read_text())
    assert ev["n_conversations"] == 2 and "task_accuracy" in ev
    assert cli_main(["plot", str(out / "sft"), "--out", str(tmp_path / "c.svg")]) == 0
    assert (tmp_path / "c.svg").read_text().startswith("<svg")


def test_sft_resume_and_lora_cli(demo_run, tmp_path, capsys):
    out, _, _ = demo_run
    data, base = str(out / "data" / "customer_service"), str(out / "pretrain" / "model")
    common = ["--data", data, "--base", base, "--max_steps", "3", "--warmup_steps", "1", "--batch_size", "2",
              "--seq_len", "48", "--eval_every", "3", "--eval_batches", "1", "--no-progress"]
    assert run_cli("sft", *common, "--peft", "lora", "--lora_rank", "2", "--out", str(tmp_path / "lora")) == 0
    assert (tmp_path / "lora" / "peft" / "peft.safetensors").is_file()
    rc = run_cli("eval", str(tmp_path / "lora" / "peft"), "--data", data, "--limit", "1",
                 "--max-new-tokens", "2", "--out", str(tmp_path / "l.json"))
    assert rc == 0
    # resuming a finished run trains no further and keeps the same final checkpoint
    assert run_cli("sft", *common, "--out", str(tmp_path / "full")) == 0
    before = (tmp_path / "full" / "model" / "model.safetensors").read_bytes()
    assert run_cli("sft", *common, "--out", str(tmp_path / "full"), "--resume") == 0
    assert (tmp_path / "full" / "model" / "model.safetensors").read_bytes() == before


@pytest.mark.parametrize("argv, needle", [
    (["pretrain", "--data", "/nonexistent", "--tokenizer", "/nonexistent/tok.json"], "tokenizer file"),
    (["sft", "--data", "/x", "--base", "/x", "--lr", "fast"], "lr expects a number"),
    (["sft", "--data", "/x", "--base", "/nonexistent"], "no such directory (expected a model directory"),
    (["eval", "/nonexistent", "--data", "/x"], "no such directory (expected a model directory"),
    (["plot", "/nonexistent"], "metrics file not found"),
])
def test_cli_errors_are_one_line(argv, needle, capsys):
    assert cli_main(argv) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_ch5_walkthrough_on_the_demo_run(demo_run):
    out, _, _ = demo_run
    proc = subprocess.run([sys.executable, "-m", "scratchgpt.chapters.ch5", "--quick", "--from", str(out)],
                          capture_output=True, text=True, env=ENV, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "§5.4" in proc.stdout and proc.stdout.count("User: How are you?") >= 4
    assert "reusing the finished run" in proc.stdout
