"""``scratchgpt eval``: validation loss, perplexity, ROUGE-L/BLEU/distinct-n and task accuracy."""
from __future__ import annotations

import json
from pathlib import Path

from ._flags import add_device, add_progress, add_threads, apply_device


def register(sub) -> None:
    p = sub.add_parser("eval", help="evaluate a model directory on a prepared dialogue dataset",
                       description="Measure val loss and perplexity on sft_val, then greedy replies on "
                                   "test.jsonl: task accuracy (slot echo + topic), ROUGE-L, BLEU, distinct-1/2, per "
                                   "language and slot type; then the same on the bundled hand-written sets (paraphrase, dev, blind paraphrase, value formats).")
    p.add_argument("model", help="model directory (or a PEFT directory written by `scratchgpt sft --peft`)")
    p.add_argument("--data", required=True, metavar="DIR",
                   help="prepared dialogue directory (shards/sft_val, test.jsonl)")
    p.add_argument("--out", default=None, metavar="FILE", help="where to write the metrics JSON (default MODEL/eval.json)")
    p.add_argument("--limit", type=int, default=None, metavar="N", help="evaluate at most this many test conversations")
    p.add_argument("--max-new-tokens", type=int, default=48, metavar="N", help="reply length limit (default 48)")
    p.add_argument("--no-paraphrase", action="store_true",
                   help="skip the hand-written evaluation sets (scratchgpt/datasets/customer_service/"
                        "paraphrase.csv, dev.csv, paraphrase_blind.csv, values_dev.csv)")
    add_progress(p)
    add_threads(p)
    add_device(p)
    p.set_defaults(func=run)


def run(args) -> int:
    device = apply_device(args)
    from ..errors import ConfigError
    from ..train.runs import eval_setup, evaluate_model, load_model_dir
    if args.limit is not None and args.limit < 1:
        raise ConfigError(f"--limit must be >= 1, got {args.limit}")
    if args.max_new_tokens < 1:
        raise ConfigError(f"--max-new-tokens must be >= 1, got {args.max_new_tokens}")
    out = Path(args.out) if args.out else Path(args.model) / "eval.json"
    if out.is_dir():
        raise ConfigError(f"--out {out}: is a directory; pass the JSON file to write")
    model, tok = load_model_dir(args.model)
    model.to(device)          # --device cuda: val loss and replies (the engine follows the model) on the GPU
    res = evaluate_model(model, tok, args.data, limit=args.limit, max_new_tokens=args.max_new_tokens,
                         paraphrase=not args.no_paraphrase, progress=args.progress)
    res = {"setup": eval_setup(args.model, args.data, args.limit, args.max_new_tokens), **res}
    out.write_text(json.dumps(res, indent=2, ensure_ascii=False), encoding="utf-8")
    print(format_eval(res))
    print(f"written to {out}")
    return 0


def _task_line(res: dict, what: str) -> str:
    slot = "n/a" if res.get("slot_accuracy") is None else f"{res['slot_accuracy']:.1%}"
    langs = ", ".join(f"{k} {v['task_accuracy']:.1%}" for k, v in res.get("by_language", {}).items())
    types = ", ".join(f"{k} {v['echoed']:.1%}" for k, v in res.get("by_slot_type", {}).items())
    return (f"task accuracy {res['task_accuracy']:.1%} on {res['n_conversations']} {what} "
            f"(slot echo {slot} of {res['n_with_slots']}, topic {res['topic_accuracy']:.1%})"
            + (f"\n  by language: {langs}" if langs else "") + (f"\n  values echoed by slot type: {types}" if types else ""))


def format_eval(res: dict) -> str:
    lines = [f"val loss {res['val_loss']:.4f}  perplexity {res['perplexity']:.2f}",
             _task_line(res, "test conversations"),
             f"ROUGE-L {res['rouge_l']:.3f}  BLEU {res['bleu']:.3f}  distinct-1 {res['distinct_1']:.3f}  "
             f"distinct-2 {res['distinct_2']:.3f}"]
    if res.get("paraphrase"):
        lines.append(_task_line(res["paraphrase"], "paraphrase-set conversations (never trained on)"))
    if res.get("dev"):
        lines.append(_task_line(res["dev"], "dev-set conversations (never trained on)"))
    if res.get("paraphrase_blind"):
        lines.append(_task_line(res["paraphrase_blind"], "blind paraphrase-set conversations (never trained on)"))
    if res.get("values_dev"):
        lines.append(_task_line(res["values_dev"], "value-format dev-set conversations (never trained on)"))
    return "\n".join(lines)
