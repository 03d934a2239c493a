"""The whole GPT against the float64 NumPy reference (tests/gpt_ref.py): logits, loss and every
parameter gradient — in float64 (tight) and float32 (stated tolerances) — plus a finite-difference
check of the full loss, masking, generation and input validation."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

from gpt_ref import gpt_backward, gpt_forward
from scratchgpt.autograd import numerical_grad
from scratchgpt.errors import DataError
from scratchgpt.models import GPT, GPTConfig

CFG = GPTConfig(vocab_size=37, block_size=8, n_layer=2, n_head=2, n_embd=16)
B, T = 2, 8


def batch(seed=0, t=T):
    r = np.random.default_rng(seed)
    return r.integers(0, CFG.vocab_size, (B, t)), r.integers(0, CFG.vocab_size, (B, t))


def random_model(dtype, seed=0):
    """GPT with all parameters random (LN weights and biases too), so no gradient is trivially 0."""
    model = GPT(CFG, seed=seed).to_dtype(dtype)
    r = np.random.default_rng(seed + 100)
    for name, p in model.named_parameters():
        if name.endswith("ln_1.weight") or name.endswith("ln_2.weight") or name.endswith("ln_f.weight"):
            p.data[...] = 1 + 0.1 * r.standard_normal(p.shape)
        else:
            p.data[...] = 0.1 * r.standard_normal(p.shape)
    return model


def rel_err(a, b):
    """max |a - b| / (1e-6 + max |b|): a relative error that is not fooled by tiny elements."""
    return float(np.abs(a - b).max() / (1e-6 + np.abs(b).max()))


def compare_with_reference(dtype, loss_mask=None):
    model = random_model(dtype)
    idx, tgt = batch()
    logits, loss = model(idx, tgt, loss_mask=loss_mask)
    loss.backward()
    params = {n: p.data.astype(np.float64) for n, p in model.named_parameters()}
    ref_tgt = tgt if loss_mask is None else np.where(loss_mask == 1, tgt, -100)
    ref_logits, ref_loss, cache = gpt_forward(params, idx, ref_tgt, CFG.n_layer, CFG.n_head)
    ref_grads = gpt_backward(cache, CFG.n_layer)
    errs = {"logits": np.abs(logits.data - ref_logits).max(), "loss": abs(float(loss.data) - ref_loss)}
    grad_errs = {n: rel_err(p.grad, ref_grads[n]) for n, p in model.named_parameters()}
    return errs, grad_errs, model, ref_grads


def test_float64_matches_reference_exactly_enough():
    errs, grad_errs, model, ref = compare_with_reference(np.float64)
    worst = max(grad_errs, key=grad_errs.get)
    print(f"\nfloat64 vs reference: logits {errs['logits']:.2e}, loss {errs['loss']:.2e}, "
          f"worst grad rel err {grad_errs[worst]:.2e} ({worst})")
    assert errs["logits"] < 1e-12 and errs["loss"] < 1e-12
    for n, p in model.named_parameters():
        assert p.grad.dtype == np.float64
        np.testing.assert_allclose(p.grad, ref[n], rtol=1e-9, atol=1e-12, err_msg=n)
    assert len(grad_errs) == len(ref)   # every reference gradient was compared


def test_float32_matches_reference_within_float32_tolerances():
    errs, grad_errs, model, ref = compare_with_reference(np.float32)
    worst = max(grad_errs, key=grad_errs.get)
    print(f"\nfloat32 vs float64 reference: logits {errs['logits']:.2e}, loss {errs['loss']:.2e}, "
          f"worst grad rel err {grad_errs[worst]:.2e} ({worst})")
    # float32 epsilon is 1.2e-7; a 2-layer net with a 37-way softmax accumulates ~10 ulps
    assert errs["logits"] < 2e-6 and errs["loss"] < 1e-6
    for n, p in model.named_parameters():
        assert p.grad.dtype == np.float32
        np.testing.assert_allclose(p.grad, ref[n], rtol=1e-4, atol=1e-5 * np.abs(ref[n]).max(), err_msg=n)


def test_loss_mask_matches_reference_with_ignored_targets():
    mask = np.ones((B, T), np.int64)
    mask[0, :5] = 0
    mask[1, 2] = 0
    errs, grad_errs, model, ref = compare_with_reference(np.float64, loss_mask=mask)
    assert errs["loss"] < 1e-12
    for n, p in model.named_parameters():
        np.testing.assert_allclose(p.grad, ref[n], rtol=1e-9, atol=1e-12, err_msg=n)


def test_weighted_loss_mask_is_a_weighted_mean():
    # a mask with values > 1 (SFT slot-token weighting, slot_augment.weight_copied_tokens): the loss
    # is sum(w * nll) / sum(w) over the targets, and its gradient matches central differences
    model = random_model(np.float64, seed=5)
    idx, tgt = batch(5)
    w = np.ones((B, T))
    w[0, :3] = 0
    w[1, 4:7] = 3
    logits, loss = model(idx, tgt, loss_mask=w)
    z = logits.data - logits.data.max(-1, keepdims=True)
    nll = -(z - np.log(np.exp(z).sum(-1, keepdims=True)))[np.arange(B)[:, None], np.arange(T)[None], tgt]
    np.testing.assert_allclose(float(loss.data), (w * nll).sum() / w.sum(), rtol=1e-12)
    loss.backward()
    p = dict(model.named_parameters())["transformer.ln_f.bias"]
    eps, g = 1e-6, np.zeros(4)
    for k in range(4):
        old = p.data[k]
        p.data[k] = old + eps
        hi = float(model(idx, tgt, loss_mask=w)[1].data)
        p.data[k] = old - eps
        lo = float(model(idx, tgt, loss_mask=w)[1].data)
        p.data[k] = old
        g[k] = (hi - lo) / (2 * eps)
    np.testing.assert_allclose(p.grad[:4], g, rtol=1e-6, atol=1e-9)


def test_full_loss_gradcheck_float64():
    model = random_model(np.float64, seed=3)
    idx, tgt = batch(3)
    _, loss = model(idx, tgt)
    loss.backward()
    params = dict(model.named_parameters())

    def f():
        return float(model(idx, tgt)[1].data)

    # a few parameters from every kind of layer (each element costs two forward passes)
    for name in ("transformer.h.0.ln_1.weight", "transformer.h.0.attn.c_attn.bias",
                 "transformer.h.1.mlp.c_proj.bias", "transformer.ln_f.bias"):
        p = params[name]
        num = numerical_grad(f, p.data, h=1e-6)
        np.testing.assert_allclose(p.grad, num, rtol=1e-5, atol=1e-8, err_msg=name)
    # the shared embedding gets gradient from both the input lookup and the output layer
    wpe = params["transformer.wpe.weight"]
    sub_p = wpe.data[T - 1].copy()
    def f_pos():
        wpe.data[T - 1] = sub_p
        return f()
    num = numerical_grad(f_pos, sub_p, h=1e-6)
    wpe.data[T - 1] = sub_p
    np.testing.assert_allclose(wpe.grad[T - 1], num, rtol=1e-5, atol=1e-8)
    wte = params["transformer.wte.weight"]
    rows = np.unique(idx)[:2]
    sub = wte.data[rows].copy()
    def f_rows():
        wte.data[rows] = sub
        return f()
    num = numerical_grad(f_rows, sub, h=1e-6)
    wte.data[rows] = sub
    np.testing.assert_allclose(wte.grad[rows], num, rtol=1e-5, atol=1e-8)


def test_loss_is_none_without_targets_and_logits_shape():
    model = GPT(CFG)
    idx, _ = batch(t=5)
    logits, loss = model(idx)
    assert loss is None and logits.shape == (B, 5, CFG.vocab_size) and logits.dtype == np.float32
    # at init the prediction is near uniform: loss ~ ln V
    _, loss = model(*batch())
    assert abs(float(loss.data) - np.log(CFG.vocab_size)) < 0.1


def test_bad_inputs_raise_clear_errors():
    model = GPT(CFG)
    with pytest.raises(DataError, match="block_size 8"):
        model(np.zeros((1, 9), np.int64))
    with pytest.raises(DataError, match=r"token id 37 outside \[0, 37\)"):
        model(np.full((1, 3), 37))
    with pytest.raises(DataError, match="2-D integer"):
        model(np.zeros((3,), np.float32))
    with pytest.raises(DataError, match="targets"):
        model(np.zeros((1, 3), np.int64), np.zeros((1, 4), np.int64))
    with pytest.raises(DataError, match="loss_mask"):
        model(np.zeros((1, 3), np.int64), np.zeros((1, 3), np.int64), loss_mask=np.ones((1, 2)))


def test_generate_greedy_seeded_and_cropped():
    model = GPT(CFG, seed=1)
    idx = np.array([[1, 2, 3]])
    out = model.generate(idx, 10, temperature=0)               # longer than block_size: crops
    assert out.shape == (1, 13) and np.array_equal(out[:, :3], idx)
    # greedy: each new token is the argmax of the logits of the cropped context
    for t in range(3, 13):
        ctx = out[:, max(0, t - CFG.block_size):t]
        logits, _ = model(ctx)
        assert out[0, t] == int(np.argmax(logits.data[0, -1]))
    a = model.generate(np.array([[1, 2], [3, 4]]), 6, temperature=1.0, top_k=5, seed=7)
    b = model.generate(np.array([[1, 2], [3, 4]]), 6, temperature=1.0, top_k=5, seed=7)
    c = model.generate(np.array([[1, 2], [3, 4]]), 6, temperature=1.0, top_k=5, seed=8)
    assert a.shape == (2, 8) and np.array_equal(a, b) and not np.array_equal(a, c)
    assert model.training  # generate restores the mode it found


def test_overfits_one_batch():
    from scratchgpt.optim import AdamW
    model = GPT(CFG, seed=0)
    idx, tgt = batch(5)
    opt = AdamW(model.parameters(), lr=1e-2, weight_decay=0.0)
    first = None
    for _ in range(60):
        opt.zero_grad()
        _, loss = model(idx, tgt)
        loss.backward()
        opt.step()
        first = float(loss.data) if first is None else first
    assert float(loss.data) < 0.2 * first


@given(n_layer=st.integers(1, 2), n_head=st.integers(1, 3), head_size=st.integers(1, 4),
       t=st.integers(1, 6), vocab=st.integers(2, 19), batch_size=st.integers(1, 3), seed=st.integers(0, 2**16))
def test_float64_matches_reference_on_drawn_configs(n_layer, n_head, head_size, t, vocab, batch_size, seed):
    cfg = GPTConfig(vocab_size=vocab, block_size=6, n_layer=n_layer, n_head=n_head, n_embd=n_head * head_size)
    model = GPT(cfg, seed=seed).double()
    r = np.random.default_rng(seed)
    for name, p in model.named_parameters():
        p.data[...] += 0.2 * r.standard_normal(p.shape)
    idx, tgt = r.integers(0, vocab, (batch_size, t)), r.integers(0, vocab, (batch_size, t))
    logits, loss = model(idx, tgt)
    loss.backward()
    params = {n: p.data for n, p in model.named_parameters()}
    ref_logits, ref_loss, cache = gpt_forward(params, idx, tgt, n_layer, n_head)
    ref = gpt_backward(cache, n_layer)
    np.testing.assert_allclose(logits.data, ref_logits, rtol=1e-10, atol=1e-12)
    assert abs(float(loss.data) - ref_loss) < 1e-12
    for n, p in model.named_parameters():
        np.testing.assert_allclose(p.grad, ref[n], rtol=1e-8, atol=1e-12, err_msg=n)


def test_all_targets_masked_gives_zero_loss_and_zero_grads():
    model = GPT(CFG)
    idx, tgt = batch()
    _, loss = model(idx, tgt, loss_mask=np.zeros((B, T)))
    loss.backward()
    assert float(loss.data) == 0.0
    assert all(not np.any(p.grad) for p in model.parameters())
