"""Metrics log: one JSON object per line (JSONL), flushed as it is written.

JSONL rather than CSV because records differ (a training step has ``loss``/``lr``/``grad_norm``,
an evaluation adds ``val_loss``); rather than one JSON array because a killed run must leave a
readable file. On ``--resume`` the records after the checkpoint's step are dropped, so the log
of a resumed run reads exactly like the log of an uninterrupted one.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from ..errors import DataError

FIELDS = ("step", "loss", "val_loss", "lr", "grad_norm", "tokens_per_s", "elapsed")


def _clean(v):
    # JSON has no NaN/inf; write them as strings so the file stays standard JSON
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    return v


class MetricsLog:
    """Appends records to ``path``; ``path=None`` keeps no file (a process that must not write,
    e.g. a data-parallel rank other than 0) and only returns the cleaned records."""

    def __init__(self, path, resume_step: int | None = None):
        self._f = None
        if path is None:
            return
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if resume_step is None:
            self.path.write_text("", encoding="utf-8")
        else:
            kept = [r for r in read_metrics(self.path) if r.get("step", 0) <= resume_step] if self.path.exists() else []
            with open(self.path, "w", encoding="utf-8") as f:
                for r in kept:
                    f.write(json.dumps(r) + "\n")
        self._f = open(self.path, "a", encoding="utf-8")

    def log(self, **record) -> dict:
        rec = {k: _clean(v) for k, v in record.items()}
        if self._f is not None:
            self._f.write(json.dumps(rec) + "\n")
            self._f.flush()
        return rec

    def close(self) -> None:
        if self._f is not None:
            self._f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def read_metrics(path) -> list[dict]:
    """All records of a metrics JSONL file; a torn last line (a killed run) is ignored."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: metrics file not found (expected a metrics.jsonl written by training)")
    out = []
    lines = path.read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            if i == len(lines) - 1:
                break  # the run was killed while writing this line
            raise DataError(f"{path}:{i + 1}: not a JSON object") from None
        for k, v in rec.items():
            if isinstance(v, str) and v in ("nan", "inf", "-inf"):
                rec[k] = float(v)
        out.append(rec)
    return out
