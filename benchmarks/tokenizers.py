"""Tokenizer benchmark: our Cython byte-level BPE vs HF tokenizers, sentencepiece (BPE, Unigram)
and tiktoken (built from OUR merges), single thread, vocab 8192.

Corpus (built offline, cached under runs/bench_tokenizers/):
* English (~2.5 MB): docstrings of the Python standard library (ast-parsed from the installed
  stdlib sources), the chatterbot-corpus English YAML files and `import this`; lines shuffled
  with a fixed seed, repeated until the size is reached (~1.7 MB is unique).
* Chinese (~2.5 MB): the project's Chinese tutorial (seed/tutorial-zh.md) and the chatterbot
  "chinese" and "traditionalchinese" YAML files. Only ~0.1 MB of it is unique, so the lines are
  recombined: every output line joins 1-4 random source lines. Repetition flatters every
  tokenizer's caches (ours included) more on Chinese than on English; say so when quoting it.
Training uses both (~5 MB). Encoding: "lines" = one call per line (what a data pipeline does),
"string" = one call on the whole text. Decoding: one call on all ids of the text.

Run: python benchmarks/tokenizers.py [--size-mb 2.5] [--out runs/bench_tokenizers/results.json]
"""
from __future__ import annotations

import argparse
import ast
import glob
import json
import os
import random
import sys
import sysconfig
import time
from pathlib import Path

# This file is named like the HF package; drop its folder from the path so `import tokenizers`
# finds the library, not this script.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

os.environ.setdefault("RAYON_NUM_THREADS", "1")        # HF tokenizers: one thread
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

VOCAB = 8192
CACHE = Path("runs/bench_tokenizers")


def english_lines() -> list[str]:
    lines = []
    std = sysconfig.get_paths()["stdlib"]
    for path in sorted(glob.glob(os.path.join(std, "**", "*.py"), recursive=True)):
        if "site-packages" in path or f"{os.sep}test{os.sep}" in path or "idlelib" in path:
            continue
        try:
            tree = ast.parse(Path(path).read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node)
                if doc:
                    lines.extend(line for line in doc.splitlines() if line.strip())
    lines.extend(_chatterbot_lines("english"))
    import codecs
    import contextlib
    import io
    with contextlib.redirect_stdout(io.StringIO()):
        import this  # its text is rot13 in this.s
    lines.extend(codecs.decode(this.s, "rot13").splitlines())
    return lines


def _chatterbot_lines(language: str) -> list[str]:
    import chatterbot_corpus
    import yaml
    root = Path(chatterbot_corpus.__file__).parent / "data" / language
    out = []
    for path in sorted(root.glob("*.yml")):
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        for conv in doc.get("conversations", []):
            out.extend(str(x) for x in conv if isinstance(x, (str, int, float)))
    return out


def chinese_lines() -> list[str]:
    tutorial = Path("/work/shared/seed/tutorial-zh.md")
    if not tutorial.exists():
        tutorial = Path(__file__).resolve().parents[1] / "shared" / "seed" / "tutorial-zh.md"
    lines = [x for x in tutorial.read_text(encoding="utf-8").splitlines() if x.strip()] if tutorial.exists() else []
    return lines + _chatterbot_lines("chinese") + _chatterbot_lines("traditionalchinese")


def build_corpus(lines, size_bytes, seed, recombine) -> str:
    rng = random.Random(seed)
    out, total = [], 0
    while total < size_bytes:
        if recombine:
            line = "".join(rng.choice(lines) for _ in range(rng.randint(1, 4)))
        else:
            if not out or len(out) % len(lines) == 0:
                order = lines[:]
                rng.shuffle(order)
            line = order[len(out) % len(lines)]
        out.append(line)
        total += len(line.encode("utf-8")) + 1
    return "\n".join(out) + "\n"


