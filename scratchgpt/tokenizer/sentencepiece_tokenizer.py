"""``SentencePieceTokenizer``: the ``sentencepiece`` library behind the same interface as ``BPETokenizer``.

Why offer it next to our own byte-level BPE: it is what many open models ship (LLaMA, T5,
Qwen-1, ChatGLM ...), it loads their ``.model`` files, and it trains the *Unigram* model,
which is often the better choice for Chinese.

Why Unigram suits Chinese
-------------------------
Chinese has no spaces between words, so a word-splitting pre-tokenizer (what GPT-2-style BPE
relies on to keep merges inside words) sees whole clauses as one "word", and BPE's greedy,
frequency-ordered merges can glue characters across word boundaries ("的" + the next
character) just because that pair is frequent. Unigram instead starts from a large set of
candidate pieces, gives each piece a probability, and segments a sentence by the most
probable *whole* segmentation (Viterbi over a lattice of every way to cut it); training
prunes the pieces whose removal costs the corpus likelihood least. A segmentation is judged
as a whole, so a frequent word like "天气" wins over a frequent-but-accidental pair, and ambiguous
strings ("研究生命" = 研究/生命 or 研究生/命) are resolved by which split is more likely
overall. The model also defines a distribution over segmentations, which allows subword
regularization (sampling alternative splits as data augmentation). Kudo (2018) reports it
matching or beating BPE, with the largest gains on languages without whitespace.

What this wrapper does around sentencepiece
-------------------------------------------
- Lossless settings: ``byte_fallback=True`` (any character missing from the vocabulary becomes
  its UTF-8 bytes ``<0x..>``, never ``<unk>``), ``normalization_rule_name="identity"`` (no NFKC),
  ``add_dummy_prefix=False`` and ``remove_extra_whitespaces=False`` (spaces, tabs, newlines and
  leading/trailing whitespace survive). ``character_coverage=1.0``; when the corpus has more distinct
  characters than half the vocabulary (common for Chinese) the rarest are cut out of the
  training text and left to byte fallback, still losslessly.
  ``decode(encode(s)) == s`` then holds for every string except two documented cases:
  * U+2581 "▁" (LOWER ONE EIGHTH BLOCK) is sentencepiece's internal stand-in for a space, so a
    literal "▁" comes back as " ";
  * lone surrogates (not valid Unicode, cannot be UTF-8 encoded) become U+FFFD "�".
- Special tokens are NOT registered inside sentencepiece (it would match user-defined symbols
  in any text, so a user typing "<|end|>" could end an assistant turn). They get the ids right
  after sentencepiece's vocabulary, and ``encode`` matches them only when ``allowed_special``
  says so, exactly like ``BPETokenizer``.
- ``vocab_size`` given to ``train`` is an upper bound: sentencepiece may stop earlier on a small
  corpus (``hard_vocab_limit=False``); ``tok.vocab_size`` reports the real size.
- ``decode`` maps each id to its bytes (pieces with "▁" -> " ", ``<0xNN>`` -> one byte) and decodes
  UTF-8 with ``errors="replace"``, like ``BPETokenizer``; ``decoder()`` streams the same bytes
  through an incremental UTF-8 decoder, so it never emits half a character.

Saved format (``save(path)``): one JSON file ::

    {"type": "sentencepiece", "version": 1, "model_type": "bpe" | "unigram" | ...,
     "special_tokens": {"<|endoftext|>": 8000, ...},
     "model_b64": "<base64 of the serialized sentencepiece ModelProto, i.e. a .model file>"}

``SentencePieceTokenizer.load(path)`` reads it back (``path`` may be that file or a directory
holding ``tokenizer.json``); ``load_model(file.model)`` wraps an existing ``.model`` file.
"""
from __future__ import annotations

import base64
import binascii
import codecs
import io
import json
import os
import re
from collections import Counter
from pathlib import Path

from ..errors import CheckpointError, ConfigError, DataError

FORMAT_TYPE = "sentencepiece"
FORMAT_VERSION = 1
MODEL_TYPES = ("bpe", "unigram")
# sentencepiece's trainer silently drops sentences longer than max_sentence_length bytes, so
# long lines are cut into chunks of at most this many characters (4 bytes each at worst).
_CHUNK_CHARS = 2000
_BYTE_PIECE = re.compile(r"^<0x([0-9A-Fa-f]{2})>$")


