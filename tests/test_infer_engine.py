"""Engine: KV-cache greedy decoding == full recomputation, token for token and logits per step."""
import numpy as np
import pytest

from scratchgpt.infer import (ContextLengthError, Engine, EngineFull, GenerationRequest, SamplingParams,
                              decoder_weights)
from tests.infer_helpers import forward_logits, recompute_greedy, tiny_gpt

# Logits of the cached path vs the full forward: both float32, different summation orders
# (decode kernels vs BLAS, float64 vs float32 softmax sums); the scaled random weights give
# logits of magnitude ~1-10 (measured max |diff| 5e-7 at |logit| 2.5), so a few float32 ulps.
LOGITS = dict(atol=1e-5, rtol=1e-5)


def engine_greedy(model, prompt, n, **kw):
    eng = Engine(model, None, max_batch_size=1, return_logits=True, **kw)
    rid = eng.add(GenerationRequest(prompt, SamplingParams(max_new_tokens=n, ignore_eos=True)))
    toks, logits = [], []
    while eng.has_work():
        for o in eng.step():
            assert o.id == rid
            toks.append(o.token_id)
            logits.append(o.logits)
    return toks, np.array(logits)


@pytest.mark.parametrize("cfg", [dict(seed=0), dict(seed=3, n_head=4, n_embd=8, bias=False, n_layer=3),
                                 dict(seed=5, smear=True)])
def test_kv_cache_equals_recompute_every_prompt_length(cfg):
    model = tiny_gpt(**cfg)
    block = model.config.block_size
    rng = np.random.default_rng(cfg["seed"])
    for P in range(1, block + 1):
        prompt = rng.integers(0, model.config.vocab_size, P).tolist()
        n = block - P + 1                          # up to the context limit: the last token is never fed
        toks, logits = engine_greedy(model, prompt, n)
        ref_toks, ref_logits = recompute_greedy(model, prompt, n)
        assert toks == ref_toks, f"prompt length {P}"
        np.testing.assert_allclose(logits, ref_logits, **LOGITS)


def test_context_limit_is_enforced():
    model = tiny_gpt()
    block = model.config.block_size
    eng = Engine(model, None, max_batch_size=1)
    with pytest.raises(ContextLengthError) as e:
        eng.add(GenerationRequest([1] * 5, SamplingParams(max_new_tokens=block - 3)))
    assert e.value.prompt_len == 5 and e.value.block_size == block
    with pytest.raises(ContextLengthError):
        eng.add(GenerationRequest([1] * (block + 1), SamplingParams(max_new_tokens=None)))
    # max_new_tokens=None: exactly as many tokens as fit
    c = eng.generate([1] * 5, SamplingParams(max_new_tokens=None, ignore_eos=True))
    assert c.completion_tokens == block - 5 + 1 and c.finish_reason == "length"


def test_engine_full_and_cancel_frees_the_slot():
    model = tiny_gpt()
    eng = Engine(model, None, max_batch_size=2)
    p = SamplingParams(max_new_tokens=5, ignore_eos=True)
    a = eng.add(GenerationRequest([1, 2], p))
    eng.add(GenerationRequest([3], p))
    assert eng.num_free_slots == 0
    with pytest.raises(EngineFull):
        eng.add(GenerationRequest([4], p))
    eng.step()
    assert eng.cancel(a) and eng.num_free_slots == 1 and eng.num_running == 1
    assert all(o.id != a for o in eng.step())              # no further outputs for it
    c = eng.add(GenerationRequest([4], p))                 # the freed slot is usable again
    assert c in {o.id for o in eng.step()}


def _random_peft(model, method, seed=0):
    from scratchgpt.nn.peft import apply_peft
    apply_peft(model, method, rank=2, adapter_size=3, prefix_len=3, seed=seed)
    rng = np.random.default_rng(seed)
    for name, p in model.named_parameters():
        if any(k in name for k in ("lora_B", "adapter.up", "prefix_")):
            p.data = (rng.standard_normal(p.data.shape) * 0.5).astype(np.float32)
    model.eval()
    return model


@pytest.mark.parametrize("method", ["lora", "adapter", "prefix"])
def test_peft_models_run_in_the_engine(method):
    model = _random_peft(tiny_gpt(seed=5), method)
    prompt = [3, 1, 4, 1, 5]
    n = model.config.block_size - len(prompt) + 1
    toks, logits = engine_greedy(model, prompt, n)
    ref_toks, ref_logits = recompute_greedy(model, prompt, n)
    assert toks == ref_toks
    np.testing.assert_allclose(logits, ref_logits, **LOGITS)


def test_merged_lora_weights_equal_unmerged():
    from scratchgpt.nn.peft import merge_lora
    model = _random_peft(tiny_gpt(seed=2), "lora")
    w1 = decoder_weights(model).linears["transformer.h.0.attn.c_attn"].wt.copy()
    merge_lora(model)
    w2 = decoder_weights(model).linears["transformer.h.0.attn.c_attn"].wt
    np.testing.assert_allclose(w1, w2, atol=1e-6)


def test_prefill_logits_match_a_full_forward():
    # prefill is one forward over the prompt: the last row's logits equal the full forward's
    model = tiny_gpt(seed=7)
    prompt = list(range(10))
    _, logits = engine_greedy(model, prompt, 1)
    np.testing.assert_allclose(logits[0], forward_logits(model, prompt)[-1], **LOGITS)


def test_load_for_inference_merges_a_saved_lora(tmp_path):
    import json

    from scratchgpt.infer import load_for_inference
    from scratchgpt.nn.peft import save_peft
    from tests.test_infer_text import TOK
    base = tiny_gpt(seed=4, vocab=TOK.vocab_size, block=16)
    base.save(tmp_path / "base")
    TOK.save(tmp_path / "base" / "tokenizer.json")
    model = _random_peft(tiny_gpt(seed=4, vocab=TOK.vocab_size, block=16), "lora")
    d = save_peft(model, tmp_path / "peft")
    info = json.loads((d / "peft.json").read_text())
    info["base_dir"] = str(tmp_path / "base")
    (d / "peft.json").write_text(json.dumps(info))
    loaded, tok = load_for_inference(d)
    assert tok.vocab_size == TOK.vocab_size and not loaded.training
    prompt = [1, 2, 3]
    toks, logits = engine_greedy(loaded, prompt, 10)
    ref_toks, ref_logits = recompute_greedy(model, prompt, 10)      # the unmerged LoRA model
    assert toks == ref_toks
    np.testing.assert_allclose(logits, ref_logits, **LOGITS)
