"""Two AdamW steps of a tiny GPT on the (simulated) GPU equal the CPU path: losses, weights, and the
optimizer state saved from the GPU (its own module so pytest-xdist runs it beside test_cuda_gpt.py)."""
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


def test_sgd_steps_on_the_gpu_equal_cpu():
    """SGD (momentum, Nesterov, dampening, L2 decay) on GPU arrays: the same float32 steps as on
    the CPU, the momentum buffer kept on the device."""
    from cuda_sim import dev
    from scratchgpt.autograd import Tensor
    from scratchgpt.optim import SGD
    from scratchgpt.backend import is_device_array
    rng = np.random.default_rng(3)
    w0 = rng.standard_normal((3, 5)).astype(np.float32)
    grads = [rng.standard_normal((3, 5)).astype(np.float32) for _ in range(3)]
    for kw in ({"momentum": 0.9, "nesterov": True, "weight_decay": 0.1}, {"momentum": 0.5, "dampening": 0.3},
               {"weight_decay": 0.01}):
        out = {}
        for device in ("cpu", "cuda"):
            p = Tensor(w0.copy() if device == "cpu" else dev(w0), requires_grad=True)
            opt = SGD([p], lr=0.1, **kw)
            for g in grads:
                p.grad = g.copy() if device == "cpu" else dev(g)
                opt.step()
            buf = opt.state[id(p)].get("momentum_buffer") if opt.state else None
            if device == "cuda" and buf is not None:
                assert is_device_array(buf)
            out[device] = host(p.data), None if buf is None else host(buf)
        np.testing.assert_allclose(out["cuda"][0], out["cpu"][0], rtol=1e-6, atol=1e-7, err_msg=str(kw))
        assert not np.allclose(out["cpu"][0], w0)
        assert (out["cpu"][1] is not None) == ("momentum" in kw)
        if out["cpu"][1] is not None:
            np.testing.assert_allclose(out["cuda"][1], out["cpu"][1], rtol=1e-6, atol=1e-7)
