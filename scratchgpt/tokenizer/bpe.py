"""BPETokenizer: byte-level BPE with special tokens, our JSON format, HF and GPT-2 files.

The model is four things:
* ``byte_to_id``: the id of each of the 256 single-byte tokens (identity for tokenizers we train;
  GPT-2 and HF files number them differently);
* ``merges``: (left id, right id) pairs in rank order, and ``merge_ids`` the id each one creates
  (256 + rank for tokenizers we train);
* ``special_tokens``: str -> id, appended after the merges when we train;
* ``pretokenizer``: the pre-tokenizer mode ("scratchgpt" or "gpt2", see pretokenize.py).

Two interchangeable backends compute the same ids: ``backend="cython"`` (default, _bpe.pyx) and
``backend="ref"`` (bpe_ref.py + pretokenize.split_ref, slow, for reading and for tests).

Special tokens are cut out of the text *before* pre-tokenization, and only those the caller
allows (``allowed_special``): by default "<|end|>" typed by a user is ordinary text. Merges never
produce a special id, so ordinary text can never turn into one.

Lone surrogates (e.g. "\ud800", which Python strs may hold but UTF-8 cannot): encoded as their
three "surrogatepass" bytes, so ``encode`` never raises; ``decode`` uses errors="replace", so each
such character comes back as three U+FFFD. We chose this over errors="replace" on the way in
(which would silently turn them into "?") and over decoding with "surrogatepass" (which would
hand lone surrogates to callers that then fail writing UTF-8, e.g. the web server).

The Cython encoder caches the ids of each distinct pre-token it has seen (up to 2**18 pieces,
then it stops adding), which is why line-by-line encoding of real text is fast. A piece is
merged in O(n * distinct merges applied) for n bytes; pieces are short in practice.
"""
from __future__ import annotations

import json
import operator
import os
import re
from pathlib import Path

from ..errors import CheckpointError, ConfigError, DataError
from . import bpe_ref
from .bpe_formats import from_gpt2, from_huggingface, read_json, to_gpt2, to_huggingface
from .pretokenize import CJK_RANGES, DEFAULT_MODE, WHITE_SPACE, get_mode, split_ref

BACKENDS = ("cython", "ref")
FORMAT_VERSION = 1


def _load_cython():
    try:
        from . import _bpe
    except ImportError as err:  # the extension is part of the package: say how to build it
        raise ImportError(
            "scratchgpt.tokenizer._bpe is not built; run `python setup.py build_ext --inplace` "
            "or `pip install -e .` (or pass backend='ref')") from err
    return _bpe


