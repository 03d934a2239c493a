"""``load_for_inference(model_dir) -> (model, tokenizer)`` for every model directory we write.

* a GPT directory (config.json + model.safetensors + tokenizer.json), incl. SFT outputs;
* a PEFT directory (peft.json naming its base_dir): the base is loaded, the PEFT layers applied
  and LoRA merged into the weights (one dense matrix per layer, no extra matmuls per token);
  Adapters and Prefix-tuning stay as they are (the engine runs them, infer/weights.py);
* a quantized/pruned directory, when infer/quantize.py provides ``is_quantized_dir(path)`` and
  ``load_quantized(path) -> (model, tok)`` (the model then has ``decoder_weights()``).
"""
from __future__ import annotations

import json
from pathlib import Path

from ..errors import CheckpointError

def load_tokenizer_file(path):
    """A tokenizer from a file or a directory holding one (``tokenizer.tokenizer_file``)."""
    from ..tokenizer import load_tokenizer
    return load_tokenizer(path)


def not_a_model_dir(path) -> str:
    """Why ``path`` is not a model directory, and where the model probably is."""
    p = Path(path)
    if not p.exists():
        return f"{path}: no such directory (expected a model directory with config.json)"
    if not p.is_dir():
        return f"{path}: is a file, expected a model directory (config.json, model.safetensors, tokenizer.json)"
    for sub in ("model", "peft", "sft/model", "pretrain/model"):
        if (p / sub / "config.json").is_file() or (p / sub / "peft.json").is_file():
            return f"{path}: a run directory, not a model directory; did you mean {p / sub}?"
    return f"{path}: not a model directory (no config.json; a model directory holds config.json, " \
           "model.safetensors and tokenizer.json)"


def load_gpt_dir(model_dir):
    """(GPT, tokenizer) from a model directory; PEFT directories are applied on top of their base
    (LoRA left unmerged, as training and `scratchgpt eval` use it)."""
    from ..models import GPT
    model_dir = Path(model_dir)
    if (model_dir / "peft.json").is_file():
        try:
            info = json.loads((model_dir / "peft.json").read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise CheckpointError(f"{model_dir}/peft.json: not valid JSON ({e})") from None
        base = info.get("base_dir")
        if not base:
            raise CheckpointError(f"{model_dir}/peft.json does not name its base model (base_dir)")
        model, tok = load_gpt_dir(base)
        from ..nn.peft import load_peft
        load_peft(model, model_dir)
        return model, tok
    if not (model_dir / "config.json").is_file():
        raise CheckpointError(not_a_model_dir(model_dir))
    model = GPT.load(model_dir)
    tok = load_tokenizer_file(model_dir)
    if tok.vocab_size != model.config.vocab_size:
        raise CheckpointError(f"{model_dir}: tokenizer has {tok.vocab_size} tokens but the model's "
                              f"vocab_size is {model.config.vocab_size}; they do not belong together")
    return model, tok


def load_for_inference(model_dir):
    """(model, tokenizer) ready for ``Engine``: eval mode, LoRA merged."""
    model_dir = Path(model_dir)
    try:
        from . import quantize as _quant
    except ImportError:
        _quant = None
    if _quant is not None and hasattr(_quant, "is_quantized_dir") and _quant.is_quantized_dir(model_dir):
        return _quant.load_quantized(model_dir)
    model, tok = load_gpt_dir(model_dir)
    from ..nn.peft import merge_lora
    merge_lora(model)
    model.eval()
    return model, tok
