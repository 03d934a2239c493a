"""Plain text for pretraining, streamed: a file becomes Documents of at most ``max_chars``
characters, cut at paragraph breaks (blank lines) when possible, so a file larger than memory
never has to be read whole."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

from .records import Document
from .report import Report


def load_text(path, report: Report, max_chars: int = 20000) -> Iterator[Document]:
    path = Path(path)
    buf: list[str] = []
    size = 0
    start = 1
    with open(path, encoding="utf-8-sig", errors="replace") as f:
        for lineno, line in enumerate(f, 1):
            if "\ufffd" in line:
                report.modify("load", "invalid UTF-8 replaced")
            at_break = not line.strip()
            if buf and size + len(line) > max_chars and (at_break or size > 2 * max_chars):
                yield Document("".join(buf), source=f"{path}:{start}", id=f"{path.name}:{start}")
                buf, size, start = [], 0, lineno
            if not buf and at_break:
                start = lineno + 1
                continue
            buf.append(line)
            size += len(line)
    if buf:
        yield Document("".join(buf), source=f"{path}:{start}", id=f"{path.name}:{start}")
