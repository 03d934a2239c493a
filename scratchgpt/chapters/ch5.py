"""Chapter 5 — 项目实践 (project practice): the tutorial's §5 pipeline, done correctly.

    python -m scratchgpt.chapters.ch5                    # the full demo pipeline (~10 min on 2 cores)
    python -m scratchgpt.chapters.ch5 --from runs/demo   # reuse a finished `scratchgpt demo` run
    python -m scratchgpt.chapters.ch5 --quick            # tiny settings, < 1 minute (what tests run)

Guide: chapters/ch5.md. Sections follow the tutorial: §5.1 environment, §5.2.1 data, §5.2.2
model, §5.2.3 fine-tuning, §5.2.4 inference, §5.4 the "User: How are you?" conversation.
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np


def section_env() -> None:
    from ..backend import describe
    print("== §5.1 开发环境 / environment ==")
    info = describe()
    print("  " + ", ".join(f"{k} {v}" for k, v in info.items()))
    print("  (no PyTorch/TensorFlow needed: the framework is scratchgpt itself — NumPy + Numba + Cython)")


def section_pipeline(out: Path, quick: bool, reuse: bool) -> dict:
    """§5.2.1-§5.2.3: data -> tokenizer -> pretrain -> SFT -> eval (the demo's stages)."""
    from ..train.demo import run_demo
    print("\n== §5.2.1-§5.2.3 数据预处理, 模型构建, 微调 / data, model, fine-tuning ==")
    print("  tutorial §5.2.1 builds an 'expanded' column and drops it (no augmentation happens);")
    print("  tutorial §5.2.2 stacks two nn.Transformer encoder-decoders and calls it GPT;")
    print("  tutorial §5.2.3 calls torch.tensor on strings and trains on whole padded sequences.")
    print("  Here: the data pipeline (report below), a decoder-only GPT, pretraining on unlabeled")
    print("  text, then SFT with the loss on assistant tokens only.\n")
    if reuse and (out / "eval.json").is_file():
        ev = json.loads((out / "eval.json").read_text(encoding="utf-8"))
        print(f"  reusing the finished run in {out} (eval.json, sft/model)")
    else:
        ev = run_demo(out, quick=quick, progress=not quick)
    return ev


def section_inference(model, tok) -> None:
    from ..autograd import no_grad
    from ..tokenizer.chat_template import render_chat
    print("\n== §5.2.4 推理 / inference ==")
    ids, _ = render_chat(tok, [{"role": "user", "content": "How are you?"}], add_generation_prompt=True)
    x = np.asarray([ids], dtype=np.int64)
    with no_grad():
        logits = model(x)[0].data[0, -1]                         # (V,) next-token scores
    top = np.argsort(-logits)[:5]
    p = np.exp(logits - logits.max())
    p /= p.sum()
    print("  the tutorial's generate_response pads the context with 5 zeros, runs the model once and")
    print("  takes one argmax per position — the 'reply' is a guess for each padding slot, not text.")
    print("  Generation is a loop: predict the next token, append it, repeat until <|end|>.")
    print("  first step after '<|user|>How are you?<|end|><|assistant|>', top 5 next tokens:")
    for t in top:
        print(f"    {tok.decode([int(t)])!r:>14}  p={p[t]:.3f}")


def section_how_are_you(model, tok, n: int = 10) -> list:
    from ..tokenizer.chat_template import render_chat
    from ..train.evaluate import greedy_reply
    print("\n== §5.4 运行结果 / 'User: How are you?' ==")
    msgs = [{"role": "user", "content": "How are you?"}]
    greedy = greedy_reply(model, tok, msgs, 48)
    print(f"  greedy (deterministic, so the tutorial's 10 identical calls give 10 identical replies):")
    print(f"    User: How are you?\n    Bot:  {greedy}")
    print(f"  sampled, temperature 0.8, top-k 20, seeds 0..{n - 1}:")
    ids, _ = render_chat(tok, msgs, add_generation_prompt=True)
    end = tok.token_to_id("<|end|>")
    replies = []
    for seed in range(n):
        out = model.generate(np.asarray([ids]), max_new_tokens=40, temperature=0.8, top_k=20, seed=seed)[0]
        new = [int(t) for t in out[len(ids):]]
        if end in new:
            new = new[:new.index(end)]
        replies.append(tok.decode(new).strip())
        print(f"    [{seed}] User: How are you?  Bot: {replies[-1]}")
    return [greedy] + replies


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Chapter 5: the tutorial's §5 pipeline, done correctly")
    ap.add_argument("--quick", action="store_true", help="tiny settings (< 1 minute)")
    ap.add_argument("--from", dest="reuse", default=None, help="reuse a finished demo run directory")
    ap.add_argument("--out", default=None, help="run directory (default: a temp folder; runs/demo with --from)")
    args = ap.parse_args(argv)
    from ..train.runs import load_model_dir
    section_env()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.reuse or args.out or tmp)
        ev = section_pipeline(out, args.quick, reuse=bool(args.reuse))
        model, tok = load_model_dir(out / "sft" / "model")
        print(f"\n  held-out task accuracy {ev['task_accuracy']:.1%}, val loss {ev['val_loss']:.3f}, "
              f"ROUGE-L {ev['rouge_l']:.3f}")
        section_inference(model, tok)
        section_how_are_you(model, tok, n=3 if args.quick else 10)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
