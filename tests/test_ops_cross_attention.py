"""Cross-attention (encoder-decoder; also encoder self-attention): fast path vs reference,
gradients, composition, kv padding mask and causal flag."""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scratchgpt.autograd import Tensor, gradcheck
from scratchgpt.errors import ConfigError, DataError
from scratchgpt.ops.attention import causal_self_attention_forward
from scratchgpt.ops.cross_attention_op import (
    cross_attention,
    cross_attention_backward,
    cross_attention_backward_ref,
    cross_attention_forward,
    cross_attention_forward_ref,
)

# float32 fast path vs float64 reference (abs + rel * |ref|), as for causal attention.
F32_ATOL, F32_RTOL = 2e-5, 2e-4
# gradcheck bound (float64 central differences), the stated relative error bound for this op.
GRAD_ATOL, GRAD_RTOL = 1e-6, 1e-5


@st.composite
def xattn_case(draw, max_t=6):
    B = draw(st.integers(1, 2))
    Tq = draw(st.integers(1, max_t))
    Tk = draw(st.integers(1, max_t))
    NH = draw(st.integers(1, 3))
    HS = draw(st.integers(1, 4))
    C = NH * HS
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    scale = draw(st.sampled_from([0.1, 1.0, 3.0]))
    q = rng.standard_normal((B, Tq, C)) * scale
    kv = rng.standard_normal((B, Tk, 2 * C)) * scale
    use_mask = draw(st.booleans())
    mask = (rng.random((B, Tk)) < 0.7) if use_mask else None
    causal = draw(st.booleans())
    return q, kv, NH, mask, causal


def composition(q, kv, NH, mask, causal):
    """Unfused float64 NumPy: per (b, h) matmul, scale, mask, softmax (0 for empty rows), matmul."""
    B, Tq, C = q.shape
    Tk = kv.shape[1]
    HS = C // NH
    out = np.zeros((B, Tq, C))
    for b in range(B):
        for h in range(NH):
            sl = slice(h * HS, (h + 1) * HS)
            qh, kh, vh = q[b, :, sl], kv[b, :, :C][:, sl], kv[b, :, C:][:, sl]
            s = np.matmul(qh, kh.T) / math.sqrt(HS)                          # (Tq, Tk)
            for i in range(Tq):
                for j in range(Tk):
                    blocked = (mask is not None and not mask[b, j]) or (causal and j > i + Tk - Tq)
                    if blocked:
                        s[i, j] = -np.inf
            for i in range(Tq):
                if np.all(np.isneginf(s[i])):
                    continue                                                 # row stays 0
                e = np.exp(s[i] - s[i].max())
                out[b, i, sl] = np.matmul(e / e.sum(), vh)
    return out


@given(xattn_case())
def test_fast_path_matches_reference_float32(case):
    q, kv, NH, mask, causal = case
    ref, cache_ref = cross_attention_forward_ref(q, kv, NH, mask, causal)
    out, cache = cross_attention_forward(q.astype(np.float32), kv.astype(np.float32), NH, mask, causal)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, ref, atol=F32_ATOL, rtol=F32_RTOL)
    dout = np.random.default_rng(0).standard_normal(out.shape)
    dq_ref, dkv_ref = cross_attention_backward_ref(dout, cache_ref)
    dq, dkv = cross_attention_backward(dout.astype(np.float32), cache)
    assert dq.dtype == np.float32 and dq.shape == q.shape and dkv.shape == kv.shape
    np.testing.assert_allclose(dq, dq_ref, atol=F32_ATOL, rtol=F32_RTOL)
    np.testing.assert_allclose(dkv, dkv_ref, atol=F32_ATOL, rtol=F32_RTOL)


@given(xattn_case())
def test_fused_equals_composition(case):
    q, kv, NH, mask, causal = case
    out, _ = cross_attention_forward(q, kv, NH, mask, causal)
    assert out.dtype == np.float64
    np.testing.assert_allclose(out, composition(q, kv, NH, mask, causal), atol=1e-12, rtol=1e-10)


@settings(max_examples=10)
@given(xattn_case(max_t=4))
def test_gradcheck(case):
    q, kv, NH, mask, causal = case
    report = gradcheck(lambda a, b: cross_attention(a, b, NH, kv_mask=mask, causal=causal), [q, kv],
                       atol=GRAD_ATOL, rtol=GRAD_RTOL)
    assert report["ok"]


