"""Chapter 2 — core concepts made concrete: tokens -> embeddings -> attention weights.

    python -m scratchgpt.chapters.ch2            # ~20 s on 2 CPU cores
    python -m scratchgpt.chapters.ch2 --quick    # what the tests run

Guide: chapters/ch2.md
"""
from __future__ import annotations

import importlib
import time
from pathlib import Path

import numpy as np

from .. import ops
from ..autograd import no_grad
from ..commands._flags import chapter_args, chapter_parser, run_chapter

SENTENCE = "Where is my order A12345? It has not arrived."

# op module -> what its fast path is (checked against the live module below)
OP_MODULES = ["matmul_op", "embedding_op", "layernorm_op", "gelu_op", "softmax_op", "attention",
              "cross_attention_op", "cross_entropy_op", "dropout_op", "adamw"]


def corpus_lines(limit: int) -> list[str]:
    """Up to ``limit`` turns of the bundled customer-service dialogues, English and Chinese interleaved."""
    from ..data.loaders import load_records
    from ..data.report import Report

    from ..datasets import customer_service_file
    by_lang: dict[str, list[str]] = {}
    for conv in load_records([customer_service_file("train")], Report()):
        by_lang.setdefault(conv.language or "other", []).extend(m.content for m in conv.messages)
    lines = [line for group in zip(*by_lang.values()) for line in group]
    return lines[:limit]


def show_tokens(tok, sentence: str) -> list[int]:
    print("== 1. Text -> tokens (byte-level BPE, scratchgpt/tokenizer) ==")
    ids = tok.encode(sentence)
    pieces = [tok.id_to_token_bytes(i).decode("utf-8", errors="replace") for i in ids]
    print(f"  sentence: {sentence!r}")
    print(f"  {len(sentence)} characters -> {len(ids)} tokens (vocab {tok.vocab_size})")
    for i, p in zip(ids, pieces):
        print(f"    {i:5d}  {p!r}")
    assert tok.decode(ids) == sentence
    print("  decode(encode(sentence)) == sentence: True")
    return ids


def train_briefly(ids_corpus: np.ndarray, vocab_size: int, steps: int, block: int):
    """A small GPT trained for a few steps on the corpus, so attention is not uniform noise."""
    from ..models import GPT, GPTConfig
    from ..optim import AdamW

    cfg = GPTConfig(vocab_size=vocab_size, block_size=block, n_layer=2, n_head=2, n_embd=64, dropout=0.0)
    model = GPT(cfg, seed=0)
    opt = AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    loss = None
    for _ in range(steps):
        starts = rng.integers(0, len(ids_corpus) - block - 1, size=8)
        x = np.stack([ids_corpus[s:s + block] for s in starts])
        y = np.stack([ids_corpus[s + 1:s + block + 1] for s in starts])
        opt.zero_grad()
        _, loss = model(x, y)
        loss.backward()
        opt.step()
    print(f"  (a 2-layer GPT trained for {steps} steps on the bundled dialogues in {time.perf_counter() - t0:.1f} s; "
          f"loss {loss.item():.3f})")
    return model


def show_embeddings(model, ids: list[int], pieces: list[str]) -> np.ndarray:
    print("\n== 2. Tokens -> vectors: x_t = wte[id_t] + wpe[t] ==")
    tr = model.transformer
    idx = np.array([ids], dtype=np.int64)
    with no_grad():
        x = ops.token_position_embedding(idx, tr.wte.weight, tr.wpe.weight).data[0]  # (T, C)
    print(f"  embedding matrix wte {tr.wte.weight.shape}, positions wpe {tr.wpe.weight.shape}; x {x.shape}")
    for t, p in enumerate(pieces[:8]):
        head = " ".join(f"{v:+.3f}" for v in x[t, :4])
        print(f"    t={t:2d} {p!r:>12}  [{head} ...]  |x| = {np.linalg.norm(x[t]):.3f}")
    return x


