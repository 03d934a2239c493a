"""Chapter 1 — the pipeline map, an environment check, and "hello GPT".

    python -m scratchgpt.chapters.ch1            # ~2 s on 2 CPU cores
    python -m scratchgpt.chapters.ch1 --quick    # a few seconds (what the tests run)

Guide: chapters/ch1.md
"""
from __future__ import annotations

import time

import numpy as np

from ..backend import describe
from ..commands._flags import chapter_args, chapter_parser, run_chapter

PIPELINE = [
    ("text", "raw dialogues and documents", "scratchgpt/datasets/ (bundled), your files"),
    ("data", "load, clean, dedup, annotate, augment, split", "scratchgpt/data/"),
    ("tokenizer", "byte-level BPE (Cython) or sentencepiece", "scratchgpt/tokenizer/"),
    ("shards", "token ids in flat memmap files + loss masks", "scratchgpt/data/shards.py"),
    ("pretrain", "next-token prediction on unlabeled text", "scratchgpt/train/"),
    ("SFT", "fine-tune on dialogues, loss on assistant tokens", "scratchgpt/train/, nn/peft.py"),
    ("checkpoint", "config.json + model.safetensors + tokenizer.json", "scratchgpt/models/checkpoint.py"),
    ("infer", "sampling, quantization, pruning", "scratchgpt/sampling/, scratchgpt/infer/"),
    ("serve", "terminal chat, OpenAI-compatible HTTP API", "scratchgpt/serve/"),
]


def where_now(where: str) -> str:
    """``where`` as it is in this installed version: a package that is not part of it says so,
    instead of pointing at a folder that is not there."""
    import importlib.util
    parts = [p.strip() for p in where.split(",")]
    for i, part in enumerate(parts):
        if part.startswith("scratchgpt/") and part.endswith("/"):
            if importlib.util.find_spec(part.rstrip("/").replace("/", ".")) is None:
                parts[i] = f"({part} is not part of this version)"
    return ", ".join(parts)

SENTENCE = "hello GPT, I was built from scratch in NumPy."


def print_pipeline() -> None:
    print("== 1. The pipeline (tutorial §1-§2) ==")
    width = max(len(s) for s, _, _ in PIPELINE)
    for i, (stage, what, where) in enumerate(PIPELINE):
        arrow = "   " if i == 0 else "-> "
        print(f"  {arrow}{stage:<{width}}  {what:<50} {where_now(where)}")


def print_environment() -> dict:
    print("\n== 2. Environment check ==")
    info = describe()
    for k, v in info.items():
        print(f"  {k:<15} {v}")
    if not info["cuda_available"]:
        print("  (no CUDA GPU visible: everything runs on the CPU; NUMBA_ENABLE_CUDASIM=1 runs GPU kernels in the simulator)")
    return info


def hello_gpt(steps: int, seed: int = 0) -> dict:
    """Overfit one sentence with a tiny character-level GPT and generate it back."""
    from ..models import GPT, GPTConfig
    from ..optim import AdamW

    print("\n== 3. Hello GPT: overfit one sentence, then generate it back ==")
    chars = sorted(set(SENTENCE))
    stoi = {c: i for i, c in enumerate(chars)}
    ids = np.array([stoi[c] for c in SENTENCE], dtype=np.int64)  # (T+1,)
    x = ids[None, :-1]  # (1, T)  inputs
    y = ids[None, 1:]   # (1, T)  next characters
    cfg = GPTConfig(vocab_size=len(chars), block_size=len(SENTENCE), n_layer=2, n_head=2, n_embd=32,
                    dropout=0.0, bias=True)
    model = GPT(cfg, seed=seed)
    opt = AdamW(model.parameters(), lr=1e-2, weight_decay=0.0)
    n_params = sum(p.data.size for p in model.parameters())
    print(f"  vocab = {len(chars)} characters, {n_params:,} parameters, sequence length {x.shape[1]}")
    t0 = time.perf_counter()
    loss_value = float("nan")
    for step in range(steps + 1):
        opt.zero_grad()
        _, loss = model(x, y)
        loss.backward()
        opt.step()
        loss_value = loss.item()
        if step % max(1, steps // 8) == 0 or step == steps:
            print(f"  step {step:4d}  loss {loss_value:.4f}")
    elapsed = time.perf_counter() - t0
    model.eval()
    out = model.generate(ids[None, :1], max_new_tokens=len(SENTENCE) - 1, temperature=0.0)
    text = "".join(chars[i] for i in np.asarray(out)[0])
    print(f"  trained in {elapsed:.1f} s")
    print(f"  prompt   : {SENTENCE[0]!r}")
    print(f"  generated: {text!r}")
    print(f"  {'recovered the sentence exactly' if text == SENTENCE else 'did not recover the sentence yet (train longer)'}")
    return {"final_loss": loss_value, "generated": text, "exact": text == SENTENCE, "seconds": elapsed}


def main(argv=None) -> dict:
    ap = chapter_parser("ch1", __doc__.splitlines()[0], quick_help="fewer steps (a few seconds)",
                        writes_files=False)
    ap.add_argument("--steps", type=int, default=None, metavar="N",
                    help="training steps for hello GPT (default 300; 60 with --quick)")
    args = chapter_args(ap, argv)
    steps = args.steps if args.steps is not None else (60 if args.quick else 300)
    print_pipeline()
    env = print_environment()
    result = hello_gpt(steps)
    return {"environment": env, "hello_gpt": result}


if __name__ == "__main__":
    raise SystemExit(run_chapter(main, "ch1"))