@given(xattn_case())
def test_masked_keys_get_zero_weight(case):
    """Changing masked keys/values changes nothing, and their gradient is exactly zero."""
    q, kv, NH, mask, causal = case
    if mask is None:
        mask = np.zeros(kv.shape[:2], dtype=bool)
        mask[:, 0] = True
    C = q.shape[2]
    a, _ = cross_attention_forward(q, kv, NH, mask, causal)
    changed = kv.copy()
    changed[~mask] += 10.0
    b, cache = cross_attention_forward(q, changed, NH, mask, causal)
    np.testing.assert_allclose(a, b, atol=1e-12, rtol=0)
    probs = cache[2]                                                        # (B, NH, Tq, Tk)
    assert np.all(probs.transpose(0, 3, 1, 2)[~mask] == 0.0)
    _, dkv = cross_attention_backward(np.ones_like(b), cache)
    assert np.all(dkv[~mask] == 0.0)
    assert dkv.shape[2] == 2 * C


def test_all_masked_rows_give_zero_output_and_grad():
    rng = np.random.default_rng(1)
    q = rng.standard_normal((2, 3, 4)).astype(np.float32)
    kv = rng.standard_normal((2, 5, 8)).astype(np.float32)
    mask = np.ones((2, 5), dtype=bool)
    mask[1] = False                                                          # batch 1: no keys
    out, cache = cross_attention_forward(q, kv, 2, mask)
    assert np.all(out[1] == 0.0) and np.all(np.isfinite(out))
    dq, dkv = cross_attention_backward(np.ones_like(out), cache)
    assert np.all(dq[1] == 0.0) and np.all(dkv[1] == 0.0)
    assert np.any(out[0] != 0.0)


@given(st.integers(1, 6), st.integers(1, 3), st.integers(0, 1000))
def test_causal_with_equal_lengths_is_causal_self_attention(T, NH, seed):
    rng = np.random.default_rng(seed)
    C = NH * 3
    qkv = rng.standard_normal((2, T, 3 * C))
    a, _ = cross_attention_forward(qkv[:, :, :C], qkv[:, :, C:], NH, causal=True)
    b, _ = causal_self_attention_forward(qkv, NH)
    np.testing.assert_allclose(a, b, atol=1e-12, rtol=1e-10)


def test_causal_offset_when_decoding_with_earlier_keys():
    """Tq < Tk with causal=True: query i sits at absolute position Tk - Tq + i."""
    rng = np.random.default_rng(2)
    C, NH, T = 6, 2, 5
    qkv = rng.standard_normal((1, T, 3 * C))
    full, _ = causal_self_attention_forward(qkv, NH)
    last2, _ = cross_attention_forward(qkv[:, 3:, :C], qkv[:, :, C:], NH, causal=True)
    np.testing.assert_allclose(last2, full[:, 3:], atol=1e-12, rtol=1e-10)


def test_tensor_function_and_grad_flow():
    rng = np.random.default_rng(3)
    q = Tensor(rng.standard_normal((2, 3, 8)).astype(np.float32), requires_grad=True)
    kv = Tensor(rng.standard_normal((2, 4, 16)).astype(np.float32), requires_grad=True)
    mask = np.array([[True, True, False, True], [True, False, False, False]])
    y = cross_attention(q, kv, 2, kv_mask=mask)
    assert y.shape == (2, 3, 8) and y.dtype == np.float32
    g = rng.standard_normal(y.shape).astype(np.float32)
    y.backward(g)
    _, cache = cross_attention_forward_ref(q.data, kv.data, 2, mask)
    dq_ref, dkv_ref = cross_attention_backward_ref(g, cache)
    np.testing.assert_allclose(q.grad, dq_ref, atol=F32_ATOL, rtol=F32_RTOL)
    np.testing.assert_allclose(kv.grad, dkv_ref, atol=F32_ATOL, rtol=F32_RTOL)


