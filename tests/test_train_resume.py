"""Checkpoints: a run killed with SIGKILL and resumed ends with bit-identical weights; corrupt or
incompatible checkpoints fail with CheckpointError; non-finite steps never touch the weights."""
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from scratchgpt.errors import CheckpointError
from scratchgpt.train.run_checkpoints import latest_checkpoint, load_arrays, load_checkpoint

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from train_resume_child import build  # noqa: E402


def final_state(run_dir):
    path = latest_checkpoint(run_dir)
    model, opt, trainer = load_checkpoint(path)
    return path, model, opt, trainer


def metrics_without_timing(run_dir):
    recs = [json.loads(l) for l in (Path(run_dir) / "metrics.jsonl").read_text().splitlines() if l.strip()]
    return [{k: v for k, v in r.items() if k not in ("tokens_per_s", "elapsed")} for r in recs]


def test_sigkill_then_resume_is_bit_identical(tmp_path):
    ref_dir, run_dir = tmp_path / "ref", tmp_path / "killed"
    build(ref_dir, resume=False).fit()

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE.parent), os.environ.get("PYTHONPATH", "")])}
    child = subprocess.Popen([sys.executable, str(HERE / "train_resume_child.py"), str(run_dir)],
                             stdout=subprocess.PIPE, text=True, env=env)
    killed_at = None
    for line in child.stdout:
        if line.startswith("step ") and int(line.split()[1]) >= 5:
            os.kill(child.pid, signal.SIGKILL)  # no cleanup, no final checkpoint
            killed_at = int(line.split()[1])
            break
    child.wait(timeout=60)
    assert killed_at is not None and child.returncode == -signal.SIGKILL
    ckpt = latest_checkpoint(run_dir)
    assert ckpt is not None and ckpt.name in ("step_0000004", "step_0000006")

    build(run_dir, resume=True).fit()

    _, ref_model, ref_opt, ref_tr = final_state(ref_dir)
    path, model, opt, tr = final_state(run_dir)
    assert path.name == "step_0000010"
    assert ref_model.keys() == model.keys()
    for k in ref_model:
        assert np.array_equal(ref_model[k], model[k]), f"weights differ after resume: {k}"
    for k, v in ref_opt["arrays"].items():
        assert np.array_equal(v, opt["arrays"][k]), f"optimizer state differs: {k}"
    assert ref_tr["data"] == tr["data"] and ref_tr["dropout_rng"] == tr["dropout_rng"]
    assert metrics_without_timing(ref_dir) == metrics_without_timing(run_dir)


def test_corrupt_and_incompatible_checkpoints(tmp_path):
    run = tmp_path / "run"
    tr = build(run, resume=False)
    tr.fit(stop_after=2)
    tr.save()
    path = latest_checkpoint(run)
    weights = path / "model.safetensors"
    blob = bytearray(weights.read_bytes())
    blob[-3] ^= 0xFF  # flip bits inside a tensor
    weights.write_bytes(bytes(blob))
    with pytest.raises(CheckpointError, match="checksum mismatch"):
        build(run, resume=True)
    weights.write_bytes(bytes(blob[: len(blob) // 2]))
    with pytest.raises(CheckpointError):
        load_checkpoint(path)
    (path / "trainer.json").unlink()
    with pytest.raises(CheckpointError, match="trainer.json is missing"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="no checkpoint to resume"):
        build(tmp_path / "empty", resume=True)


def test_resume_into_a_different_model_is_refused(tmp_path):
    from scratchgpt.models import GPT, GPTConfig
    run = tmp_path / "run"
    tr = build(run, resume=False)
    tr.fit(stop_after=1)
    tr.save()
    tr2 = build(tmp_path / "other", resume=False)
    tr2.model = GPT(GPTConfig(vocab_size=61, block_size=16, n_layer=2, n_head=2, n_embd=32), seed=0)
    arrays, _, _ = load_checkpoint(latest_checkpoint(run))
    from scratchgpt.train.run_checkpoints import check_model_arrays
    with pytest.raises(CheckpointError, match="shape"):
        check_model_arrays(tr2.model, arrays, "ckpt")


def test_nonfinite_loss_stops_without_touching_weights(tmp_path):
    from scratchgpt.train.trainer import TrainingError
    tr = build(tmp_path / "nan", resume=False)
    p = tr.model.transformer.h[0].mlp.c_fc.weight
    p.data[0, 0] = np.inf  # poisons the forward pass
    before = {n: q.data.copy() for n, q in tr.model.named_parameters()}
    with pytest.raises(TrainingError, match="non-finite"):
        tr.train_step()
    for n, q in tr.model.named_parameters():
        assert np.array_equal(before[n], q.data, equal_nan=True), n


def test_mixed_precision_skips_overflowing_steps(tmp_path):
    msgs = []
    tr = build(tmp_path / "mp", resume=False, mixed=True)
    tr.log = msgs.append
    tr.scaler.scale = 2.0 ** 40  # float16 gradients overflow at this scale
    before = {n: q.data.copy() for n, q in tr.model.named_parameters()}
    info = tr.train_step()
    assert info["skipped"] and tr.scaler.scale == 2.0 ** 39 and "skipped" in msgs[0]
    for n, q in tr.model.named_parameters():
        assert np.array_equal(before[n], q.data), n
    assert all(not s for s in tr.optimizer.state.values())  # no moment was updated
    tr.scaler.scale = 1024.0
    assert not tr.train_step()["skipped"]
    assert any(not np.array_equal(before[n], q.data) for n, q in tr.model.named_parameters())
    assert all(q.data.dtype == np.float32 for q in tr.model.parameters())  # masters stay float32


def test_early_stopping_restores_best_weights(tmp_path):
    from dataclasses import replace
    tr = build(tmp_path / "es", resume=False)
    # a min_delta no improvement can meet: only the first evaluation counts as "best"
    tr.cfg = replace(tr.cfg, patience=1, min_delta=1e9)
    res = tr.fit()
    assert res.stopped_early and res.steps == 6  # evals at 3 (best) and 6 (no improvement)
    best = load_arrays(tmp_path / "es" / "best.safetensors")
    for n, q in tr.model.named_parameters():
        assert np.array_equal(best[n], q.data), n
