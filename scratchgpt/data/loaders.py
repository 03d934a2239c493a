"""Pick a loader per file (by ``--format`` or by extension) and walk folders."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Iterator

from ..errors import DataError
from .load_csv import load_csv
from .load_jsonl import load_jsonl
from .load_text import load_text
from .load_yaml import load_yaml
from .records import Conversation, Document
from .report import Report

FORMATS = ("auto", "csv", "jsonl", "yaml", "text")
EXTENSIONS = {".csv": "csv", ".jsonl": "jsonl", ".json": "jsonl", ".yml": "yaml", ".yaml": "yaml",
              ".txt": "text", ".md": "text", ".text": "text"}
LOADERS = {"csv": load_csv, "jsonl": load_jsonl, "yaml": load_yaml, "text": load_text}


def format_of(path: Path, fmt: str = "auto") -> str:
    if fmt not in FORMATS:
        raise DataError(f"unknown format {fmt!r}; expected one of {FORMATS}")
    if fmt != "auto":
        return fmt
    got = EXTENSIONS.get(path.suffix.lower())
    if got is None:
        raise DataError(f"{path}: cannot tell the format from the extension {path.suffix!r}; "
                        f"expected one of {sorted(EXTENSIONS)} or pass --format")
    return got


def expand_inputs(inputs: Iterable, fmt: str = "auto") -> list[Path]:
    """Files as given; folders -> every file inside (recursively, sorted) with a known extension."""
    files = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = sorted(q for q in p.rglob("*") if q.is_file() and
                           (fmt != "auto" or q.suffix.lower() in EXTENSIONS))
            if not found:
                raise DataError(f"{p}: folder holds no data files (expected {sorted(EXTENSIONS)})")
            files += found
        elif p.is_file():
            files.append(p)
        else:
            raise DataError(f"{p}: no such file or folder (expected a data file or a folder of them)")
    return files


def require_utf8(path) -> None:
    """Refuse a file that is not UTF-8, naming the first bad byte's offset and line. One rule for
    every command that reads text (``data prepare``, ``tokenizer train|stats``): decoding with
    replacement would silently write U+FFFD into the data."""
    data = Path(path).read_bytes()
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise DataError(f"{path}: not UTF-8 text (byte 0x{data[err.start]:02x} at offset {err.start}, line {line}); "
                        "convert it to UTF-8 first, e.g. iconv -f GBK -t UTF-8") from None


def load_records(inputs: Iterable, report: Report, fmt: str = "auto") -> Iterator[Conversation | Document]:
    for path in expand_inputs(inputs, fmt):
        for rec in LOADERS[format_of(path, fmt)](path, report):
            report.keep("load")
            yield rec


def chunked(records: Iterable, size: int) -> Iterator[list]:
    """Batches of ``size`` records: later steps hold one chunk in memory, not the corpus."""
    buf = []
    for r in records:
        buf.append(r)
        if len(buf) >= size:
            yield buf
            buf = []
    if buf:
        yield buf
