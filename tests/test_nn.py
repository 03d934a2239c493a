"""Module machinery: parameter registration and names, state dicts, train/eval, init, configs."""
import numpy as np
import pytest

from scratchgpt.autograd import Tensor
from scratchgpt.errors import CheckpointError, ConfigError
from scratchgpt.models import GPT, GPTConfig, Seq2SeqConfig
from scratchgpt.nn import (Dropout, Embedding, LayerNorm, Linear, Module, ModuleList, Parameter)

TINY = GPTConfig(vocab_size=37, block_size=8, n_layer=2, n_head=2, n_embd=16)


def gpt2_names(n_layer):
    names = ["transformer.wte.weight", "transformer.wpe.weight"]
    for i in range(n_layer):
        p = f"transformer.h.{i}."
        for sub in ("ln_1", "attn.c_attn", "attn.c_proj", "ln_2", "mlp.c_fc", "mlp.c_proj"):
            names += [p + sub + ".weight", p + sub + ".bias"]
    return names + ["transformer.ln_f.weight", "transformer.ln_f.bias"]


def test_parameter_is_a_leaf_that_requires_grad():
    p = Parameter(np.ones((2, 3), np.float32))
    assert isinstance(p, Tensor) and p.requires_grad and p.is_leaf
    assert p.dtype == np.float32


def test_registration_order_and_shared_parameter_listed_once():
    class Two(Module):
        def __init__(self):
            super().__init__()
            self.a = Linear(3, 4, rng=0)
            self.scale = Parameter(np.ones(1))
            self.b = Linear(4, 2, bias=False, rng=1)
            self.tied = self.a          # the same module reached twice

    m = Two()
    assert [n for n, _ in m.named_parameters()] == ["scale", "a.weight", "a.bias", "b.weight"]
    assert len(m.parameters()) == 4
    m.b = Linear(4, 2, rng=2)  # replacing a sub-module replaces its parameters
    assert [n for n, _ in m.named_parameters()][-2:] == ["b.weight", "b.bias"]


def test_gpt_parameter_names_match_gpt2():
    model = GPT(TINY)
    names = [n for n, _ in model.named_parameters()]
    assert names == gpt2_names(TINY.n_layer)
    shapes = dict((n, p.shape) for n, p in model.named_parameters())
    C, V = TINY.n_embd, TINY.vocab_size
    assert shapes["transformer.wte.weight"] == (V, C)
    assert shapes["transformer.h.1.attn.c_attn.weight"] == (C, 3 * C)   # Conv1D layout (in, out)
    assert shapes["transformer.h.1.mlp.c_proj.weight"] == (4 * C, C)
    # lm_head is tied: the parameter count is GPT-2's formula without a separate output matrix
    L = TINY.n_layer
    expected = V * C + TINY.block_size * C + L * (12 * C * C + 13 * C) + 2 * C
    assert model.num_parameters() == expected


def test_modulelist_indexing():
    ml = ModuleList([Linear(2, 2, rng=0), Linear(2, 3, rng=0)])
    assert len(ml) == 2 and ml[1].out_features == 3 and ml[-1] is ml[1]
    assert [n for n, _ in ml.named_parameters()] == ["0.weight", "0.bias", "1.weight", "1.bias"]
    with pytest.raises(TypeError):
        ml.append("not a module")


def test_state_dict_roundtrip_and_copies():
    a, b = GPT(TINY, seed=0), GPT(TINY, seed=1)
    sd = a.state_dict()
    assert list(sd) == gpt2_names(TINY.n_layer)
    sd["transformer.wte.weight"][0, 0] += 1.0          # a snapshot, not a view of the model
    assert a.transformer.wte.weight.data[0, 0] != sd["transformer.wte.weight"][0, 0]
    sd = a.state_dict()
    ref_b = b.transformer.wte.weight                    # optimizers hold Parameter objects
    b.load_state_dict(sd)
    assert b.transformer.wte.weight is ref_b
    for (n, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters()):
        assert np.array_equal(pa.data, pb.data), n


def test_load_state_dict_errors_name_the_tensor():
    model = GPT(TINY)
    sd = model.state_dict()
    bad = dict(sd)
    bad["transformer.h.0.mlp.c_fc.weight"] = np.zeros((3, 3), np.float32)
    with pytest.raises(CheckpointError, match=r"transformer\.h\.0\.mlp\.c_fc\.weight.*\(16, 64\).*\(3, 3\)"):
        model.load_state_dict(bad)
    missing = dict(sd)
    del missing["transformer.ln_f.bias"]
    with pytest.raises(CheckpointError, match=r"missing tensor 'transformer\.ln_f\.bias'"):
        model.load_state_dict(missing)
    extra = dict(sd, **{"lm_head.weight": sd["transformer.wte.weight"]})
    with pytest.raises(CheckpointError, match=r"unexpected tensor 'lm_head\.weight'"):
        model.load_state_dict(extra)
    report = model.load_state_dict(missing, strict=False)
    assert report["missing"] == ["transformer.ln_f.bias"]