def _spm():
    # imported lazily: `import scratchgpt.tokenizer` must not require sentencepiece
    try:
        import sentencepiece
    except ImportError as e:  # pragma: no cover - it is a declared dependency
        raise ConfigError("SentencePieceTokenizer needs the `sentencepiece` package (pip install sentencepiece)") from e
    return sentencepiece


def _valid_unicode(text: str) -> str:
    """Replace lone surrogates by U+FFFD; sentencepiece (C++) rejects strings that contain them."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def _training_sentences(texts, progress: bool):
    """Lines (with their newline) of every text, long lines cut, empty ones skipped."""
    if isinstance(texts, str):
        raise DataError("texts: expected an iterable of strings, got a single str (wrap it in a list)")
    it = texts
    if progress:
        from tqdm import tqdm
        it = tqdm(texts, desc="sentencepiece: reading", unit="text")
    for i, text in enumerate(it):
        if not isinstance(text, str):
            raise DataError(f"texts[{i}]: expected str, got {type(text).__name__}")
        for line in _valid_unicode(text).splitlines(keepends=True):
            for s in range(0, len(line), _CHUNK_CHARS):
                chunk = line[s:s + _CHUNK_CHARS]
                if chunk:
                    yield chunk


def _drop_rare_characters(sentences: list[str], n_sp: int) -> list[str]:
    """Keep at most ``(n_sp - 257) // 2`` distinct characters in the training text.

    sentencepiece must give every character it keeps its own piece, and refuses to leave out
    more than 2% of character occurrences (character_coverage >= 0.98), so a Chinese corpus
    with thousands of distinct characters cannot train a small vocabulary. The rarest
    characters are therefore cut out of the training sentences, which are split where they
    stood (no piece could span them anyway): at encode time such a character becomes its
    UTF-8 bytes through byte fallback, still losslessly.
    """
    counts = Counter()
    for s in sentences:
        counts.update(s)
    budget = max(1, (n_sp - 257) // 2)
    if len(counts) <= budget:
        return sentences
    kept = {ch for ch, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:budget]}
    rare = "".join(sorted(set(counts) - kept))
    splitter = re.compile("[" + re.escape(rare) + "]+")
    out = []
    for s in sentences:
        out.extend(part for part in splitter.split(s) if part)
    return out


class SentencePieceDecoder:
    """Streaming decoder: ``feed(id) -> str`` returns only complete characters; ``flush()`` the rest."""

    def __init__(self, tok: "SentencePieceTokenizer"):
        self._tok = tok
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def feed(self, token_id: int) -> str:
        return self._utf8.decode(self._tok.id_to_bytes(token_id), final=False)

    def flush(self) -> str:
        out = self._utf8.decode(b"", final=True)
        self._utf8.reset()
        return out


class SentencePieceTokenizer:
    """sentencepiece (BPE or Unigram) with our special-token handling; see the module docstring."""

    def __init__(self, model_proto: bytes, special_tokens=None, model_type: str | None = None):
        spm = _spm()
        self._sp = spm.SentencePieceProcessor()
        try:
            self._sp.LoadFromSerializedProto(model_proto)
        except Exception as e:  # sentencepiece raises RuntimeError / OSError on garbage
            raise CheckpointError(f"sentencepiece model: cannot parse it ({e})") from e
        self._model_proto = bytes(model_proto)
        n_sp = self._sp.get_piece_size()
        if special_tokens is None:  # like BPETokenizer: none unless asked for
            special_tokens = []
        if isinstance(special_tokens, dict):
            specials = dict(special_tokens)
            expected = list(range(n_sp, n_sp + len(specials)))
            if sorted(specials.values()) != expected:
                raise CheckpointError(f"special_tokens: ids must be {n_sp}..{n_sp + len(specials) - 1} "
                                      f"(right after the {n_sp} sentencepiece pieces), got {specials}")
        else:
            names = list(special_tokens)
            for s in names:
                if not isinstance(s, str) or not s:
                    raise ConfigError(f"special_tokens: expected non-empty strings, got {s!r}")
            if len(set(names)) != len(names):
                raise ConfigError(f"special_tokens: duplicates in {names}")
            specials = {s: n_sp + i for i, s in enumerate(names)}
        self.special_tokens: dict[str, int] = specials
        self._id_to_special = {i: s for s, i in specials.items()}
        self.model_type = model_type or self._guess_model_type()
        self._id_to_bytes = self._byte_table()

    # ------------------------------------------------------------------ construction

    @classmethod
    def train(cls, texts, vocab_size: int, special_tokens=None, progress: bool = False,
              model_type: str = "bpe", num_threads: int = 1) -> "SentencePieceTokenizer":
        """Train on an iterable of str. ``vocab_size`` counts the special tokens too.

        special_tokens: a list of strings (e.g. ``CHAT_SPECIAL_TOKENS`` for the chat template),
        given the ids right after sentencepiece's pieces; None = no special tokens, as in
        ``BPETokenizer.train``.

        num_threads=1 by default so that training is reproducible and comparable with our
        single-threaded BPE; raise it for speed on big corpora.
        """
        if model_type not in MODEL_TYPES:
            raise ConfigError(f"model_type: expected one of {MODEL_TYPES}, got {model_type!r}")
        names = list(special_tokens or [])
        if not isinstance(vocab_size, int) or isinstance(vocab_size, bool):
            raise ConfigError(f"vocab_size: expected an int, got {vocab_size!r}")
        n_sp = vocab_size - len(names)
        # 256 byte pieces + <unk> + at least a few learned pieces
        if n_sp < 256 + 1 + 8:
            raise ConfigError(f"vocab_size: {vocab_size} is too small for sentencepiece with byte fallback: "
                              f"need >= {256 + 1 + 8 + len(names)} (256 bytes + <unk> + 8 pieces + "
                              f"{len(names)} special tokens)")
        sentences = list(_training_sentences(texts, progress))
        if not sentences:
            raise DataError("texts: the training corpus is empty")
        sentences = _drop_rare_characters(sentences, n_sp)
        if not sentences:
            raise DataError("texts: nothing left to train on")
        spm = _spm()
        model = io.BytesIO()
        try:
            spm.SentencePieceTrainer.train(
                sentence_iterator=iter(sentences), model_writer=model,
                vocab_size=n_sp, model_type=model_type,
                byte_fallback=True, character_coverage=1.0,
                normalization_rule_name="identity", add_dummy_prefix=False,
                remove_extra_whitespaces=False, allow_whitespace_only_pieces=True,
                split_digits=False, max_sentence_length=4 * _CHUNK_CHARS + 16,
                unk_id=0, bos_id=-1, eos_id=-1, pad_id=-1,
                hard_vocab_limit=False, num_threads=num_threads,
                minloglevel=2,  # its INFO log is hundreds of lines; progress is our tqdm bar
            )
        except RuntimeError as e:
            raise ConfigError(f"sentencepiece training failed: {e}") from e
        return cls(model.getvalue(), names, model_type=model_type)

    @classmethod
    def load_model(cls, path, special_tokens=None) -> "SentencePieceTokenizer":
        """Wrap an existing sentencepiece ``.model`` file (specials appended after its pieces)."""
        path = Path(path)
        if not path.is_file():
            raise CheckpointError(f"{path}: no such sentencepiece .model file")
        return cls(path.read_bytes(), special_tokens)

    def save(self, path) -> Path:
        """Write the JSON described in the module docstring; a directory gets ``tokenizer.json``."""
        path = Path(path)
        if path.is_dir():
            path = path / "tokenizer.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        doc = {
            "type": FORMAT_TYPE, "version": FORMAT_VERSION, "model_type": self.model_type,
            "special_tokens": self.special_tokens,
            "model_b64": base64.b64encode(self._model_proto).decode("ascii"),
        }
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(doc, ensure_ascii=False, indent=1), encoding="utf-8")
        os.replace(tmp, path)  # never leave a half-written tokenizer behind
        return path

    @classmethod
    def load(cls, path) -> "SentencePieceTokenizer":
        path = Path(path)
        if path.is_dir():
            path = path / "tokenizer.json"
        if not path.is_file():
            raise CheckpointError(f"{path}: no such tokenizer file")
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise CheckpointError(f"{path}: not a valid tokenizer JSON ({e})") from e
        if not isinstance(doc, dict) or doc.get("type") != FORMAT_TYPE:
            got = doc.get("type") if isinstance(doc, dict) else type(doc).__name__
            raise CheckpointError(f"{path}: expected a tokenizer JSON with \"type\": \"{FORMAT_TYPE}\", got {got!r}")
        if doc.get("version") != FORMAT_VERSION:
            raise CheckpointError(f"{path}: unsupported sentencepiece tokenizer version {doc.get('version')!r}")
        try:
            proto = base64.b64decode(doc["model_b64"], validate=True)
            specials = {str(k): int(v) for k, v in doc["special_tokens"].items()}
        except (KeyError, TypeError, ValueError, AttributeError, binascii.Error) as e:
            raise CheckpointError(f"{path}: corrupt sentencepiece tokenizer ({type(e).__name__}: {e})") from e
        try:
            return cls(proto, specials, model_type=doc.get("model_type"))
        except CheckpointError as e:
            raise CheckpointError(f"{path}: {e}") from e

    # ------------------------------------------------------------------ interface

    @property
    def vocab_size(self) -> int:
        return self._sp.get_piece_size() + len(self.special_tokens)

    @property
    def sp(self):
        """The underlying ``sentencepiece.SentencePieceProcessor`` (for inspection)."""
        return self._sp

    def token_to_id(self, special: str) -> int:
        try:
            return self.special_tokens[special]
        except KeyError:
            raise ConfigError(f"token_to_id: {special!r} is not a special token of this tokenizer "
                              f"(have {sorted(self.special_tokens)})") from None

    def encode(self, text: str, allowed_special=()) -> list[int]:
        if not isinstance(text, str):
            raise DataError(f"encode: expected str, got {type(text).__name__}")
        text = _valid_unicode(text)
        allowed = self._allowed(allowed_special)
        if not allowed:
            return self._sp.encode(text, out_type=int) if text else []
        # split on the allowed specials (longest first so "<|end|>" never shadows a longer one)
        pattern = "(" + "|".join(re.escape(s) for s in sorted(allowed, key=len, reverse=True)) + ")"
        ids: list[int] = []
        for i, part in enumerate(re.split(pattern, text)):
            if i % 2:
                ids.append(self.special_tokens[part])
            elif part:
                ids.extend(self._sp.encode(part, out_type=int))
        return ids

    def decode(self, ids) -> str:
        return b"".join(self.id_to_bytes(i) for i in ids).decode("utf-8", errors="replace")

    def decoder(self) -> SentencePieceDecoder:
        return SentencePieceDecoder(self)

    def id_to_bytes(self, token_id) -> bytes:
        i = int(token_id)
        if 0 <= i < len(self._id_to_bytes):
            return self._id_to_bytes[i]
        s = self._id_to_special.get(i)
        if s is None:
            raise DataError(f"decode: token id {i} is outside the vocabulary [0, {self.vocab_size})")
        return s.encode("utf-8")

    id_to_token_bytes = id_to_bytes  # the name BPETokenizer uses

    def id_to_piece(self, token_id: int) -> str:
        i = int(token_id)
        if i in self._id_to_special:
            return self._id_to_special[i]
        return self._sp.id_to_piece(i)

    # ------------------------------------------------------------------ internals

    def _allowed(self, allowed_special) -> set[str]:
        if allowed_special == "all":
            return set(self.special_tokens)
        if isinstance(allowed_special, str):
            raise ConfigError(f"allowed_special: expected (), 'all' or a set of special tokens, got {allowed_special!r}")
        allowed = set(allowed_special)
        unknown = allowed - set(self.special_tokens)
        if unknown:
            raise ConfigError(f"allowed_special: {sorted(unknown)} are not special tokens of this tokenizer")
        return allowed

    def _byte_table(self) -> list[bytes]:
        """Bytes each sentencepiece id stands for (what ``decode`` concatenates)."""
        sp = self._sp
        table = []
        for i in range(sp.get_piece_size()):
            piece = sp.id_to_piece(i)
            if sp.is_byte(i):
                table.append(bytes([int(_BYTE_PIECE.match(piece).group(1), 16)]))
            elif sp.is_control(i):
                table.append(b"")
            elif sp.is_unknown(i):
                table.append(" \u2047 ".encode("utf-8"))  # sentencepiece's own surface for <unk>
            else:
                table.append(piece.replace("\u2581", " ").encode("utf-8"))
        return table

    def _guess_model_type(self) -> str:
        # a loaded .model records its type in trainer_spec.model_type; reading it needs the
        # optional protobuf package, so without it the type is reported as "unknown"
        try:
            from sentencepiece import sentencepiece_model_pb2 as pb  # needs protobuf
            m = pb.ModelProto()
            m.ParseFromString(self._model_proto)
            return {1: "unigram", 2: "bpe", 3: "word", 4: "char"}.get(m.trainer_spec.model_type, "unknown")
        except Exception:
            return "unknown"

    def __repr__(self) -> str:
        return (f"SentencePieceTokenizer(model_type={self.model_type!r}, vocab_size={self.vocab_size}, "
                f"special_tokens={len(self.special_tokens)})")
