"""A whole tiny GPT on the (simulated) GPU equals the CPU path: gradients of one step, and the
losses and weights of a few AdamW steps. Only the batch goes in and the loss comes out."""
import numpy as np
import pytest

from cuda_sim import host
from scratchgpt.models import GPT, GPTConfig


def _batch(cfg, seed=0):
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, cfg.vocab_size, (2, 5))
    tgt = rng.integers(0, cfg.vocab_size, (2, 5))
    tgt[0, 1] = -100                                   # an ignored position
    return idx, tgt


@pytest.mark.parametrize("smear", [False, True])
def test_forward_backward_equals_cpu(smear):
    cfg = GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=8, dropout=0.0, smear=smear)
    idx, tgt = _batch(cfg)
    grads = {}
    for device in ("cpu", "cuda"):
        m = GPT(cfg, seed=0, device=device)
        logits, loss = m(idx, tgt)
        loss.backward()
        grads[device] = {n: host(p.grad) for n, p in m.named_parameters()}
        grads[device]["<logits>"] = host(logits.data)
        grads[device]["<loss>"] = host(loss.data)
    for name, g in grads["cpu"].items():
        np.testing.assert_allclose(grads["cuda"][name], g, atol=2e-6, rtol=1e-4, err_msg=name)


def test_chapter4_checks_on_the_gpu():
    from scratchgpt.chapters.ch4 import run_cuda_checks
    rows = run_cuda_checks()
    ran = [r for r in rows if r["cuda"] == "ok"]
    assert len(ran) == len(rows)                      # every §4.2 op has its CUDA kernel, cross-attention too
    assert {r["op"] for r in ran} == {"token_position_embedding", "layernorm", "gelu", "causal_self_attention",
                                      "linear", "cross_entropy", "cross_attention"}
    assert all(r["forward_err_f32"] < 1e-5 and r["backward_err_f32"] < 1e-5 for r in ran), ran


def test_prefix_tuning_on_the_gpu_equals_cpu():
    # the GPU runs prefix attention through the fused causal op (P extra rows, nn/peft.py's
    # prefix_attention_fused); the CPU through matmul/softmax with the prefix mask
    from scratchgpt.nn.peft import apply_peft
    cfg = GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=8, dropout=0.0)
    idx, tgt = _batch(cfg, 2)
    got = {}
    for device in ("cpu", "cuda"):
        m = GPT(cfg, seed=0)
        apply_peft(m, "prefix", prefix_len=3, seed=1)
        m.to(device)
        _, loss = m(idx, tgt)
        loss.backward()
        got[device] = {n: host(p.grad) for n, p in m.named_parameters() if p.requires_grad}
        got[device]["<loss>"] = host(loss.data)
    assert {n for n in got["cpu"] if "prefix" in n} == {"transformer.h.0.attn.prefix_k", "transformer.h.0.attn.prefix_v"}
    for name, g in got["cpu"].items():
        assert np.abs(g).max() > 0, name
        np.testing.assert_allclose(got["cuda"][name], g, atol=2e-6, rtol=1e-4, err_msg=name)


def test_fused_prefix_attention_equals_the_masked_one_in_float64():
    from scratchgpt.autograd import Tensor
    from scratchgpt.nn.peft import prefix_attention, prefix_attention_fused
    rng = np.random.default_rng(0)
    B, T, NH, HS, P = 2, 4, 2, 3, 2
    qkv0 = rng.standard_normal((B, T, 3 * NH * HS))
    pk0, pv0 = rng.standard_normal((NH, P, HS)), rng.standard_normal((NH, P, HS))
    g = rng.standard_normal((B, T, NH * HS))
    res = []
    for fn in (prefix_attention, prefix_attention_fused):
        qkv, pk, pv = (Tensor(a.copy(), requires_grad=True) for a in (qkv0, pk0, pv0))
        y = fn(qkv, pk, pv, NH)
        (y * Tensor(g)).sum().backward()
        res.append([y.data, qkv.grad, pk.grad, pv.grad])
    for a, b in zip(*res):
        np.testing.assert_allclose(b, a, atol=1e-12, rtol=1e-10)