def test_seeded_init_is_reproducible_and_gpt2_scaled():
    cfg = GPTConfig(vocab_size=50, block_size=16, n_layer=4, n_head=4, n_embd=64)
    a, b, c = GPT(cfg, seed=0), GPT(cfg, seed=0), GPT(cfg, seed=1)
    for (n, pa), (_, pb), (_, pc) in zip(a.named_parameters(), b.named_parameters(), c.named_parameters()):
        assert np.array_equal(pa.data, pb.data), n
        if n.endswith("weight") and "ln" not in n:
            assert not np.array_equal(pa.data, pc.data), n
    p = dict(a.named_parameters())
    # std estimates from 4096..16384 draws: within 5% of the GPT-2 values
    assert abs(p["transformer.h.0.attn.c_attn.weight"].data.std() / 0.02 - 1) < 0.05
    resid = 0.02 / np.sqrt(2 * cfg.n_layer)
    assert abs(p["transformer.h.3.mlp.c_proj.weight"].data.std() / resid - 1) < 0.05
    assert abs(p["transformer.h.3.attn.c_proj.weight"].data.std() / resid - 1) < 0.05
    assert np.all(p["transformer.h.0.ln_1.weight"].data == 1) and np.all(p["transformer.h.0.attn.c_attn.bias"].data == 0)


def test_layers_compute_their_formulas(rng):
    x = rng.standard_normal((2, 3, 4)).astype(np.float32)
    lin = Linear(4, 5, rng=0)
    lin.bias.data[:] = rng.standard_normal(5)
    np.testing.assert_allclose(lin(Tensor(x)).data, x @ lin.weight.data + lin.bias.data, rtol=1e-5, atol=1e-6)
    ln = LayerNorm(4)
    ln.weight.data[:] = [1, 2, 3, 4]
    mu, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    np.testing.assert_allclose(ln(Tensor(x)).data, (x - mu) / np.sqrt(var + 1e-5) * ln.weight.data,
                               rtol=1e-4, atol=1e-5)
    emb = Embedding(10, 4, rng=0)
    idx = np.array([[1, 9], [0, 1]])
    assert np.array_equal(emb(idx).data, emb.weight.data[idx])


def test_dropout_train_eval_toggle():
    x = Tensor(np.ones((64, 64), np.float32))
    d = Dropout(0.5, rng=0)
    y = d(x).data
    assert set(np.unique(y)) <= {0.0, 2.0} and 0.4 < (y == 0).mean() < 0.6   # inverted scaling
    d.eval()
    assert np.array_equal(d(x).data, x.data)


def test_gpt_train_eval_controls_dropout():
    cfg = TINY.replace(dropout=0.3)
    model = GPT(cfg, seed=0)
    plain = GPT(TINY, seed=0)   # same weights (dropout draws nothing at init), no dropout
    idx = np.arange(16).reshape(2, 8) % cfg.vocab_size
    assert model.training
    l1, l2 = model(idx)[0].data, model(idx)[0].data
    assert not np.allclose(l1, l2)                    # fresh masks each call
    model.eval()
    assert not any(m.training for m in model.modules())
    e1, e2 = model(idx)[0].data, model(idx)[0].data
    assert np.array_equal(e1, e2)
    np.testing.assert_array_equal(e1, plain.eval()(idx)[0].data)
    model.train()
    assert all(m.training for m in model.modules())


@pytest.mark.parametrize("kwargs, match", [
    (dict(n_embd=10, n_head=3), "divisible"),
    (dict(n_layer=0), "n_layer must be >= 1"),
    (dict(vocab_size=3.5), "vocab_size must be an int"),
    (dict(dropout=1.0), "dropout"),
    (dict(bias="yes"), "bias must be a bool"),
    (dict(layer_norm_eps=0.0), "layer_norm_eps"),
])
def test_config_validation(kwargs, match):
    base = dict(vocab_size=10, block_size=4, n_layer=1, n_head=2, n_embd=8)
    with pytest.raises(ConfigError, match=match):
        GPTConfig(**{**base, **kwargs})


def test_config_is_frozen_and_roundtrips():
    with pytest.raises(Exception):
        TINY.n_layer = 3
    assert GPTConfig.from_dict(TINY.to_dict()) == TINY
    with pytest.raises(ConfigError, match="n_layers"):
        GPTConfig.from_dict({**TINY.to_dict(), "n_layers": 2})
    s = Seq2SeqConfig(vocab_size=12, block_size=8, n_encoder_layer=1, n_decoder_layer=1, n_head=2, n_embd=8)
    assert Seq2SeqConfig.from_dict(s.to_dict()) == s
    with pytest.raises(ConfigError, match="n_decoder_layer"):
        Seq2SeqConfig(vocab_size=12, block_size=8, n_encoder_layer=1, n_decoder_layer=0, n_head=2, n_embd=8)


def test_gpt_without_biases(tmp_path):
    model = GPT(TINY.replace(bias=False), seed=0)
    names = [n for n, _ in model.named_parameters()]
    assert not any(n.endswith(".bias") for n in names)
    assert len(names) == 2 + TINY.n_layer * 6 + 1
    idx = np.arange(16).reshape(2, 8) % TINY.vocab_size
    _, loss = model(idx, idx)
    loss.backward()
    assert all(p.grad is not None and p.grad.shape == p.shape for p in model.parameters())
    model.save(tmp_path)
    again = GPT.load(tmp_path)
    assert np.array_equal(again(idx)[0].data, model(idx)[0].data)