class BPETokenizer:
    kind = "bpe"

    def __init__(self, merges, special_tokens=None, *, byte_to_id=None, merge_ids=None,
                 pretokenizer: str = DEFAULT_MODE, backend: str = "cython"):
        self.pretokenizer = get_mode(pretokenizer).name
        if backend not in BACKENDS:
            raise ConfigError(f"backend must be one of {BACKENDS}, got {backend!r}")
        self.backend = backend
        self.merges = [(int(a), int(b)) for a, b in merges]
        self.byte_to_id = list(range(256)) if byte_to_id is None else [int(i) for i in byte_to_id]
        self.merge_ids = ([256 + r for r in range(len(self.merges))] if merge_ids is None
                          else [int(i) for i in merge_ids])
        if special_tokens is None:
            special_tokens = {}
        elif not isinstance(special_tokens, dict):  # a list: ids follow the merges
            first = 256 + len(self.merges)
            special_tokens = {s: first + k for k, s in enumerate(special_tokens)}
        self.special_tokens = {str(s): int(i) for s, i in special_tokens.items()}
        self._build_vocab()
        self._special_re = {}
        self._encoder = None
        self._ranks = None

    # ------------------------------------------------------------------ vocabulary
    def _build_vocab(self):
        """id -> bytes for every id; raises ConfigError on any inconsistency."""
        if len(self.byte_to_id) != 256:
            raise ConfigError(f"byte_to_id must list 256 ids, got {len(self.byte_to_id)}")
        if len(self.merge_ids) != len(self.merges):
            raise ConfigError("merge_ids and merges differ in length")
        for s in self.special_tokens:
            if not s:
                raise ConfigError("a special token must be a non-empty string")
            try:
                s.encode("utf-8")
            except UnicodeEncodeError:
                raise ConfigError(f"special token {s!r} is not valid Unicode text (lone surrogate)") from None
        n = 256 + len(set(self.merge_ids)) + len(self.special_tokens)
        table: list[bytes | None] = [None] * n

        def define(i, data, what):
            if not 0 <= i < n:
                raise ConfigError(f"{what}: id {i} outside 0..{n - 1} (ids must be contiguous)")
            if table[i] is not None and table[i] != data:
                raise ConfigError(f"{what}: id {i} is already used by another token")
            table[i] = data

        for b, i in enumerate(self.byte_to_id):
            define(i, bytes([b]), f"byte {b}")
        if len(set(self.byte_to_id)) != 256:
            raise ConfigError("byte_to_id gives two bytes the same id")
        for rank, ((a, b), i) in enumerate(zip(self.merges, self.merge_ids)):
            for side in (a, b):
                if not 0 <= side < n or table[side] is None:
                    raise ConfigError(f"merge {rank} ({a}, {b}) uses id {side} before it exists")
            define(i, table[a] + table[b], f"merge {rank}")
        byte_or_merge = set(range(n)) - {i for i, t in enumerate(table) if t is None}
        for s, i in self.special_tokens.items():
            if i in byte_or_merge:
                raise ConfigError(f"special token {s!r} has id {i}, already a byte or merge token")
            define(i, s.encode("utf-8"), f"special token {s!r}")
        if len(set(self.special_tokens.values())) != len(self.special_tokens):
            raise ConfigError("two special tokens share an id")
        missing = [i for i, t in enumerate(table) if t is None]
        if missing:
            raise ConfigError(f"ids {missing[:5]} are not defined (ids must be contiguous)")
        self.id_to_bytes: list[bytes] = table

    @property
    def vocab_size(self) -> int:
        return len(self.id_to_bytes)

    def token_to_id(self, special: str) -> int:
        if special not in self.special_tokens:
            raise ConfigError(f"{special!r} is not a special token of this tokenizer "
                              f"(have {sorted(self.special_tokens)})")
        return self.special_tokens[special]

    def id_to_token_bytes(self, i: int) -> bytes:
        return self.id_to_bytes[i]

    # ------------------------------------------------------------------ training
    @classmethod
    def train(cls, texts, vocab_size: int, special_tokens=None, progress: bool = False,
              pretokenizer: str = DEFAULT_MODE, backend: str = "cython") -> "BPETokenizer":
        """Learn ``vocab_size - 256 - len(special_tokens)`` merges from ``texts`` (iterable of str).

        Deterministic: the same texts give the same merges (ties: see bpe_ref.py).
        Stops early (smaller vocab) if the corpus runs out of pairs.
        """
        specials = list(special_tokens or [])
        if len(set(specials)) != len(specials):
            raise ConfigError(f"special_tokens has duplicates: {specials}")
        if hasattr(vocab_size, "__index__") and not isinstance(vocab_size, bool):
            vocab_size = operator.index(vocab_size)  # numpy ints are fine
        if not isinstance(vocab_size, int) or vocab_size < 256 + len(specials):
            raise ConfigError(f"vocab_size must be an int >= 256 + {len(specials)} special tokens "
                              f"= {256 + len(specials)}, got {vocab_size!r}")
        if isinstance(texts, (str, bytes)):
            raise DataError("texts must be an iterable of str (e.g. a list of lines), not one "
                            f"{type(texts).__name__}")
        if backend not in BACKENDS:
            raise ConfigError(f"backend must be one of {BACKENDS}, got {backend!r}")
        mode = get_mode(pretokenizer)
        num_merges = vocab_size - 256 - len(specials)
        texts = _checked_texts(texts, progress)
        if backend == "ref":
            counts = bpe_ref.count_words(texts, mode.name)
        else:
            counts = _splitter(mode).count(texts)
        if not any(counts.values()) or not counts:
            raise DataError("empty corpus: the texts given to BPETokenizer.train contain no characters")
        if backend == "ref":
            merges = bpe_ref.learn_merges(counts, num_merges)
        else:
            words = [bpe_ref.to_bytes(w) for w in counts]
            bar = None
            if progress:
                from tqdm import tqdm
                bar = tqdm(total=num_merges, desc="BPE merges", unit="merge")
            try:
                merges = _load_cython().train_merges(
                    words, list(counts.values()), num_merges,
                    None if bar is None else (lambda done: bar.update(done - bar.n)))
                if bar is not None:  # the kernel reports every 256 merges and may stop early (no pairs left)
                    bar.total = len(merges)
                    bar.update(len(merges) - bar.n)
            finally:
                if bar is not None:
                    bar.close()
        return cls(merges, specials, pretokenizer=mode.name, backend=backend)

    @classmethod
    def train_from_files(cls, paths, vocab_size: int, **kwargs) -> "BPETokenizer":
        """Train on UTF-8 text files, one text per line."""
        return cls.train(read_lines(paths), vocab_size, **kwargs)

    # ------------------------------------------------------------------ encoding
    def _allowed(self, allowed_special) -> frozenset:
        if allowed_special == "all":
            return frozenset(self.special_tokens)
        if isinstance(allowed_special, str):
            raise ConfigError("allowed_special must be (), 'all' or a set of special token strings, "
                              f"got the string {allowed_special!r}")
        allowed = frozenset(allowed_special)
        unknown = allowed - set(self.special_tokens)
        if unknown:
            raise ConfigError(f"allowed_special has tokens this tokenizer does not know: {sorted(unknown)}")
        return allowed

    def encode(self, text: str, allowed_special=()) -> list[int]:
        if allowed_special == () and self._encoder is not None and type(text) is str:
            return self._encoder.encode(text)  # the hot path: one call straight into Cython
        if not isinstance(text, str):
            raise DataError(f"encode expects a str, got {type(text).__name__}")
        if allowed_special == ():  # the common case, kept cheap for line-by-line encoding
            return self.encode_ordinary(text)
        allowed = self._allowed(allowed_special)
        if not allowed:
            return self.encode_ordinary(text)
        pattern = self._special_re.get(allowed)
        if pattern is None:  # longest first, so "<|end|>" cannot shadow "<|endoftext|>"
            alternatives = sorted(allowed, key=lambda s: (-len(s), s))
            pattern = self._special_re[allowed] = re.compile("|".join(map(re.escape, alternatives)))
        out, pos = [], 0
        for m in pattern.finditer(text):
            out.extend(self.encode_ordinary(text[pos:m.start()]))
            out.append(self.special_tokens[m.group()])
            pos = m.end()
        out.extend(self.encode_ordinary(text[pos:]))
        return out

    def encode_ordinary(self, text: str) -> list[int]:
        """Encode with every special token treated as plain text."""
        if self._encoder is not None:
            return self._encoder.encode(text)
        if self.backend == "ref":
            if self._ranks is None:
                self._ranks = {p: (r, i) for r, (p, i) in reversed(list(enumerate(zip(self.merges, self.merge_ids))))}
            return bpe_ref.encode(text, self.byte_to_id, self._ranks, self.pretokenizer)
        if self._encoder is None:
            _bpe = _load_cython()
            self._encoder = _bpe.Encoder(_splitter(get_mode(self.pretokenizer)),
                                         [(a, b, i) for (a, b), i in zip(self.merges, self.merge_ids)],
                                         self.byte_to_id)
        return self._encoder.encode(text)

    def pretokenize(self, text: str) -> list[str]:
        """The pieces BPE sees (useful for teaching and debugging)."""
        if self.backend == "ref":
            return split_ref(text, self.pretokenizer)
        return _splitter(get_mode(self.pretokenizer)).split(text)

    def with_backend(self, backend: str) -> "BPETokenizer":
        """The same tokenizer computing with another backend (tests compare them)."""
        return type(self)(self.merges, self.special_tokens, byte_to_id=self.byte_to_id,
                          merge_ids=self.merge_ids, pretokenizer=self.pretokenizer, backend=backend)

    # ------------------------------------------------------------------ decoding
    def decode_bytes(self, ids) -> bytes:
        if self.backend == "ref":
            bad = next((k for k, i in enumerate(ids) if not _valid_id(i, self.vocab_size)), -1)
            data = None if bad >= 0 else b"".join(self.id_to_bytes[i] for i in ids)
        else:
            data, bad = _load_cython().join_token_bytes(self.id_to_bytes, ids)
        if data is None:
            ids = list(ids)
            raise DataError(f"token id {ids[bad]!r} (position {bad}) is not in this tokenizer's "
                            f"vocabulary 0..{self.vocab_size - 1}")
        return data

    def decode(self, ids) -> str:
        """ids -> str; bytes that are not valid UTF-8 (half a character, a lone surrogate's
        surrogatepass bytes) become U+FFFD."""
        return self.decode_bytes(ids).decode("utf-8", "replace")

    def decoder(self) -> "StreamDecoder":
        return StreamDecoder(self)

    # ------------------------------------------------------------------ files
    def to_dict(self) -> dict:
        return {
            "type": self.kind,
            "format_version": FORMAT_VERSION,
            "pretokenizer": self.pretokenizer,
            "vocab_size": self.vocab_size,
            "byte_to_id": self.byte_to_id,
            "merges": [[a, b, i] for (a, b), i in zip(self.merges, self.merge_ids)],
            "special_tokens": self.special_tokens,
        }

    def save(self, path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(), ensure_ascii=False), encoding="utf-8")
        os.replace(tmp, path)  # never leave a half-written tokenizer behind

    @classmethod
    def from_dict(cls, data: dict, source: str = "<dict>", backend: str = "cython") -> "BPETokenizer":
        try:
            if not isinstance(data, dict) or data.get("type") != cls.kind:
                raise ConfigError(f'expected a JSON object with "type": "{cls.kind}"')
            if data.get("format_version") != FORMAT_VERSION:
                raise ConfigError(f"unsupported format_version {data.get('format_version')!r} "
                                  f"(this code reads {FORMAT_VERSION})")
            merges = data["merges"]
            if not isinstance(merges, list) or not all(isinstance(m, list) and len(m) == 3 for m in merges):
                raise ConfigError('"merges" must be a list of [left id, right id, merged id]')
            tok = cls([(m[0], m[1]) for m in merges], dict(data["special_tokens"]),
                      byte_to_id=data["byte_to_id"], merge_ids=[m[2] for m in merges],
                      pretokenizer=data["pretokenizer"], backend=backend)
            if "vocab_size" in data and data["vocab_size"] != tok.vocab_size:
                raise ConfigError(f"vocab_size says {data['vocab_size']} but the file defines {tok.vocab_size} ids")
            return tok
        except (ConfigError, KeyError, TypeError, ValueError) as err:
            what = f"missing field {err}" if isinstance(err, KeyError) else str(err)
            raise CheckpointError(f"corrupt BPE tokenizer file {source}: {what}") from None

    @classmethod
    def load(cls, path, backend: str = "cython") -> "BPETokenizer":
        return cls.from_dict(read_json(path), str(path), backend=backend)

    # HF tokenizer.json and GPT-2 vocab.json + merges.txt live in bpe_formats.py
    @classmethod
    def from_huggingface(cls, tokenizer_json, backend: str = "cython") -> "BPETokenizer":
        return from_huggingface(cls, tokenizer_json, backend=backend)

    def to_huggingface(self, path) -> None:
        to_huggingface(self, path)

    @classmethod
    def from_gpt2(cls, vocab_json, merges_txt, backend: str = "cython") -> "BPETokenizer":
        return from_gpt2(cls, vocab_json, merges_txt, backend=backend)

    def to_gpt2(self, directory) -> None:
        to_gpt2(self, directory)

    def __repr__(self):
        return (f"BPETokenizer(vocab_size={self.vocab_size}, merges={len(self.merges)}, "
                f"special_tokens={len(self.special_tokens)}, pretokenizer={self.pretokenizer!r})")