def attention_weights(model, ids: list[int], layer: int = 0, head: int = 0) -> np.ndarray:
    """softmax(q k^T / sqrt(HS) + causal mask) for one head, computed with the library's ops."""
    tr = model.transformer
    cfg = model.config
    block = tr.h[layer]
    idx = np.array([ids], dtype=np.int64)
    hs = cfg.n_embd // cfg.n_head
    with no_grad():
        x = ops.token_position_embedding(idx, tr.wte.weight, tr.wpe.weight)
        for b in tr.h[:layer]:
            x = b(x)
        h = block.ln_1(x)
        qkv = ops.linear(h, block.attn.c_attn.weight, block.attn.c_attn.bias).data[0]  # (T, 3C)
        C = cfg.n_embd
        q = qkv[:, head * hs:(head + 1) * hs]                # (T, HS)
        k = qkv[:, C + head * hs:C + (head + 1) * hs]        # (T, HS)
        T = len(ids)
        scores = q @ k.T / np.sqrt(hs)                       # (T, T)
        scores = np.where(np.tril(np.ones((T, T), dtype=bool)), scores, -np.inf)
        att = ops.softmax(scores.astype(np.float32), axis=-1).data
    return att


def show_attention(model, ids: list[int], pieces: list[str]) -> np.ndarray:
    print("\n== 3. Vectors -> attention weights (layer 0, head 0, causal) ==")
    att = attention_weights(model, ids)
    n = min(len(ids), 10)
    labels = [p.strip()[:6] or "␣" for p in pieces[:n]]
    print("  " + " " * 8 + "".join(f"{l:>7}" for l in labels))
    for t in range(n):
        print(f"  {labels[t]:>8}" + "".join(f"{att[t, s]:7.2f}" for s in range(n)))
    rows = att.sum(axis=1)
    upper = att[np.triu_indices(len(ids), k=1)]
    print(f"  every row sums to 1: max |row sum - 1| = {np.abs(rows - 1).max():.2e}; "
          f"upper triangle (future tokens) max = {upper.max() if upper.size else 0.0:.1f}")
    return att


def show_languages() -> list[tuple]:
    print("\n== 4. Which parts are Python, Cython, Numba CPU and CUDA (read from the running library) ==")
    from numba.core.registry import CPUDispatcher

    from ..ops._numba import KernelPair

    rows = []
    for name in OP_MODULES:
        mod = importlib.import_module(f"scratchgpt.ops.{name}")
        njit = sorted(k for k, v in vars(mod).items() if isinstance(v, (CPUDispatcher, KernelPair)))
        # the CUDA twin sits beside the op as <op>_cuda.py (read as text: importing it needs numba.cuda)
        stem = name[:-3] if name.endswith("_op") else name
        cuda_file = Path(mod.__file__).with_name(f"{stem}_cuda.py")
        cuda = "-"
        if cuda_file.exists():
            text = cuda_file.read_text(encoding="utf-8")
            n_ops = text.count("@register(")
            cuda = f"{cuda_file.name}: {text.count('@cuda.jit')} kernels" + (f", {n_ops} ops registered" if n_ops else "")
        rows.append((f"ops/{name}.py", f"{len(njit)} @njit kernels", cuda))
    for modname, label in [("scratchgpt.tokenizer._bpe", "tokenizer/_bpe.pyx"),
                           ("scratchgpt.sampling._sampler", "sampling/_sampler.pyx")]:
        mod = importlib.import_module(modname)
        compiled = Path(mod.__file__).suffix in (".so", ".pyd")
        rows.append((label, "Cython, compiled C" if compiled else "NOT compiled", "-"))
    rows.append(("autograd/, nn/, models/, train/", "Python + NumPy (BLAS for matmuls)", "-"))
    w = max(len(r[0]) for r in rows)
    print(f"  {'module':<{w}}  {'CPU fast path':<36} CUDA")
    for r in rows:
        print(f"  {r[0]:<{w}}  {r[1]:<36} {r[2]}")
    return rows


def main(argv=None) -> dict:
    ap = chapter_parser("ch2", __doc__.splitlines()[0], quick_help="smaller corpus and fewer steps",
                        writes_files=False)
    args = chapter_args(ap, argv)
    from ..tokenizer import BPETokenizer

    lines = corpus_lines(600 if args.quick else 3000)
    tok = BPETokenizer.train(lines, vocab_size=384 if args.quick else 1024)
    ids = show_tokens(tok, SENTENCE)
    pieces = [tok.id_to_token_bytes(i).decode("utf-8", errors="replace") for i in ids]
    corpus = np.array([t for line in lines for t in tok.encode(line + "\n")], dtype=np.int64)
    model = train_briefly(corpus, tok.vocab_size, steps=30 if args.quick else 150, block=32)
    x = show_embeddings(model, ids, pieces)
    att = show_attention(model, ids, pieces)
    rows = show_languages()
    return {"ids": ids, "embeddings": x, "attention": att, "languages": rows}


if __name__ == "__main__":
    raise SystemExit(run_chapter(main, "ch2"))
