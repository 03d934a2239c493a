"""Pruning: exact sparsity, and structured pruning's smaller model == the masked model."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

from scratchgpt.autograd import no_grad
from scratchgpt.errors import ConfigError
from scratchgpt.infer.prune import (block_weights, importance, magnitude_masks, magnitude_prune, prune_heads,
                                    prune_neurons, sparsity_of, structured_mask)
from scratchgpt.models import GPT, GPTConfig

CFG = GPTConfig(vocab_size=50, block_size=12, n_layer=2, n_head=4, n_embd=24)


def logits(m, idx):
    with no_grad():
        return m(idx)[0].data.astype(np.float64)


@given(s=st.floats(0.0, 0.99), scope=st.sampled_from(["global", "layer"]), seed=st.integers(0, 1000),
       ties=st.booleans())
def test_magnitude_pruning_hits_the_target_exactly(s, scope, seed, ties):
    m = GPT(CFG, seed=seed)
    if ties:      # many equal magnitudes: a threshold rule would overshoot; ours must not
        for p in block_weights(m).values():
            p.data[...] = np.round(p.data * 100) / 100
    before = {n: p.data.copy() for n, p in block_weights(m).items()}
    masks = magnitude_prune(m, s, scope)
    sizes = {n: p.size for n, p in before.items()}
    total = sum(sizes.values())
    # zeros that were already there count as pruned only if the mask dropped them
    dropped = sum(int((~mk).sum()) for mk in masks.values())
    if scope == "global":
        assert dropped == round(s * total)
    else:
        for n, mk in masks.items():
            assert int((~mk).sum()) == round(s * sizes[n])
    for n, p in block_weights(m).items():
        np.testing.assert_array_equal(p.data, np.where(masks[n], before[n], 0.0))
        # what is dropped is never larger in magnitude than what is kept (per scope)
        if scope == "layer" and (~masks[n]).any() and masks[n].any():
            assert np.abs(before[n][~masks[n]]).max() <= np.abs(before[n][masks[n]]).min()
    if not ties:                     # (layer scope rounds per matrix)
        assert sparsity_of(m) == dropped / total


def test_global_scope_prunes_unevenly():
    m = GPT(CFG, seed=0)
    m.transformer.h[0].mlp.c_fc.weight.data *= 10          # this matrix holds the big weights
    masks = magnitude_masks(m, 0.5, "global")
    frac = {n: float((~mk).mean()) for n, mk in masks.items()}
    big = frac.pop("transformer.h.0.mlp.c_fc.weight")
    assert big < 0.05 and min(frac.values()) > 0.4 and max(frac.values()) > 0.5


@pytest.mark.parametrize("calib,smear", [(False, False), (True, False), (True, True)])
@pytest.mark.parametrize("what,fn", [("heads", prune_heads), ("neurons", prune_neurons)])
def test_structured_smaller_model_equals_masked_model(what, fn, calib, smear):
    m = GPT(CFG.replace(smear=smear), seed=5)
    rng = np.random.default_rng(1)
    for p in m.parameters():        # non-trivial biases and LayerNorms, so a wrong slice shows
        p.data += rng.standard_normal(p.data.shape).astype(np.float32) * 0.05
    idx = rng.integers(0, CFG.vocab_size, (2, CFG.block_size))
    small, kept = fn(m, 0.5, idx if calib else None)
    if what == "heads":
        assert small.config.n_head == 2 and small.config.head_size == CFG.head_size
        assert small.config.attn_dim == 12 and kept.shape == (2, 2)
    else:
        assert small.config.mlp_dim == 48 and kept.shape == (2, 48)
    assert small.num_parameters() < m.num_parameters()
    want = logits(structured_mask(m, what, kept), idx)
    got = logits(small, idx)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    # and masking really changed the function (the test would pass vacuously otherwise)
    assert np.abs(want - logits(m, idx)).max() > 1e-3


def test_structured_keeps_the_most_important():
    m = GPT(CFG, seed=2)
    m.transformer.h[1].attn.c_proj.weight.data[0:6] *= 20     # head 0 of layer 1 writes loudly
    heads, _ = importance(m)
    assert heads[1].argmax() == 0
    _, kept = prune_heads(m, 0.75)                            # keep 1 of 4
    assert kept[1].tolist() == [0]


def test_pruned_model_saves_and_loads(tmp_path):
    m = GPT(CFG, seed=0)
    small, _ = prune_neurons(m, 0.25)
    small, _ = prune_heads(small, 0.5)
    small.save(tmp_path)
    back = GPT.load(tmp_path)
    assert back.config == small.config
    idx = np.arange(10).reshape(1, 10)
    np.testing.assert_array_equal(logits(back, idx), logits(small, idx))


def test_bad_sparsity():
    m = GPT(CFG, seed=0)
    for bad in (-0.1, 1.0, "0.5", True):
        with pytest.raises(ConfigError):
            magnitude_masks(m, bad)
    with pytest.raises(ConfigError, match="every attention head"):
        prune_heads(m, 0.9)


def test_engine_runs_pruned_models():
    """A head- and neuron-pruned model (head_dim != n_embd / n_head, n_inner != 4 n_embd) decodes
    in the engine exactly as a full recomputation."""
    from scratchgpt.infer import Engine, GenerationRequest, SamplingParams
    from tests.infer_helpers import recompute_greedy, tiny_gpt
    m = tiny_gpt(seed=2, vocab=40, block=12, n_layer=2, n_head=4, n_embd=16)
    small, _ = prune_heads(m, 0.5)
    small, _ = prune_neurons(small, 0.25)
    assert small.config.attn_dim == 8 and small.config.mlp_dim == 48
    eng = Engine(small, None, max_batch_size=1, return_logits=True)
    eng.add(GenerationRequest([3, 1, 4], SamplingParams(max_new_tokens=8, ignore_eos=True)))
    toks, lg = [], []
    while eng.has_work():
        for o in eng.step():
            toks.append(o.token_id)
            lg.append(o.logits)
    ref_toks, ref_lg = recompute_greedy(small, [3, 1, 4], 8)
    assert toks == ref_toks
    np.testing.assert_allclose(np.array(lg), ref_lg, atol=1e-5, rtol=1e-5)
