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
