"""A whole tiny GPT on the (simulated) GPU equals the CPU path: gradients of one step, and the
losses and weights of a few AdamW steps. Only the batch goes in and the loss comes out."""
import numpy as np

from cuda_sim import host
from scratchgpt.models import GPT, GPTConfig
from scratchgpt.optim import AdamW


def _batch(cfg, seed=0):
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, cfg.vocab_size, (2, 5))
    tgt = rng.integers(0, cfg.vocab_size, (2, 5))
    tgt[0, 1] = -100                                   # an ignored position
    return idx, tgt


def test_forward_backward_equals_cpu():
    cfg = GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=16, dropout=0.0)
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


def test_adamw_steps_equal_cpu():
    # bias=False: the key bias gets a gradient that is exactly 0 in exact arithmetic (softmax is
    # shift invariant) and rounding noise in float32; Adam divides that noise by its own size,
    # so the two devices' noise would differ by up to lr — a property of Adam, not of the kernels
    cfg = GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=8, dropout=0.0, bias=False)
    idx, tgt = _batch(cfg, 1)
    runs = {}
    for device in ("cpu", "cuda"):
        m = GPT(cfg, seed=0, device=device)
        opt = AdamW(m.parameters(), lr=1e-2)
        losses = []
        for _ in range(2):
            opt.zero_grad()
            _, loss = m(idx, tgt)
            loss.backward()
            opt.step()
            losses.append(float(host(loss.data)))
        runs[device] = losses, m.state_dict(), opt.state_dict()["arrays"]
    np.testing.assert_allclose(runs["cuda"][0], runs["cpu"][0], rtol=1e-5)
    assert runs["cpu"][0][1] < runs["cpu"][0][0]                          # it trains
    for name, w in runs["cpu"][1].items():
        np.testing.assert_allclose(runs["cuda"][1][name], w, atol=2e-5, rtol=1e-4, err_msg=name)
    assert runs["cuda"][2].keys() == runs["cpu"][2].keys()            # optimizer state saved from the GPU


def test_chapter4_checks_on_the_gpu():
    from scratchgpt.chapters.ch4 import run_cuda_checks
    rows = run_cuda_checks()
    ran = [r for r in rows if r["cuda"] == "ok"]
    assert {r["op"] for r in ran} == {"token_position_embedding", "layernorm", "gelu", "causal_self_attention",
                                      "linear", "cross_entropy"}
    assert all(r["forward_err_f32"] < 1e-5 and r["backward_err_f32"] < 1e-5 for r in ran), ran
    assert all("no CUDA kernel yet" in r["cuda"] for r in rows if r["op"] == "cross_attention")
