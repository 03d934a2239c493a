"""What every data step did, counted: kept, dropped (by reason), modified, and malformed input.

Nothing is dropped silently: each step calls ``report.drop(step, reason)`` for every record it
removes, and loaders call ``report.malformed(file, line, reason)`` for every row they cannot
parse. The report prints as a table and saves as JSON beside the prepared data.
"""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

# Keep the first N malformed rows verbatim (file, line, reason); count all of them.
MAX_MALFORMED_LISTED = 200
MAX_EXAMPLES_PER_REASON = 3


class StepStats:
    def __init__(self):
        self.seen = 0
        self.kept = 0
        self.dropped: Counter = Counter()
        self.modified: Counter = Counter()
        self.examples: dict[str, list[str]] = {}

    def to_dict(self) -> dict:
        return {"seen": self.seen, "kept": self.kept, "dropped": dict(self.dropped),
                "modified": dict(self.modified), "examples": self.examples}


class Report:
    def __init__(self):
        self.steps: dict[str, StepStats] = {}
        self.malformed_rows: list[dict] = []
        self.malformed_count = 0
        self.malformed_by_file: Counter = Counter()
        self.counts: dict[str, dict] = {}  # free-form tallies, e.g. per split/language/topic
        self.notes: list[str] = []

    def step(self, name: str) -> StepStats:
        if name not in self.steps:
            self.steps[name] = StepStats()
        return self.steps[name]

    def keep(self, step: str, n: int = 1):
        s = self.step(step)
        s.seen += n
        s.kept += n

    def drop(self, step: str, reason: str, n: int = 1, example: str | None = None):
        s = self.step(step)
        s.seen += n
        s.dropped[reason] += n
        if example is not None:
            ex = s.examples.setdefault(reason, [])
            if len(ex) < MAX_EXAMPLES_PER_REASON:
                ex.append(example[:120])

    def modify(self, step: str, what: str, n: int = 1):
        self.step(step).modified[what] += n

    def malformed(self, file, line: int, reason: str):
        self.malformed_count += 1
        self.malformed_by_file[str(file)] += 1
        if len(self.malformed_rows) < MAX_MALFORMED_LISTED:
            self.malformed_rows.append({"file": str(file), "line": int(line), "reason": reason})

    def tally(self, table: str, key: str, n: int = 1):
        t = self.counts.setdefault(table, {})
        t[key] = t.get(key, 0) + n

    def empty_reason(self) -> str:
        """Why nothing was kept, in one line: how much was loaded, what dropped it."""
        loaded = self.steps["load"].kept if "load" in self.steps else 0
        if not loaded:
            bad = f" ({self.malformed_count} malformed rows)" if self.malformed_count else ""
            return f"the inputs hold no records{bad}; is the file empty or in another format (--format)?"
        drops = Counter()
        for stats in self.steps.values():
            drops.update(stats.dropped)
        top = ", ".join(f"{reason} {n}" for reason, n in drops.most_common(3))
        return f"all {loaded} loaded records were dropped ({top})"

    def note(self, text: str):
        self.notes.append(text)

    def to_dict(self) -> dict:
        return {
            "steps": {k: v.to_dict() for k, v in self.steps.items()},
            "malformed": {"count": self.malformed_count, "by_file": dict(self.malformed_by_file),
                          "rows": self.malformed_rows},
            "counts": self.counts,
            "notes": self.notes,
        }

    def save(self, path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        return path

    def format(self, max_malformed: int = 10) -> str:
        lines = [f"{'step':<22}{'seen':>8}{'kept':>8}{'dropped':>9}  reasons"]
        for name, s in self.steps.items():
            reasons = ", ".join(f"{r}: {c}" for r, c in s.dropped.most_common())
            lines.append(f"{name:<22}{s.seen:>8}{s.kept:>8}{sum(s.dropped.values()):>9}  {reasons}")
            if s.modified:
                mods = ", ".join(f"{r}: {c}" for r, c in s.modified.most_common())
                lines.append(f"{'':<22}{'':>8}{'':>8}{'':>9}  modified: {mods}")
        lines.append(f"malformed input rows: {self.malformed_count}")
        for row in self.malformed_rows[:max_malformed]:
            lines.append(f"  {row['file']}:{row['line']}: {row['reason']}")
        if self.malformed_count > max_malformed:
            lines.append(f"  ... {self.malformed_count - max_malformed} more (see report.json)")
        for table, t in self.counts.items():
            items = ", ".join(f"{k}: {v}" for k, v in sorted(t.items(), key=lambda kv: (-kv[1], kv[0])))
            lines.append(f"{table}: {items}")
        for n in self.notes:
            lines.append(f"note: {n}")
        return "\n".join(lines)
