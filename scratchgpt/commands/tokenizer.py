"""``scratchgpt tokenizer train | encode | decode | stats``: build and inspect tokenizers.

    scratchgpt tokenizer train --input a.txt b.txt --vocab-size 8192 --out runs/tok [--kind bpe]
    scratchgpt tokenizer encode --tokenizer runs/tok "Hello 你好"
    scratchgpt tokenizer decode --tokenizer runs/tok 15496 995
    scratchgpt tokenizer stats --tokenizer runs/tok --input a.txt

``--kind``: ``bpe`` (ours, byte-level), ``sentencepiece-bpe`` or ``sentencepiece-unigram``.
Training reads text files line by line (a prepared ``*.jsonl`` or ``data prepare`` directory:
its records' texts), adds the chat special tokens unless ``--no-special``,
and writes ``DIR/tokenizer.json`` (``load_tokenizer`` tells the kinds apart by its "type").
"""
from __future__ import annotations

import sys
import time
from collections import Counter
from pathlib import Path

from ..errors import DataError
from ._flags import add_progress, add_threads, add_tokenizer

KINDS = ("bpe", "sentencepiece-bpe", "sentencepiece-unigram")


def register(sub) -> None:
    p = sub.add_parser("tokenizer", help="train, apply and inspect tokenizers",
                       description="Train a tokenizer on text files, encode/decode with it, or measure it.")
    tsub = p.add_subparsers(dest="tokenizer_command", metavar="<action>")
    tsub.required = True

    t = tsub.add_parser("train", help="train a tokenizer on UTF-8 text files")
    t.add_argument("--input", nargs="+", required=True, metavar="PATH",
                   help="UTF-8 text files (one text per line), prepared *.jsonl files or a directory written by "
                        "`scratchgpt data prepare`")
    t.add_argument("--vocab-size", type=int, required=True, metavar="N", help="vocabulary size, special tokens included")
    t.add_argument("--out", required=True, metavar="DIR", help="output directory (gets tokenizer.json)")
    t.add_argument("--kind", choices=KINDS, default="bpe", help="tokenizer kind (default: bpe)")
    t.add_argument("--no-special", action="store_true", help="do not add the chat special tokens")
    add_progress(t)
    add_threads(t)
    t.set_defaults(func=run_train)

    e = tsub.add_parser("encode", help="print the token ids of TEXT")
    add_tokenizer(e)
    e.add_argument("text", metavar="TEXT", help="the text to encode")
    e.add_argument("--allow-special", action="store_true", help="match special tokens written in TEXT")
    e.add_argument("--pieces", action="store_true", help="also print each token's text")
    e.set_defaults(func=run_encode)

    d = tsub.add_parser("decode", help="print the text of token IDS")
    add_tokenizer(d)
    d.add_argument("ids", nargs="+", metavar="ID", help="token ids to decode")
    d.set_defaults(func=run_decode)

    s = tsub.add_parser("stats", help="compression of a tokenizer on text files")
    add_tokenizer(s)
    s.add_argument("--input", nargs="+", required=True, metavar="PATH",
                   help="UTF-8 text files, prepared *.jsonl files or a prepared directory")
    s.add_argument("--top", type=int, default=10, metavar="N", help="how many merges / tokens to list (default 10)")
    add_threads(s)
    s.set_defaults(func=run_stats)


# ------------------------------------------------------------------ helpers

def input_files(path) -> list[Path]:
    """``--input PATH``: a text or JSONL file, or a directory written by ``data prepare`` (its
    ``train.txt`` when there is one, else its ``train.jsonl``)."""
    p = Path(path)
    if p.is_dir():
        for name in ("train.txt", "train.jsonl"):
            if (p / name).is_file():
                return [p / name]
        raise DataError(f"--input {path}: a directory without train.txt or train.jsonl "
                        "(pass text files, or a directory written by `scratchgpt data prepare`)")
    if not p.is_file():
        raise DataError(f"--input {path}: no such file")
    return [p]


def looks_like_json(lines) -> bool:
    """Most non-empty lines start like JSON (an object, array, key or closing bracket): the user
    is about to train a tokenizer on JSON syntax."""
    sample = [ln.lstrip() for ln in lines[:200] if ln.strip()]
    return bool(sample) and sum(ln[:1] in '{["}]' for ln in sample) > len(sample) // 2


def _warn(msg: str) -> None:
    print(msg, file=sys.stderr)


def read_texts(paths, warn=_warn) -> list[str]:
    """Texts of ``--input`` files: lines of UTF-8 text files; record texts of a prepared JSONL
    (``data prepare`` output, one conversation's turns = one text). A missing or undecodable
    file -> DataError naming it (and the byte offset: the same rule as ``data prepare``, see
    ``data.loaders.require_utf8``). Text that looks like JSON gets a warning."""
    from ..data.loaders import require_utf8
    from ..data.pipeline import read_jsonl, record_text
    texts = []
    for path in paths:
        for p in input_files(path):
            try:
                require_utf8(p)
                if p.suffix.lower() == ".jsonl":
                    texts.extend(record_text(r) for r in read_jsonl(p))
                    continue
                with open(p, encoding="utf-8") as f:
                    lines = list(f)
            except DataError as err:
                raise DataError(f"--input {err}") from None
            except (ValueError, KeyError, TypeError) as err:
                raise DataError(f"--input {p}: not a JSONL file written by `scratchgpt data prepare` ({err})") from None
            except OSError as err:
                raise DataError(f"--input {p}: cannot read it ({err.strerror or err})") from None
            if p.suffix.lower() == ".json" or looks_like_json(lines):
                warn(f"warning: --input {p} looks like JSON; the tokenizer would learn its syntax. Name it "
                     "*.jsonl (records from `data prepare`) or pass the prepared directory to train on the texts")
            texts.extend(lines)
    return texts


