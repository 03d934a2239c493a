"""Inference: the KV-cache generation engine every caller shares (CLI, evaluation, server).

    model, tok = load_for_inference(model_dir)        # GPT / SFT / PEFT (LoRA merged) / quantized
    engine = Engine(model, tok, max_batch_size=8)    # KV cache for 8 sequences (kv_cache.py)
    rid = engine.add(GenerationRequest(prompt_ids, SamplingParams(max_new_tokens=64)))
    outs = engine.step()          # [StepOutput(id, token_id, text, finished, finish_reason, ...)]
    engine.cancel(rid)            # frees the slot at once
    engine.generate(ids, params) -> Completion;  engine.stream(ids, params) -> text pieces
    engine.outputs(ids, params)   # StepOutputs of one request (closing it early cancels)

Beyond the agreed interface: ``SamplingParams(max_new_tokens=None)`` = as many as fit;
``Engine(return_logits=True)`` puts each step's logits in ``StepOutput.logits``;
``Engine(max_prefill_rows=N, prefill_chunk=C)``: prompts prefill in C-row chunks, at most N rows
a step, first come first served (engine.py's module doc);
``engine.stats`` (prefill/decode tokens and seconds). A request fits when
prompt + max_new_tokens - 1 <= block_size (the last token is never fed back).
Files: engine.py (scheduling, sampling, stops), forward.py (one forward over a step's rows),
kv_cache.py, linear.py (the linear protocol), weights.py (DecoderWeights), detok.py (streaming
text), chat_prompt.py (context window for chats), load.py, params.py.
"""
from .engine import Engine, EngineStats, end_token_ids
from .load import load_for_inference
from .params import (Completion, ContextLengthError, EngineFull, GenerationRequest, SamplingParams,
                     StepOutput)
from .weights import DecoderWeights, decoder_weights

__all__ = ["Engine", "EngineStats", "SamplingParams", "GenerationRequest", "StepOutput", "Completion",
           "load_for_inference", "EngineFull", "ContextLengthError", "DecoderWeights", "decoder_weights",
           "end_token_ids"]
