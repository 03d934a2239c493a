"""``scratchgpt export``: a Hugging Face GPT-2 directory that transformers and tokenizers load."""
from __future__ import annotations

import json

from ._flags import add_threads
from .quantize import check_out


def register(sub) -> None:
    p = sub.add_parser("export", help="export a model directory for Hugging Face transformers",
                       description="Write config.json, model.safetensors and tokenizer.json in Hugging Face "
                                   "GPT-2 form: GPT2LMHeadModel.from_pretrained(DIR) and "
                                   "tokenizers.Tokenizer.from_file(DIR/tokenizer.json) load it, with the same "
                                   "logits and token ids as ours. Models GPT-2 cannot express are refused.")
    p.add_argument("model", metavar="MODEL_DIR", help="model directory (a LoRA directory is merged first)")
    p.add_argument("--format", choices=("hf",), default="hf", help="hf: Hugging Face GPT-2 (the only format)")
    p.add_argument("--out", required=True, metavar="DIR", help="where to write the exported model")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty --out directory")
    add_threads(p)
    p.set_defaults(func=run)


def export_hf(model, tok, out) -> None:
    """Write the HF GPT-2 files; ConfigError for anything GPT-2 cannot represent."""
    from ..errors import ConfigError
    from ..models import checkpoint as ckpt
    c = model.config
    if not c.bias:
        raise ConfigError("export --format hf: the model has bias=False; HF GPT-2 always has biases "
                          "(its linears and LayerNorms would start from HF's own values, not ours)")
    if c.head_dim is not None and c.head_dim * c.n_head != c.n_embd:
        raise ConfigError(f"export --format hf: the model keeps {c.n_head} heads of {c.head_dim} (pruned heads); "
                          f"HF GPT-2 requires n_head * head_dim == n_embd ({c.n_embd})")
    if getattr(c, "smear", False):
        raise ConfigError("export --format hf: the model has the smear gate (GPTConfig.smear), which HF GPT-2 "
                          "does not have; HF would drop it and compute another function")
    blocks = model.transformer.h
    if any(getattr(b.attn, "prefix_k", None) is not None or getattr(b.attn, "adapter", None) is not None
           or getattr(b.mlp, "adapter", None) is not None for b in blocks):
        raise ConfigError("export --format hf: Adapter / Prefix-tuning layers have no place in HF GPT-2; "
                          "export a full or LoRA model")
    if not hasattr(tok, "to_huggingface"):
        raise ConfigError(f"export --format hf: a {type(tok).__name__} cannot be written as an HF byte-level "
                          "BPE tokenizer.json; only our BPETokenizer can")
    if getattr(tok, "pretokenizer", "gpt2") not in ("gpt2", "scratchgpt"):   # checked before anything is written
        raise ConfigError(f"export --format hf: the tokenizer's {tok.pretokenizer!r} pre-tokenizer has no HF "
                          "tokenizer.json form (its value rule looks ahead over a whole word)")
    meta = {k: v for k, v in model.hf_config().items() if not k.startswith("scratchgpt_")}
    if c.head_dim is not None:
        meta["n_head"] = c.n_head
    specials = getattr(tok, "special_tokens", {})
    for key, name in (("bos_token_id", "<|endoftext|>"), ("eos_token_id", "<|endoftext|>")):
        if name in specials:
            meta[key] = specials[name]
    out.mkdir(parents=True, exist_ok=True)
    tensors = {n: p.data for n, p in model.named_parameters()}
    ckpt.save_safetensors(out / ckpt.WEIGHTS_NAME, tensors, metadata={"format": "pt"})
    ckpt.save_json(out / ckpt.CONFIG_NAME, meta)
    tok.to_huggingface(out / "tokenizer.json")
    # what transformers' AutoTokenizer needs besides tokenizer.json
    tc = {"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": c.block_size,
          "clean_up_tokenization_spaces": False}
    for key, name in (("eos_token", "<|endoftext|>"), ("bos_token", "<|endoftext|>"), ("pad_token", "<|pad|>")):
        if name in specials:
            tc[key] = name
    (out / "tokenizer_config.json").write_text(json.dumps(tc, indent=2) + "\n", encoding="utf-8")


def run(args) -> int:
    from ..errors import ConfigError
    from ..infer.load import load_gpt_dir
    from ..infer.quantize import is_quantized_dir
    from ..nn.peft import merge_lora
    if is_quantized_dir(args.model):
        raise ConfigError(f"{args.model}: is a quantized model; HF GPT-2 holds float weights only — "
                          "export the float32 model it came from")
    out = check_out(args.out, args.overwrite, args.model)
    model, tok = load_gpt_dir(args.model)
    merge_lora(model)
    export_hf(model, tok, out)
    print(f"Hugging Face GPT-2 directory written to {out} (config.json, model.safetensors, tokenizer.json)")
    print(f"next: python -c \"from transformers import GPT2LMHeadModel; GPT2LMHeadModel.from_pretrained('{out}')\"")
    return 0
