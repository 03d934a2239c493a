"""smear (previous-token gate): NumPy fast path vs float64 ref, gradients, causality, GPT option."""
import json

import numpy as np
import pytest
from hypothesis import given, strategies as st

from scratchgpt.autograd import gradcheck
from scratchgpt.ops import smear
from scratchgpt.ops.smear_op import smear_backward, smear_backward_ref, smear_forward, smear_forward_ref

GC = dict(atol=1e-7, rtol=1e-6)
F32 = dict(atol=1e-5, rtol=1e-5)


@given(shape=st.sampled_from([(1, 1, 3), (2, 3, 4), (1, 5, 2)]), seed=st.integers(0, 2**31 - 1),
       spread=st.sampled_from([0.5, 2.0]))
def test_gradcheck(shape, seed, spread):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape) * spread
    w = rng.standard_normal(shape[-1])
    b = rng.standard_normal(1)
    gradcheck(smear, [x, w, b], **GC)


@given(B=st.integers(1, 3), T=st.integers(1, 9), C=st.integers(1, 8), seed=st.integers(0, 2**31 - 1))
def test_fast_matches_ref_float32(B, T, C, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((B, T, C)).astype(np.float32)
    w = rng.standard_normal(C).astype(np.float32)
    b = rng.standard_normal(1).astype(np.float32)
    y, cache = smear_forward(x, w, b)
    yr, cr = smear_forward_ref(x, w, b)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, yr, **F32)
    g = rng.standard_normal((B, T, C)).astype(np.float32)
    for got, ref in zip(smear_backward(g, cache), smear_backward_ref(g, cr)):
        np.testing.assert_allclose(got, ref, **F32)


def test_hand_example_and_causality():
    # gate weight 0, bias 0: a = 1/2, y[t] = x[t] + x[t-1] / 2
    x = np.array([[[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]])
    y, _ = smear_forward(x, np.zeros(2), np.zeros(1))
    np.testing.assert_allclose(y, [[[1, 2], [3.5, 5], [6.5, 8]]])
    # y[t] depends on x[t] and x[t-1] only: changing the last position leaves the others alone
    x2 = x.copy()
    x2[0, 2] = [-7.0, 9.0]
    y2, _ = smear_forward(x2, np.ones(2), np.zeros(1))
    y1, _ = smear_forward(x, np.ones(2), np.zeros(1))
    np.testing.assert_array_equal(y1[0, :2], y2[0, :2])


def test_gpt_with_smear_is_causal_saves_and_is_not_exported_as_gpt2(tmp_path):
    from scratchgpt.models import GPT, GPTConfig
    cfg = GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=8, smear=True)
    m = GPT(cfg, seed=3)
    names = dict(m.named_parameters())
    assert names["transformer.smear.weight"].shape == (8,) and names["transformer.smear.bias"].shape == (1,)
    names["transformer.smear.weight"].data[...] = np.linspace(-1, 1, 8)
    idx = np.array([[1, 2, 3, 4, 5]])
    a, _ = m(idx)
    b, _ = m(np.array([[1, 2, 3, 4, 9]]))
    np.testing.assert_array_equal(a.data[0, :4], b.data[0, :4])
    assert not np.allclose(a.data[0, 4], b.data[0, 4])
    # the gate matters: the same weights without smear give other logits
    plain = GPT(cfg.replace(smear=False), seed=3)
    assert not np.allclose(plain(idx)[0].data, a.data)
    m.save(tmp_path)
    meta = json.loads((tmp_path / "config.json").read_text())
    assert meta["model_type"] != "gpt2" and meta["scratchgpt_config"]["smear"] is True
    m2 = GPT.load(tmp_path)
    np.testing.assert_array_equal(m2(idx)[0].data, a.data)
    # a GPT-2 loader must refuse it rather than drop the gate silently
    from scratchgpt.errors import ConfigError
    from scratchgpt.models.gpt import config_from_hf
    with pytest.raises(ConfigError):
        config_from_hf(meta)