def test_bad_input_errors():
    q = np.zeros((2, 3, 4), np.float32)
    with pytest.raises(DataError, match="kv"):
        cross_attention_forward(q, np.zeros((2, 5, 6), np.float32), 2)
    with pytest.raises(DataError, match="kv_mask"):
        cross_attention_forward(q, np.zeros((2, 5, 8), np.float32), 2, kv_mask=np.ones((2, 4), bool))
    with pytest.raises(DataError, match="kv_mask"):
        cross_attention_forward(q, np.zeros((2, 5, 8), np.float32), 2, kv_mask=np.ones((2, 5), int))
    with pytest.raises(ConfigError, match="n_head"):
        cross_attention_forward(q, np.zeros((2, 5, 8), np.float32), 3)


def test_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    B, Tq, Tk, NH, HS = 2, 4, 6, 2, 4
    C = NH * HS
    q = rng.standard_normal((B, Tq, C)).astype(np.float32)
    kv = rng.standard_normal((B, Tk, 2 * C)).astype(np.float32)
    mask = rng.random((B, Tk)) < 0.7
    mask[:, 0] = True                       # torch gives NaN for rows with no key; we give 0
    dout = rng.standard_normal((B, Tq, C)).astype(np.float32)
    out, cache = cross_attention_forward(q, kv, NH, mask)
    dq, dkv = cross_attention_backward(dout, cache)

    tq = torch.tensor(q, requires_grad=True)
    tkv = torch.tensor(kv, requires_grad=True)
    heads = lambda t, T: t.reshape(B, T, NH, HS).transpose(1, 2)  # noqa: E731
    y = torch.nn.functional.scaled_dot_product_attention(
        heads(tq, Tq), heads(tkv[:, :, :C], Tk), heads(tkv[:, :, C:], Tk),
        attn_mask=torch.tensor(mask)[:, None, None, :])
    y = y.transpose(1, 2).reshape(B, Tq, C)
    y.backward(torch.tensor(dout))
    np.testing.assert_allclose(out, y.detach().numpy(), atol=1e-5, rtol=1e-4)
    np.testing.assert_allclose(dq, tq.grad.numpy(), atol=1e-5, rtol=1e-4)
    np.testing.assert_allclose(dkv, tkv.grad.numpy(), atol=1e-5, rtol=1e-4)


def test_larger_shapes_float32():
    """Many row chunks in the masked softmax kernel, a padding mask and the causal offset."""
    rng = np.random.default_rng(5)
    q = rng.standard_normal((2, 70, 16)).astype(np.float32)
    kv = rng.standard_normal((2, 90, 32)).astype(np.float32)
    mask = rng.random((2, 90)) < 0.8
    for causal in (False, True):
        out, cache = cross_attention_forward(q, kv, 2, mask, causal)
        ref, cache_ref = cross_attention_forward_ref(q, kv, 2, mask, causal)
        np.testing.assert_allclose(out, ref, atol=F32_ATOL, rtol=F32_RTOL)
        dout = rng.standard_normal(out.shape).astype(np.float32)
        for a, b in zip(cross_attention_backward(dout, cache), cross_attention_backward_ref(dout, cache_ref)):
            np.testing.assert_allclose(a, b, atol=F32_ATOL, rtol=F32_RTOL)


def test_strided_inputs():
    """Non-contiguous q / kv (e.g. transposed views) give the same result as contiguous ones."""
    rng = np.random.default_rng(6)
    q = rng.standard_normal((8, 4, 2)).astype(np.float32).transpose(2, 1, 0)      # (2, 4, 8)
    kv = rng.standard_normal((16, 6, 2)).astype(np.float32).transpose(2, 1, 0)    # (2, 6, 16)
    assert not q.flags.c_contiguous and not kv.flags.c_contiguous
    mask = np.array([[True] * 6, [True, False, True, True, False, True]])
    out, cache = cross_attention_forward(q, kv, 2, mask)
    ref, cache_ref = cross_attention_forward_ref(np.ascontiguousarray(q), np.ascontiguousarray(kv), 2, mask)
    np.testing.assert_allclose(out, ref, atol=F32_ATOL, rtol=F32_RTOL)
    dout = rng.standard_normal((2, 4, 8)).astype(np.float32).transpose(0, 1, 2)[:, :, ::-1]
    for a, b in zip(cross_attention_backward(dout, cache), cross_attention_backward_ref(dout, cache_ref)):
        np.testing.assert_allclose(a, b, atol=F32_ATOL, rtol=F32_RTOL)
