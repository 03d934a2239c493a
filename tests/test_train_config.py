"""Training configs: frozen, validated, CLI overrides type-checked; metrics log; loss scaler; SVG plot."""
import dataclasses
import json

import pytest

from scratchgpt.errors import ConfigError, DataError
from scratchgpt.train.amp import LossScaler
from scratchgpt.train.config import (ModelConfig, PeftConfig, TrainConfig, add_config_arguments,
                                     config_from_args, from_dict, to_dict, with_overrides)
from scratchgpt.train.metrics import MetricsLog, read_metrics
from scratchgpt.train.plot import nice_ticks, plot_run


def test_configs_are_frozen_and_validated():
    cfg = TrainConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.lr = 1.0
    with pytest.raises(ConfigError, match="lr"):
        TrainConfig(lr=-1.0)
    with pytest.raises(ConfigError, match="warmup_steps"):
        TrainConfig(max_steps=10, warmup_steps=20)
    with pytest.raises(ConfigError, match="optimizer"):
        TrainConfig(optimizer="lion")
    with pytest.raises(ConfigError, match="n_embd"):
        ModelConfig(n_embd=30, n_head=4)
    with pytest.raises(ConfigError, match="method"):
        PeftConfig(method="ia3")


def test_overrides_are_type_checked():
    cfg = with_overrides(TrainConfig(), {"lr": "0.01", "max_steps": "7", "warmup_steps": "2",
                                         "mixed_precision": "true"})
    assert cfg.lr == 0.01 and cfg.max_steps == 7 and cfg.mixed_precision is True
    with pytest.raises(ConfigError, match="max_steps expects an integer"):
        with_overrides(TrainConfig(), {"max_steps": "ten"})
    with pytest.raises(ConfigError, match="mixed_precision expects a boolean"):
        with_overrides(TrainConfig(), {"mixed_precision": "maybe"})
    with pytest.raises(ConfigError, match="unknown TrainConfig key 'lrr'"):
        with_overrides(TrainConfig(), {"lrr": 1})
    assert from_dict(TrainConfig, to_dict(cfg)) == cfg


def test_cli_arguments_roundtrip():
    from scratchgpt.commands._flags import Parser
    p = Parser()
    add_config_arguments(p, TrainConfig)
    add_config_arguments(p, ModelConfig)
    # dashed flags; the underscore spelling is accepted as an alias
    args = p.parse_args(["--lr", "0.002", "--n-layer", "2", "--grad_accum", "4"])
    t = config_from_args(TrainConfig, args)
    m = config_from_args(ModelConfig, args)
    assert (t.lr, t.grad_accum, m.n_layer) == (0.002, 4, 2)
    with pytest.raises(ConfigError, match="grad_accum"):
        config_from_args(TrainConfig, p.parse_args(["--grad-accum", "0"]))
    assert "--max-steps" in p.format_help() and "--max_steps" not in p.format_help()


def test_short_runs_scale_warmup_instead_of_failing():
    from scratchgpt.commands._flags import Parser
    p = Parser()
    add_config_arguments(p, TrainConfig)
    notes = []
    cfg = config_from_args(TrainConfig, p.parse_args(["--max-steps", "5"]), note=notes.append)
    assert (cfg.max_steps, cfg.warmup_steps) == (5, 0) and "warmup" in notes[0]
    cfg = config_from_args(TrainConfig, p.parse_args(["--max-steps", "100"]), note=notes.append)
    assert cfg.warmup_steps == TrainConfig().warmup_steps and len(notes) == 1  # nothing to scale
    with pytest.raises(ConfigError, match="warmup_steps"):  # both given and inconsistent: the user's call
        config_from_args(TrainConfig, p.parse_args(["--max-steps", "5", "--warmup-steps", "9"]))


def test_metrics_log_resume_drops_later_records(tmp_path):
    path = tmp_path / "metrics.jsonl"
    with MetricsLog(path) as log:
        for s in range(1, 6):
            log.log(step=s, loss=1.0 / s, lr=0.1)
        log.log(step=6, loss=float("nan"))
    with open(path, "a") as f:
        f.write('{"step": 7, "lo')  # torn line of a killed run
    recs = read_metrics(path)
    assert [r["step"] for r in recs] == [1, 2, 3, 4, 5, 6] and recs[-1]["loss"] != recs[-1]["loss"]
    with MetricsLog(path, resume_step=3) as log:
        log.log(step=4, loss=0.2)
    assert [r["step"] for r in read_metrics(path)] == [1, 2, 3, 4]
    with pytest.raises(DataError, match="not found"):
        read_metrics(tmp_path / "none.jsonl")


def test_loss_scaler_backs_off_and_grows():
    s = LossScaler(init_scale=1024, growth_interval=3)
    s.update(True)
    assert s.scale == 512 and s.skipped == 1
    for _ in range(3):
        s.update(False)
    assert s.scale == 1024
    st = s.state_dict()
    s2 = LossScaler()
    s2.load_state_dict(json.loads(json.dumps(st)))
    assert s2.state_dict() == st


def test_nice_ticks_and_svg(tmp_path):
    t = nice_ticks(0.0, 97.0)
    assert t[0] == 0 and t[-1] <= 97 and all(b > a for a, b in zip(t, t[1:]))
    with MetricsLog(tmp_path / "metrics.jsonl") as log:
        for s in range(1, 11):
            rec = {"step": s, "loss": 3.0 - 0.1 * s, "lr": 1e-3, "grad_norm": 1.0 + s}
            if s % 5 == 0:
                rec["val_loss"] = 3.1 - 0.1 * s
            log.log(**rec)
    out = plot_run(tmp_path)
    svg = out.read_text()
    assert svg.startswith("<svg") and svg.rstrip().endswith("</svg>")
    assert svg.count("<polyline") == 4  # train loss, val loss, lr, grad norm
    import xml.etree.ElementTree as ET
    ET.fromstring(svg)  # well-formed XML