class StreamDecoder:
    """Incremental decoding for streaming generation: ``feed(id)`` returns the text that is now
    complete, holding back the bytes of a character that is not finished yet; ``flush()`` returns
    what is left (an unfinished character becomes U+FFFD). Feeding all ids then flushing gives
    exactly ``decode(ids)``."""

    def __init__(self, tokenizer: BPETokenizer):
        self.tokenizer = tokenizer
        self.pending = b""

    def feed(self, token_id: int) -> str:
        data = self.pending + self.tokenizer.decode_bytes([token_id])
        cut = _complete_prefix_len(data)
        self.pending = data[cut:]
        return data[:cut].decode("utf-8", "replace")

    def flush(self) -> str:
        data, self.pending = self.pending, b""
        return data.decode("utf-8", "replace")


def _complete_prefix_len(data: bytes) -> int:
    """Length of ``data`` without a trailing UTF-8 sequence that more bytes could still complete."""
    n = len(data)
    for back in range(1, min(4, n) + 1):
        byte = data[n - back]
        if byte & 0xC0 != 0x80:  # not a continuation byte: the start of the last sequence
            need = 2 if 0xC2 <= byte <= 0xDF else 3 if 0xE0 <= byte <= 0xEF else 4 if 0xF0 <= byte <= 0xF4 else 1
            if back < need and _could_continue(data[n - back:]):
                return n - back
            return n
    return n