def corpora(size_mb: float) -> dict[str, str]:
    CACHE.mkdir(parents=True, exist_ok=True)
    result = {}
    for name, make, recombine in (("en", english_lines, False), ("zh", chinese_lines, True)):
        path = CACHE / f"{name}_{size_mb}MB.txt"
        if not path.exists():
            path.write_text(build_corpus(make(), int(size_mb * 1e6), 1234, recombine), encoding="utf-8")
        result[name] = path.read_text(encoding="utf-8")
    return result


def timed(fn, repeat=1, setup=None):
    """Best CPU time (process_time) of ``repeat`` runs. CPU time, not wall time, because the
    2-core machines are shared: with other jobs running, wall time measures the neighbours.
    Every contender runs single-threaded, so its CPU time is its compute time."""
    best = float("inf")
    for _ in range(repeat):
        arg = setup() if setup is not None else None
        t0 = time.process_time()
        out = fn() if setup is None else fn(arg)
        best = min(best, time.process_time() - t0)
    return best, out


# ---------------------------------------------------------------------------- the contenders
def train_ours(texts, workdir):
    from scratchgpt.tokenizer import BPETokenizer
    return BPETokenizer.train(texts, VOCAB)


def train_ours_gpt2(texts, workdir):
    """Ours with the GPT-2 pre-tokenizer (whole CJK runs are one piece), for an apples-to-apples
    comparison with tiktoken running GPT-2's own pattern."""
    from scratchgpt.tokenizer import BPETokenizer
    return BPETokenizer.train(texts, VOCAB, pretokenizer="gpt2")


GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


def train_hf(texts, workdir):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    return tok


def train_sp(kind):
    def train(texts, workdir):
        import sentencepiece as spm
        prefix = str(workdir / f"sp_{kind}")
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(texts), model_prefix=prefix, vocab_size=VOCAB, model_type=kind,
            num_threads=1, character_coverage=0.9995, byte_fallback=True,
            max_sentence_length=1 << 16, input_sentence_size=0, minloglevel=2)
        return spm.SentencePieceProcessor(model_file=prefix + ".model")
    return train


def tiktoken_from(ours):
    """tiktoken over our merges: a token's rank is its id (merge i -> id 256 + i), and the
    pattern is the regex form of our pre-tokenizer mode."""
    import tiktoken

    from scratchgpt.tokenizer.bpe_formats import SCRATCHGPT_REGEX
    ranks = {data: i for i, data in enumerate(ours.id_to_bytes)}
    pattern = GPT2_PATTERN if ours.pretokenizer == "gpt2" else SCRATCHGPT_REGEX
    return tiktoken.Encoding(name=f"scratchgpt-merges-{ours.pretokenizer}", pat_str=pattern,
                             mergeable_ranks=ranks, special_tokens={})


