"""Chapter 3, section §3.2.4 (模型优化与部署 model optimization and deployment): fast inference.

The tutorial lists quantization, pruning and faster decoding. The first thing that makes
generation fast is not a smaller model but not redoing work: the KV cache. This section times
greedy generation with and without it on the §3.2.2 model (or a fresh one of the same size when
run alone) and shows that both produce the same tokens. Quantization and pruning:
``scratchgpt quantize`` / ``scratchgpt prune`` (chapters/ch3.md).
"""
from __future__ import annotations


def section_deploy(args, state) -> None:
    from ..models import GPT, GPTConfig
    from .inference_speed import batched_throughput, print_kv_table
    print("\n== §3.2.4 模型优化与部署 / optimization and deployment: the KV cache ==")
    if state.get("base_model_dir"):
        from ..train.runs import load_model_dir
        model, _ = load_model_dir(state["base_model_dir"])
        print(f"  model: the §3.2.2 GPT ({model.num_parameters():,} parameters, block {model.config.block_size})")
    else:
        cfg = GPTConfig(vocab_size=512, block_size=96 if args.quick else 128, n_layer=2 if args.quick else 4,
                        n_head=2 if args.quick else 4, n_embd=64 if args.quick else 128, dropout=0.0)
        model = GPT(cfg, seed=0)
        print(f"  model: a fresh GPT of the chapter's size ({model.num_parameters():,} parameters; speed does not "
              "depend on training)")
    block = model.config.block_size
    lens = [8, block // 2] if args.quick else [8, block // 4, block // 2, 3 * block // 4]
    new = 16 if args.quick else 32
    print(f"  greedy generation of {new} tokens, without a cache (GPT.generate: a full forward per token) and "
          "with it (scratchgpt.infer.Engine):")
    state["kv_rows"] = print_kv_table(model, lens, new)
    tps = {b: batched_throughput(model, b, 8, new) for b in (1, 8)}
    print(f"  batching: {tps[1]:.0f} tokens/s for one sequence, {tps[8]:.0f} tokens/s for 8 generated together "
          "(each step reads the weights once for all of them)")


SECTIONS = [("3.2.4", "模型优化与部署 optimization and deployment", section_deploy)]
