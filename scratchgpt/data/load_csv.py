"""The tutorial's CSV: one row = one exchange, ``context`` (what the user said) -> ``reply``.

Optional columns:
- ``conversation_id`` + ``turn``: rows sharing an id form one multi-turn conversation, ordered
  by ``turn``. The rows of one conversation must be contiguous (that is what lets us stream a
  file larger than memory); an id that comes back after other conversations is reported.
- ``role``: who speaks in ``context``; ``user`` (default) or ``system`` (a system prompt row,
  whose ``reply`` must be empty).
- ``topic``, ``language``: labels from the source (kept by annotation).
- ``slots``: a JSON object (e.g. ``{"order_id": "A12345"}``): the values this row's reply
  must contain. ``meta["slots"]`` merges them over the conversation.
- any other column (e.g. ``intent``) is kept as a string; ``meta["exchanges"]`` lists, per
  row in turn order, that row's ``slots`` and extra columns.

Malformed rows (bad quoting, wrong number of fields, a non-integer turn, invalid slots JSON)
are reported with file:line and skipped.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Iterator

from .records import Conversation, Message
from .report import Report

REQUIRED = ("context", "reply")
KNOWN = {"context", "reply", "conversation_id", "turn", "role", "topic", "language", "slots"}


def _rows(path: Path, report: Report):
    """(first_line, last_line, fields) per record; csv errors are reported and skipped."""
    with open(path, newline="", encoding="utf-8-sig", errors="replace") as f:
        reader = csv.reader(f, strict=True)
        prev_end = 0
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as e:
                report.malformed(path, prev_end + 1, f"CSV parse error: {e}")
                prev_end = reader.line_num
                continue
            start, prev_end = prev_end + 1, reader.line_num
            if row:  # a blank line is not a record
                yield start, prev_end, row


def load_csv(path, report: Report) -> Iterator[Conversation]:
    path = Path(path)
    rows = _rows(path, report)
    header = None
    for line, _, row in rows:
        header = [h.strip().lower() for h in row]
        break
    if header is None:
        report.malformed(path, 1, "empty CSV file (expected a header row)")
        return
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        report.malformed(path, 1, f"CSV header lacks column(s) {missing}; expected at least "
                                  f"'context' and 'reply', got {header}")
        return
    col = {name: i for i, name in enumerate(header)}
    multi = "conversation_id" in col

    group: list[tuple[int, dict]] = []   # rows of the conversation being assembled
    group_id = None
    finished_ids: set[str] = set()

    def flush():
        if not group:
            return None
        conv = _build(path, group, group_id if multi else None, report)
        group.clear()
        return conv

    for line, _, row in rows:
        if len(row) != len(header):
            report.malformed(path, line, f"expected {len(header)} fields, got {len(row)}")
            continue
        rec = dict(zip(header, row))
        if "\ufffd" in "".join(row):
            report.modify("load", "invalid UTF-8 replaced")
        cid = rec.get("conversation_id", "").strip() if multi else None
        if multi and not cid:
            report.malformed(path, line, "empty conversation_id")
            continue
        if multi and cid != group_id:
            conv = flush()
            if conv is not None:
                yield conv
            if group_id is not None:
                finished_ids.add(group_id)
            if cid in finished_ids:
                report.malformed(path, line, f"conversation_id {cid!r} appears again after other "
                                             "conversations (rows of a conversation must be contiguous)")
                group_id = None
                continue
            group_id = cid
        group.append((line, rec))
        if not multi:
            conv = flush()
            if conv is not None:
                yield conv
    conv = flush()
    if conv is not None:
        yield conv


def _build(path: Path, group, cid, report: Report):
    first_line = group[0][0]
    if "turn" in group[0][1]:
        try:
            group = sorted(group, key=lambda lr: int(lr[1]["turn"]))
        except ValueError:
            bad = next(lr for lr in group if not lr[1]["turn"].strip().lstrip("-").isdigit())
            report.malformed(path, bad[0], f"turn {bad[1]['turn']!r} is not an integer "
                                           f"(conversation {cid!r} skipped)")
            return None
    messages: list[Message] = []
    labels: dict = {}
    meta: dict = {}
    exchanges: list[dict] = []
    for line, rec in group:
        role = (rec.get("role") or "user").strip().lower() or "user"
        if role not in ("user", "system"):
            report.malformed(path, line, f"role {role!r} (expected 'user' or 'system': the speaker of "
                                         f"'context'; conversation {cid!r} skipped)")
            return None
        if role == "system":
            messages.append(Message("system", rec["context"]))
            if rec["reply"].strip():
                messages.append(Message("assistant", rec["reply"]))
        else:
            messages.append(Message("user", rec["context"]))
            messages.append(Message("assistant", rec["reply"]))
        for key in ("topic", "language"):
            if rec.get(key, "").strip() and key not in labels:
                labels[key] = rec[key].strip()
        row_meta = {k: v for k, v in rec.items() if k not in KNOWN and v != ""}
        if rec.get("slots", "").strip():
            try:
                slots = json.loads(rec["slots"])
                if not isinstance(slots, dict):
                    raise ValueError("not an object")
            except ValueError as e:
                report.malformed(path, line, f"slots is not a JSON object ({e}; conversation {cid!r} skipped)")
                return None
            meta.setdefault("slots", {}).update(slots)
            row_meta["slots"] = slots
        exchanges.append(row_meta)
    if any(exchanges):
        meta["exchanges"] = exchanges  # per row: slots and extra columns, in turn order
    return Conversation(messages, topic=labels.get("topic"), language=labels.get("language"),
                        source=f"{path}:{first_line}", id=cid or f"{path.name}:{first_line}", meta=meta)
