"""``--download``: fetch a well-known public corpus as plain text (needs a network; never used in tests)."""
from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

from ..errors import DataError

CORPORA = {
    # Karpathy's char-rnn TinyShakespeare (~1.1 MB)
    "tinyshakespeare": "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
    # the validation file of TinyStories (Eldan & Li, 2023; ~19 MB) — the train file is ~1.9 GB
    "tinystories": "https://huggingface.co/datasets/roneneldan/TinyStories/resolve/main/TinyStories-valid.txt",
}


def download(name: str, dest_dir, timeout: float = 30.0) -> Path:
    if name not in CORPORA:
        raise DataError(f"unknown corpus {name!r} for --download; expected one of {sorted(CORPORA)}")
    url = CORPORA[name]
    dest = Path(dest_dir) / f"{name}.txt"
    if dest.is_file() and dest.stat().st_size > 0:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(".part")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp, open(tmp, "wb") as f:
            while chunk := resp.read(1 << 20):
                f.write(chunk)
    except (urllib.error.URLError, OSError, TimeoutError) as e:
        tmp.unlink(missing_ok=True)
        reason = getattr(e, "reason", e)
        raise DataError(f"cannot download {name} from {url} (no network? {reason})") from None
    tmp.replace(dest)
    return dest
