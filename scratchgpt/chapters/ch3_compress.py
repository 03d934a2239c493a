"""Chapter 3, §3.2.4 continued (量化与剪枝 quantization and pruning): smaller weights, measured.

On the §3.2.2 model (or a fresh one of its size when run alone) this section quantizes every
matmul weight to int8 and int4 (scratchgpt/infer/quantize.py) and prunes half of the attention
heads and of the MLP neurons (scratchgpt/infer/prune.py), then shows for each: the bytes a
decode step reads, how far the logits move from float32, how often the greedy next token stays
the same, and batch-1 decode tokens/s through the engine. The full table with validation
perplexity and task accuracy on the demo model: `scratchgpt quantize/prune ... --report`
(chapters/ch3.md §3.2.4).
"""
from __future__ import annotations

import numpy as np


def compression_rows(model, tokens: np.ndarray, new_tokens: int = 16) -> list[dict]:
    """One row per variant: weight MB read per decode step, logits error and greedy agreement
    against float32 on ``tokens`` (B, T), decode tok/s (batch 1)."""
    from ..autograd import no_grad
    from ..infer import decoder_weights
    from ..infer.prune import prune_heads, prune_neurons
    from ..infer.quantize import QuantConfig, quantize_gpt
    from .inference_speed import batched_throughput

    def logits(m):
        with no_grad():
            return m(tokens)[0].data.astype(np.float64)

    ref = logits(model)
    variants = [("float32", model, model, decoder_weights(model).weight_bytes)]
    for bits in (8, 4):
        q = quantize_gpt(model, QuantConfig(bits=bits))
        variants.append((f"int{bits}", q, q.simulated_gpt(), q.decoder_weights().weight_bytes))
    for name, fn in (("heads -50%", prune_heads), ("neurons -50%", prune_neurons)):
        small, _ = fn(model, 0.5)
        variants.append((name, small, small, decoder_weights(small).weight_bytes))
    rows = []
    for name, engine_model, float_model, nbytes in variants:
        lg = ref if float_model is model else logits(float_model)
        rows.append({"variant": name, "weights_MB": nbytes / 1e6,
                     "logits_rel_rms": float(np.sqrt(np.mean((lg - ref) ** 2) / np.mean(ref ** 2))),
                     "same_greedy": float(np.mean(lg.argmax(-1) == ref.argmax(-1))),
                     "decode_tok_s": batched_throughput(engine_model, 1, 8, new_tokens)})
    return rows


def section_compress(args, state) -> None:
    from ..models import GPT, GPTConfig
    print("\n== §3.2.4 (cont.) 量化与剪枝 / quantization and pruning ==")
    if state.get("base_model_dir"):
        from ..train.runs import load_model_dir
        model, _ = load_model_dir(state["base_model_dir"])
        print(f"  model: the §3.2.2 GPT ({model.num_parameters():,} parameters)")
    else:
        cfg = GPTConfig(vocab_size=512, block_size=64 if args.quick else 128, n_layer=2 if args.quick else 4,
                        n_head=4, n_embd=64 if args.quick else 128, dropout=0.0)
        model = GPT(cfg, seed=0)
        print(f"  model: a fresh GPT of the chapter's size ({model.num_parameters():,} parameters, random weights: "
              "errors here are of the arithmetic, quality effects need a trained model)")
    model.eval()
    T = min(32, model.config.block_size)
    tokens = np.random.default_rng(0).integers(0, model.config.vocab_size, (4, T))
    rows = compression_rows(model, tokens, new_tokens=8 if args.quick else 32)
    print("  int8/int4: symmetric, one float32 scale per 32 input features (llama.cpp Q8_0/Q4_0-like), block "
          "matmuls + output layer; pruning: the least important half of heads / MLP neurons in every layer, removed")
    print(f"  {'variant':13} {'weights MB':>10} {'logits rel. RMS error':>22} {'same greedy token':>18} "
          f"{'decode tok/s':>12}")
    for r in rows:
        print(f"  {r['variant']:13} {r['weights_MB']:10.2f} {r['logits_rel_rms']:22.4f} {r['same_greedy']:18.1%} "
              f"{r['decode_tok_s']:12.0f}")
    print("  (pruning without recovery fine-tuning changes the function a lot; int8 barely. Decode speed of a "
          "model this small is dominated by per-step overhead, not weight bytes: see benchmarks/generate.py for "
          "the GPT-2 124M shape)")
    state["compress_rows"] = rows


SECTIONS = [("3.2.4b", "量化与剪枝 quantization and pruning", section_compress)]