def _could_continue(prefix: bytes) -> bool:
    """Whether ``prefix`` (a lead byte + continuation bytes) starts some valid UTF-8 character.
    E.g. b"\\xe0\\x80" can never be completed (overlong), so it is emitted as U+FFFD right away —
    holding it back would not change the result, but the check keeps decode(ids) == stream."""
    lead = prefix[0]
    if len(prefix) >= 2:
        second = prefix[1]
        lo, hi = 0x80, 0xBF
        if lead == 0xE0:
            lo = 0xA0
        elif lead == 0xED:
            hi = 0x9F
        elif lead == 0xF0:
            lo = 0x90
        elif lead == 0xF4:
            hi = 0x8F
        if not lo <= second <= hi:
            return False
    return True


def _valid_id(i, n) -> bool:
    try:
        return 0 <= i < n and int(i) == i
    except TypeError:
        return False


_SPLITTERS = {}
_FAST_TABLE = []


def fast_class_table() -> bytes:
    """pretokenize.class_table(), built by the Cython module (same bytes, ~30x faster)."""
    if not _FAST_TABLE:
        _FAST_TABLE.append(_load_cython().build_class_table(WHITE_SPACE, [list(r) for r in CJK_RANGES]))
    return _FAST_TABLE[0]


def _splitter(mode):
    if mode.name not in _SPLITTERS:
        _SPLITTERS[mode.name] = _load_cython().Splitter(
            fast_class_table(), mode.case_insensitive_contractions, mode.max_digits, mode.cjk_chunk,
            *((True,) if mode.values_apart else ()))   # an extension built before the option still loads the others
    return _SPLITTERS[mode.name]


def _checked_texts(texts, progress):
    if progress:
        from tqdm import tqdm
        texts = tqdm(texts, desc="pre-tokenizing", unit="text")
    for k, text in enumerate(texts):
        if not isinstance(text, str):
            raise DataError(f"texts[{k}] is a {type(text).__name__}, expected str")
        yield text


def read_lines(paths):
    """Yield the lines of UTF-8 text files; an unreadable file raises DataError naming it."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    for path in paths:
        try:
            with open(path, encoding="utf-8") as f:
                yield from f
        except (OSError, UnicodeDecodeError) as err:
            raise DataError(f"cannot read text file {path}: {err}") from None