def encoders(name, tok):
    """(encode one str, decode ids) for each library. Called again for every timed run, so
    tokenizers with a piece cache (ours, HF) start each run with an EMPTY cache: the numbers are
    what encoding a corpus once costs, not a replay of text the cache has already seen."""
    if name.startswith("ours"):
        tok = tok.with_backend("cython")  # a new Encoder, new cache
        return tok.encode, tok.decode
    if name == "hf":
        from tokenizers import Tokenizer
        tok = Tokenizer.from_str(tok.to_str())  # a new BPE model, new cache
        return (lambda s: tok.encode(s, add_special_tokens=False).ids), tok.decode
    if name.startswith("sentencepiece"):
        return tok.encode, tok.decode
    if name.startswith("tiktoken"):
        return tok.encode_ordinary, tok.decode
    raise ValueError(name)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mb", type=float, default=2.5, help="per language")
    ap.add_argument("--out", default=str(CACHE / "results.json"))
    ap.add_argument("--skip", nargs="*", default=[], help="contenders to skip")
    args = ap.parse_args(argv)
    texts = corpora(args.size_mb)
    train_lines = texts["en"].splitlines() + texts["zh"].splitlines()
    random.Random(0).shuffle(train_lines)
    mb = {k: len(v.encode("utf-8")) / 1e6 for k, v in texts.items()}
    print(f"corpus: en {mb['en']:.2f} MB, zh {mb['zh']:.2f} MB; training on both "
          f"({len(train_lines)} lines), vocab {VOCAB}, single thread", flush=True)

    results = {}
    trained = {}
    for name, train in (("ours", train_ours), ("ours-gpt2", train_ours_gpt2), ("hf", train_hf),
                        ("sentencepiece-bpe", train_sp("bpe")), ("sentencepiece-unigram", train_sp("unigram"))):
        if name in args.skip:
            continue
        secs, tok = timed(lambda: train(train_lines, CACHE))
        trained[name] = tok
        results[name] = {"train_s": secs}
        print(f"  trained {name:22s} {secs:7.2f} s", flush=True)
    for ours, tt in (("ours", "tiktoken"), ("ours-gpt2", "tiktoken-gpt2")):
        if ours in trained and tt not in args.skip:
            trained[tt] = tiktoken_from(trained[ours])
            results[tt] = {"train_s": None}

    for name, tok in trained.items():
        row = results[name]
        fresh = lambda: encoders(name, tok)[0]  # noqa: E731
        for lang, text in texts.items():
            lines = text.splitlines(keepends=True)
            t_lines, _ = timed(lambda enc: [enc(x) for x in lines], repeat=2, setup=fresh)
            t_str, ids = timed(lambda enc: enc(text), repeat=2, setup=fresh)
            dec = encoders(name, tok)[1]
            t_dec, back = timed(lambda: dec(ids), repeat=2)
            row[f"{lang}_encode_lines_MBps"] = mb[lang] / t_lines
            row[f"{lang}_encode_string_MBps"] = mb[lang] / t_str
            row[f"{lang}_decode_MBps"] = mb[lang] / t_dec
            row[f"{lang}_tokens"] = len(ids)
            row[f"{lang}_roundtrip"] = back == text
        print(f"  measured {name}", flush=True)
    for ours, tt in (("ours", "tiktoken"), ("ours-gpt2", "tiktoken-gpt2")):
        if tt in trained:  # same merges: do the ids agree?
            enc_o, _ = encoders(ours, trained[ours])
            enc_t, _ = encoders(tt, trained[tt])
            for lang, text in texts.items():
                lines = text.splitlines(keepends=True)
                same = sum(enc_o(x) == enc_t(x) for x in lines) / len(lines)
                results[tt][f"{lang}_lines_equal_to_{ours}"] = same
                print(f"  {tt} ids == {ours} ids on {same:.2%} of {lang} lines")

    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1))
    print_table(results)
    print(f"\nJSON: {args.out}")


def print_table(results):
    cols = [("train_s", "train s"), ("en_encode_lines_MBps", "en lines"), ("en_encode_string_MBps", "en string"),
            ("zh_encode_lines_MBps", "zh lines"), ("zh_encode_string_MBps", "zh string"),
            ("en_decode_MBps", "en decode"), ("zh_decode_MBps", "zh decode"),
            ("en_tokens", "en tokens"), ("zh_tokens", "zh tokens")]
    print("\nencode/decode in MB/s (higher is better), train in s (CPU time, single thread); "
          "(x) = ours / theirs (speed: >1 means ours is faster; tokens: <1 means ours uses fewer); "
          "rows ending in -gpt2 compare with ours-gpt2, the others with ours")
    print(f"{'':24s}" + "".join(f"{label:>18s}" for _, label in cols))
    for name, row in results.items():
        ours = results.get("ours-gpt2" if name.endswith("gpt2") else "ours", {})
        cells = []
        for key, _ in cols:
            v = row.get(key)
            if v is None:
                cells.append(f"{'-':>18s}")
                continue
            ratio = ""
            if row is not ours and ours.get(key):
                r = (v / ours[key]) if key == "train_s" else (ours[key] / v)
                ratio = f" ({r:.2f}x)"
            fmt = f"{v:.0f}" if key.endswith("tokens") else f"{v:.2f}"
            cells.append(f"{fmt + ratio:>18s}")
        print(f"{name:24s}" + "".join(cells))


if __name__ == "__main__":
    sys.exit(main())