def open_tokenizer(path):
    """``--tokenizer PATH``: a file or a directory holding one (``tokenizer.tokenizer_file``)."""
    from ..errors import CheckpointError
    from ..tokenizer import load_tokenizer
    try:
        return load_tokenizer(path)
    except CheckpointError as err:
        raise CheckpointError(f"--tokenizer {err}") from None


def token_text(tok, i: int) -> str:
    """How token i reads: repr of its text, or of its bytes when they are not whole UTF-8
    characters (a byte-level token can hold half a Chinese character)."""
    data = tok.id_to_token_bytes(i)
    try:
        return repr(data.decode("utf-8"))
    except UnicodeDecodeError:
        return repr(data)


def train_tokenizer(texts, vocab_size: int, kind: str, special_tokens, progress: bool = False):
    if kind == "bpe":
        from ..tokenizer import BPETokenizer
        return BPETokenizer.train(texts, vocab_size, special_tokens=special_tokens, progress=progress)
    from ..tokenizer.sentencepiece_tokenizer import SentencePieceTokenizer
    model_type = kind.split("-", 1)[1]
    return SentencePieceTokenizer.train(texts, vocab_size, special_tokens=special_tokens,
                                        progress=progress, model_type=model_type)


def compression_stats(tok, texts) -> dict:
    """Characters, UTF-8 bytes and tokens over ``texts``, plus token counts (a Counter)."""
    n_chars = n_bytes = 0
    counts: Counter = Counter()
    for text in texts:
        n_chars += len(text)
        n_bytes += len(text.encode("utf-8", errors="surrogatepass"))
        counts.update(tok.encode(text))
    n_tokens = sum(counts.values())
    return {
        "chars": n_chars, "bytes": n_bytes, "tokens": n_tokens,
        "tokens_per_char": n_tokens / n_chars if n_chars else float("nan"),
        "bytes_per_token": n_bytes / n_tokens if n_tokens else float("nan"),
        "counts": counts,
    }


# ------------------------------------------------------------------ actions

def run_train(args) -> int:
    from ..tokenizer.special import CHAT_SPECIAL_TOKENS
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise DataError(f"--out {args.out}: exists and is not a directory")
    texts = read_texts(args.input)
    if not any(t.strip() for t in texts):
        raise DataError(f"--input {' '.join(args.input)}: no text to train on (the input is empty)")
    specials = [] if args.no_special else list(CHAT_SPECIAL_TOKENS)
    t0 = time.perf_counter()
    tok = train_tokenizer(texts, args.vocab_size, args.kind, specials, progress=args.progress)
    seconds = time.perf_counter() - t0
    out.mkdir(parents=True, exist_ok=True)
    tok.save(out / "tokenizer.json")
    n_chars = sum(len(t) for t in texts)
    print(f"trained {args.kind} tokenizer: vocab_size {tok.vocab_size} "
          f"({len(tok.special_tokens)} special) on {n_chars:,} characters in {seconds:.2f} s")
    print(f"wrote {out / 'tokenizer.json'}")
    return 0


def run_encode(args) -> int:
    tok = open_tokenizer(args.tokenizer)
    ids = tok.encode(args.text, allowed_special="all" if args.allow_special else ())
    print(" ".join(map(str, ids)))
    if args.pieces:
        for i in ids:
            print(f"{i}\t{token_text(tok, i)}")
    return 0


def run_decode(args) -> int:
    tok = open_tokenizer(args.tokenizer)
    ids = []
    for s in args.ids:
        try:
            ids.append(int(s))
        except ValueError:
            raise DataError(f"ID {s!r}: expected an integer token id") from None
    bad = [i for i in ids if not 0 <= i < tok.vocab_size]
    if bad:
        raise DataError(f"ID {bad[0]}: outside this tokenizer's vocabulary 0..{tok.vocab_size - 1}")
    print(tok.decode(ids))
    return 0


def run_stats(args) -> int:
    tok = open_tokenizer(args.tokenizer)
    texts = read_texts(args.input)
    if not any(t.strip() for t in texts):
        raise DataError(f"--input {' '.join(args.input)}: no text to measure (the input is empty)")
    st = compression_stats(tok, texts)
    kind = getattr(tok, "kind", None) or f"sentencepiece-{getattr(tok, 'model_type', '?')}"
    print(f"tokenizer        {kind}, vocab_size {tok.vocab_size}")
    print(f"characters       {st['chars']:,}")
    print(f"UTF-8 bytes      {st['bytes']:,}")
    print(f"tokens           {st['tokens']:,}")
    print(f"tokens / char    {st['tokens_per_char']:.4f}")
    print(f"bytes / token    {st['bytes_per_token']:.3f}   (compression)")
    merges = getattr(tok, "merges", None)
    if merges:
        print(f"first {min(args.top, len(merges))} merges learned (most frequent pairs at training time):")
        for rank, ((a, b), new) in enumerate(zip(merges[:args.top], tok.merge_ids)):
            print(f"  {rank:4d}  {token_text(tok, a)} + {token_text(tok, b)} -> {token_text(tok, new)}")
    print(f"most frequent tokens in the input (top {args.top}):")
    for i, c in st["counts"].most_common(args.top):
        print(f"  {i:6d}  {c:8d}  {token_text(tok, i)}")
    return 0
