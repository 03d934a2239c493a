"""``scratchgpt quantize``: int8 / int4 quantization of a model directory (weights; activations in decode)."""
from __future__ import annotations

from pathlib import Path

from ._flags import add_progress, add_threads


def register(sub) -> None:
    p = sub.add_parser("quantize", help="int8/int4 quantization of a model directory",
                       description="Quantize every block matmul weight (and by default the output layer) to "
                                   "int8 or int4 with one float32 scale per group of input features; LayerNorms, "
                                   "biases and position embeddings stay float32. Writes a quantized model "
                                   "directory that `scratchgpt generate/chat/serve` load like any other.")
    p.add_argument("model", metavar="MODEL_DIR", help="float32 model directory (a LoRA directory is merged first)")
    p.add_argument("--bits", type=int, choices=(8, 4), required=True, help="8 (like Q8_0) or 4 (like Q4_0)")
    p.add_argument("--group-size", type=int, default=32, metavar="G",
                   help="input features per scale, a multiple of 32 (default 32; 64 halves the scale bytes)")
    p.add_argument("--keep-lm-head", action="store_true",
                   help="leave the output layer (tied to the token embeddings) in float32")
    p.add_argument("--embeddings", action="store_true",
                   help="store the token-embedding table only in quantized form (smaller file; the "
                        "lookup table is dequantized at load time)")
    p.add_argument("--weight-only", action="store_true",
                   help="keep float32 activations in decode steps (default: each linear's input row is "
                        "quantized to int8 per block of 32 and the products run in integers, ~2x faster "
                        "matrix-vector products; stored in config.json as quantization.act_quant)")
    p.add_argument("--out", required=True, metavar="DIR", help="where to write the quantized model")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty --out directory")
    _add_report_flags(p)
    add_progress(p)
    add_threads(p)
    p.set_defaults(func=run)


def _add_report_flags(p) -> None:
    p.add_argument("--report", action="store_true",
                   help="measure file size, memory, decode tokens/s, val perplexity and task accuracy "
                        "against the float32 model and print the table (also OUT/report.json)")
    p.add_argument("--data", default=None, metavar="DIR",
                   help="prepared dialogue directory for --report's perplexity and accuracy "
                        "(default: the demo's, next to MODEL_DIR, if there is one)")
    p.add_argument("--limit", type=int, default=None, metavar="N",
                   help="--report: evaluate task accuracy on at most N test conversations")


def check_out(out, overwrite: bool, source) -> Path:
    from ..errors import ConfigError
    out = Path(out)
    if Path(source).resolve() == out.resolve():
        raise ConfigError(f"--out {out}: is the input model directory; choose another")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise ConfigError(f"--out {out}: directory is not empty (pass --overwrite to replace it)")
    return out


def demo_data_dir(model_dir):
    """runs/demo/sft/model -> runs/demo/data/customer_service, when that exists."""
    p = Path(model_dir).resolve()
    for up in p.parents[:3]:
        cand = up / "data" / "customer_service"
        if (cand / "test.jsonl").is_file():
            return cand
    return None


def report_data(args):
    from ..errors import ConfigError
    if args.limit is not None and args.limit < 1:
        raise ConfigError(f"--limit must be >= 1, got {args.limit}")
    if not args.report:
        return None
    data = args.data or demo_data_dir(args.model)
    if data is None:
        print("--report: no --data given and no demo data next to the model: perplexity and accuracy skipped")
    return data


def run(args) -> int:
    from ..infer.load import load_gpt_dir
    from ..infer.quantize import QuantConfig, quantize_gpt, save_quantized
    from ..nn.peft import merge_lora
    qcfg = QuantConfig(bits=args.bits, group_size=args.group_size, lm_head=not args.keep_lm_head,
                       embeddings=args.embeddings, act_quant=not args.weight_only)
    out = check_out(args.out, args.overwrite, args.model)
    data = report_data(args)
    model, tok = load_gpt_dir(args.model)
    merge_lora(model)
    model.eval()
    q = quantize_gpt(model, qcfg, progress=args.progress)
    save_quantized(q, out, tokenizer=tok)
    size = (out / "model.safetensors").stat().st_size
    print(f"int{args.bits} (group {args.group_size}, {'float32' if args.weight_only else 'int8'} activations in "
          f"decode): {len(q.qlinears)} matrices quantized, "
          f"weights file {size / 1e6:.2f} MB; written to {out}")
    if args.report:
        from ..infer.report import report
        name = f"int{args.bits} g{args.group_size}" + (" weight-only" if args.weight_only else "")
        _, table = report(args.model, out, name, model, q.simulated_gpt(), q,
                          tok, data, args.limit, progress=args.progress)
        print(table)
        print(f"report: {out / 'report.json'}")
    print(f"next: scratchgpt generate {out} --prompt \"...\"")
    return 0
