"""Chapters 5, 7, 8, 9 run in --quick mode and print what they measured."""
import os
import subprocess
import sys

import pytest

ENV = {**os.environ, "NUMBA_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("chapters")  # shared: data, tokenizer and base model are cached here


def run_chapter(name, *args):
    proc = subprocess.run([sys.executable, "-m", f"scratchgpt.chapters.{name}", "--quick", *args],
                          capture_output=True, text=True, env=ENV, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_ch7_tracking(work):
    out = run_chapter("ch7", "--out", str(work))
    assert "compare_val_loss.svg" in out and "curves.svg" in out
    assert "resumed log == uninterrupted log (except timings): True" in out
    assert (work / "ch7" / "compare_val_loss.svg").read_text().startswith("<svg")
    # every path it points to is kept (it printed them under --out, which stays)
    printed = [tok for tok in out.split() if tok.endswith(".svg")]
    assert printed and all(__import__("pathlib").Path(p).is_file() for p in printed), printed
    assert f"are kept in {work}" in out


def test_ch8_peft_side_by_side(work):
    out = run_chapter("ch8", "--out", str(work))
    rows = [l for l in out.splitlines() if l.split()[:1] and l.split()[0] in ("full", "lora", "adapter", "prefix")]
    assert [r.split()[0] for r in rows] == ["full", "lora", "adapter", "prefix"]
    assert sum("bit-identical" in r for r in rows) == 3 and "CHANGED" not in out


def test_ch9_faq_experiments(work):
    out = run_chapter("ch9", "--out", str(work))
    for needle in ("== Q2", "== Q3", "== Q4", "accumulated", "mixed precision", "early stopping", "weight decay"):
        assert needle in out
