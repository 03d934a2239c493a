"""LoRA, Adapters and Prefix-tuning: identities at init, merge/unmerge, frozen base, save/load, gradients."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from scratchgpt.autograd import Tensor, gradcheck, no_grad
from scratchgpt.errors import CheckpointError, ConfigError
from scratchgpt.models import GPT, GPTConfig
from scratchgpt.nn import Linear
from scratchgpt.nn.peft import (Adapter, LoRALinear, apply_peft, count_parameters, load_peft, merge_lora,
                                peft_state_dict, prefix_attention, remove_peft, save_peft, unmerge_lora)
from scratchgpt import ops

CFG = GPTConfig(vocab_size=37, block_size=12, n_layer=2, n_head=2, n_embd=16)


def logits(model, idx):
    with no_grad():
        return model(idx)[0].data.copy()


def idx(seed=0, B=2, T=9):
    return np.random.default_rng(seed).integers(0, CFG.vocab_size, (B, T))


def perturb_peft(model, seed=1, scale=0.1):
    """Give the PEFT parameters non-zero values (as training would)."""
    rng = np.random.default_rng(seed)
    for n, p in model.named_parameters():
        if p.requires_grad:
            p.data = (p.data + scale * rng.standard_normal(p.data.shape)).astype(p.data.dtype)


@pytest.mark.parametrize("method", ["lora", "adapter"])
def test_peft_starts_as_the_base_model(method):
    m = GPT(CFG, seed=0)
    base = logits(m, idx())
    apply_peft(m, method, rank=4, adapter_size=8)
    assert np.array_equal(logits(m, idx()), base)  # B = 0 / up = 0: exactly the identity


def test_base_names_unchanged_and_only_peft_trains():
    m = GPT(CFG, seed=0)
    names = [n for n, _ in m.named_parameters()]
    apply_peft(m, "lora", rank=2, targets=("c_attn", "c_fc"))
    new_names = [n for n, _ in m.named_parameters()]
    assert [n for n in new_names if n in names] == names
    trainable = {n for n, p in m.named_parameters() if p.requires_grad}
    assert trainable == {n for n in new_names if "lora_" in n} and len(trainable) == 2 * 2 * CFG.n_layer
    c = count_parameters(m)
    assert c["trainable"] == sum(p.data.size for n, p in m.named_parameters() if "lora_" in n)
    with pytest.raises(ConfigError, match="match no Linear"):
        apply_peft(GPT(CFG, seed=0), "lora", targets=("q_proj",))


def test_lora_merge_equals_unmerged_and_unmerge_is_exact():
    m = GPT(CFG, seed=0)
    w0 = {n: p.data.copy() for n, p in m.named_parameters()}
    apply_peft(m, "lora", rank=4, alpha=8.0)
    perturb_peft(m)
    unmerged = logits(m, idx())
    assert merge_lora(m) == 4 * CFG.n_layer  # c_attn, attn.c_proj, c_fc, mlp.c_proj
    merged = logits(m, idx())
    np.testing.assert_allclose(merged, unmerged, atol=2e-5, rtol=2e-5)
    assert not np.array_equal(m.transformer.h[0].attn.c_attn.weight.data, w0["transformer.h.0.attn.c_attn.weight"])
    unmerge_lora(m)
    assert np.array_equal(logits(m, idx()), unmerged)
    remove_peft(m)
    for n, p in m.named_parameters():
        assert np.array_equal(p.data, w0[n]), n


def test_prefix_with_no_prefix_equals_fused_attention():
    rng = np.random.default_rng(0)
    B, T, NH, HS = 2, 7, 2, 4
    qkv = Tensor(rng.standard_normal((B, T, 3 * NH * HS)).astype(np.float32))
    empty = Tensor(np.zeros((NH, 0, HS), np.float32))
    ours = prefix_attention(qkv, empty, empty, NH).data
    fused = ops.causal_self_attention(qkv, NH).data
    np.testing.assert_allclose(ours, fused, atol=1e-6, rtol=1e-5)


def test_prefix_tuning_changes_output_and_removal_restores_base():
    m = GPT(CFG, seed=0)
    base = logits(m, idx())
    apply_peft(m, "prefix", prefix_len=3)
    with_prefix = logits(m, idx())
    assert not np.allclose(with_prefix, base, atol=1e-4)  # the prefix slots are attended to
    remove_peft(m)
    assert np.array_equal(logits(m, idx()), base)


def test_prefix_queries_cannot_see_the_future():
    """Changing a later token must not change earlier outputs, with a prefix present."""
    m = GPT(CFG, seed=0)
    apply_peft(m, "prefix", prefix_len=2)
    a, b = idx(), idx()
    b[:, -1] = (b[:, -1] + 1) % CFG.vocab_size
    np.testing.assert_array_equal(logits(m, a)[:, :-1], logits(m, b)[:, :-1])


@pytest.mark.parametrize("method", ["lora", "adapter", "prefix"])
def test_training_moves_only_peft_parameters(tmp_path, method):
    from scratchgpt.data.batches import PretrainBatches
    from scratchgpt.train.eval_batches import fixed_windows
    from scratchgpt.train.config import TrainConfig
    from scratchgpt.train.trainer import Trainer
    m = GPT(CFG, seed=0)
    base = {n: p.data.copy() for n, p in m.named_parameters()}
    apply_peft(m, method, rank=2, adapter_size=4, prefix_len=2, dropout=0.1)
    start = peft_state_dict(m)
    toks = (np.arange(600) * 5 % CFG.vocab_size).astype(np.uint16)
    cfg = TrainConfig(lr=1e-2, warmup_steps=0, max_steps=4, batch_size=2, seq_len=8, eval_every=4,
                      eval_batches=1, weight_decay=0.1, dropout=0.1, progress=False)
    Trainer(m, cfg, PretrainBatches(toks, 2, 8, seed=0), fixed_windows(toks, 2, 8, 1), tmp_path,
            log=lambda s: None).fit()
    for n, p in m.named_parameters():
        if n in base:
            assert np.array_equal(p.data, base[n]), f"frozen base weight {n} changed"
    moved = [n for n, v in peft_state_dict(m).items() if not np.array_equal(v, start[n])]
    assert moved, "no PEFT parameter was updated"


@pytest.mark.parametrize("method", ["lora", "adapter", "prefix"])
def test_peft_save_load_roundtrip(tmp_path, method):
    m = GPT(CFG, seed=0)
    apply_peft(m, method, rank=3, adapter_size=5, prefix_len=2)
    perturb_peft(m)
    want = logits(m, idx())
    save_peft(m, tmp_path / "peft")
    fresh = GPT(CFG, seed=0)
    load_peft(fresh, tmp_path / "peft")
    assert np.array_equal(logits(fresh, idx()), want)
    other = GPT(GPTConfig(vocab_size=37, block_size=12, n_layer=1, n_head=2, n_embd=16), seed=0)
    with pytest.raises(CheckpointError, match="base model"):
        load_peft(other, tmp_path / "peft")
    with pytest.raises(CheckpointError, match="peft.json"):
        load_peft(GPT(CFG, seed=0), tmp_path)


# ----------------------------------------------------------------------------- gradient checks
def _set(mod, name, t):
    object.__setattr__(mod, name, t)  # let gradcheck's float64 tensors stand in for the parameters


@given(st.integers(1, 3), st.integers(1, 4), st.integers(0, 10_000))
def test_lora_gradcheck(rank, n, seed):
    rng = np.random.default_rng(seed)
    lin = Linear(3, 5, rng=rng, dtype=np.float64)
    lora = LoRALinear(lin, rank=rank, alpha=2.0, rng=rng)

    def f(x, W, b, A, B):
        for k, v in (("weight", W), ("bias", b), ("lora_A", A), ("lora_B", B)):
            _set(lora, k, v)
        return lora(x)
    gradcheck(f, [rng.standard_normal((n, 3)), rng.standard_normal((3, 5)), rng.standard_normal(5),
                  rng.standard_normal((3, rank)), rng.standard_normal((rank, 5))], atol=1e-6, rtol=1e-5)


@given(st.integers(1, 4), st.integers(0, 10_000))
def test_adapter_gradcheck(size, seed):
    rng = np.random.default_rng(seed)
    ad = Adapter(4, size, rng=rng, dtype=np.float64)

    def f(h, Wd, bd, Wu, bu):
        _set(ad.down, "weight", Wd); _set(ad.down, "bias", bd)
        _set(ad.up, "weight", Wu); _set(ad.up, "bias", bu)
        return ad(h)
    gradcheck(f, [rng.standard_normal((2, 3, 4)), rng.standard_normal((4, size)), rng.standard_normal(size),
                  rng.standard_normal((size, 4)), rng.standard_normal(4)], atol=1e-6, rtol=1e-5)


@given(st.integers(0, 3), st.integers(1, 5), st.integers(0, 10_000))
def test_prefix_attention_gradcheck(P, T, seed):
    rng = np.random.default_rng(seed)
    NH, HS, B = 2, 3, 2
    gradcheck(lambda qkv, pk, pv: prefix_attention(qkv, pk, pv, NH),
              [rng.standard_normal((B, T, 3 * NH * HS)), rng.standard_normal((NH, P, HS)),
               rng.standard_normal((NH, P, HS))], atol=1e-6, rtol=1e-5)
