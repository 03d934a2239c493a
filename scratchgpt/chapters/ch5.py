"""Chapter 5 — 项目实践 (project practice): the tutorial's §5 pipeline, done correctly.

    python -m scratchgpt.chapters.ch5                    # the full demo pipeline (6.5-9.5 min on 2 cores)
    python -m scratchgpt.chapters.ch5 --from runs/demo   # reuse a finished `scratchgpt demo` run
    python -m scratchgpt.chapters.ch5 --quick            # tiny settings, < 1 minute (what tests run)

Guide: chapters/ch5.md. Sections follow the tutorial: §5.1 environment, §5.2.1 data, §5.2.2
model, §5.2.3 fine-tuning, §5.2.4 inference, §5.4 the "User: How are you?" conversation.
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np

from ..commands._flags import chapter_args, chapter_parser, kept_note, run_chapter
from ..errors import ConfigError


def check_finished_run(run_dir) -> None:
    """``--from RUN_DIR`` must be a finished demo run: its eval.json and fine-tuned model."""
    p = Path(run_dir)
    missing = [name for name in ("eval.json", "sft/model/config.json") if not (p / name).is_file()]
    if not p.is_dir() or missing:
        what = "no such directory" if not p.exists() else (
            "not a directory" if not p.is_dir() else f"not a finished demo run ({', '.join(missing)} missing)")
        raise ConfigError(f"--from {run_dir}: {what}; run `scratchgpt demo --out {run_dir}` first, "
                          "or leave --from out to run the pipeline here")


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
    from ..infer import Engine, SamplingParams
    engine = Engine(model, tok, max_batch_size=1)       # KV-cache generation (scratchgpt/infer)
    replies = []
    for seed in range(n):
        # stops at <|end|> (or another end token); 40 tokens at most, fewer if the context is short
        p = SamplingParams(max_new_tokens=min(40, model.config.block_size - len(ids) + 1), temperature=0.8,
                           top_k=20, seed=seed)
        replies.append(engine.generate(ids, p).text.strip())
        print(f"    [{seed}] User: How are you?  Bot: {replies[-1]}")
    return [greedy] + replies


def main(argv=None) -> int:
    ap = chapter_parser("ch5", "Chapter 5: the tutorial's §5 pipeline, done correctly",
                        quick_help="tiny settings (< 1 minute; the model stays untrained on purpose)",
                        out_help="run the pipeline into DIR and keep it (default: a temporary folder, "
                                 "deleted at the end)")
    ap.add_argument("--from", dest="reuse", default=None, metavar="RUN_DIR",
                    help="reuse a finished `scratchgpt demo` run directory instead of training")
    args = chapter_args(ap, argv)
    from ..train.runs import load_model_dir
    if args.reuse:
        check_finished_run(args.reuse)
        if args.out:
            raise ConfigError("--from and --out contradict each other: --from reads a finished run, --out makes one")
    section_env()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.reuse or args.out or tmp)
        ev = section_pipeline(out, args.quick, reuse=bool(args.reuse))
        model, tok = load_model_dir(out / "sft" / "model")
        print(f"\n  held-out task accuracy {ev['task_accuracy']:.1%}, val loss {ev['val_loss']:.3f}, "
              f"ROUGE-L {ev['rouge_l']:.3f}")
        section_inference(model, tok)
        section_how_are_you(model, tok, n=3 if args.quick else 10)
        if not args.reuse:
            print(f"\n({kept_note(args.out, 'the run and the paths printed above')}"
                  + ("" if args.out else "; or run `scratchgpt demo`, then this chapter with --from runs/demo") + ")")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_chapter(main, "ch5"))
