"""Causal multi-head self-attention: fast path vs reference, gradients, composition, causality."""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scratchgpt.autograd import Tensor, gradcheck
from scratchgpt.errors import ConfigError, DataError
from scratchgpt.ops.attention import (
    causal_self_attention,
    causal_self_attention_backward,
    causal_self_attention_backward_ref,
    causal_self_attention_forward,
    causal_self_attention_forward_ref,
)

# float32 fast path vs float64 reference: abs + rel * |ref|. Inputs are O(1..3); a softmax row
# and a length-T dot product each add a few float32 ulps (~1e-7 relative).
F32_ATOL, F32_RTOL = 2e-5, 2e-4
# gradcheck (float64 central differences, h = 1e-6): truncation O(h^2) and rounding O(eps/h)
# leave ~1e-9 absolute; the bound below is the stated relative error bound for this op.
GRAD_ATOL, GRAD_RTOL = 1e-6, 1e-5


@st.composite
def attn_case(draw, max_t=6):
    B = draw(st.integers(1, 2))
    T = draw(st.integers(1, max_t))
    NH = draw(st.integers(1, 3))
    HS = draw(st.integers(1, 4))
    scale = draw(st.sampled_from([0.1, 1.0, 3.0]))
    seed = draw(st.integers(0, 2**31 - 1))
    qkv = np.random.default_rng(seed).standard_normal((B, T, 3 * NH * HS)) * scale
    return qkv, NH


def composition(qkv, NH):
    """The unfused math, step by step in float64 NumPy: split, matmul, mask, softmax, matmul."""
    B, T, C3 = qkv.shape
    C = C3 // 3
    HS = C // NH
    out = np.zeros((B, T, C))
    for b in range(B):
        for h in range(NH):
            q = qkv[b, :, h * HS:(h + 1) * HS]
            k = qkv[b, :, C + h * HS:C + (h + 1) * HS]
            v = qkv[b, :, 2 * C + h * HS:2 * C + (h + 1) * HS]
            s = np.matmul(q, k.T) / math.sqrt(HS)
            s[np.triu_indices(T, 1)] = -np.inf
            e = np.exp(s - s.max(axis=1, keepdims=True))
            p = e / e.sum(axis=1, keepdims=True)
            out[b, :, h * HS:(h + 1) * HS] = np.matmul(p, v)
    return out


@given(attn_case())
def test_fast_path_matches_reference_float32(case):
    qkv, NH = case
    out_ref, cache_ref = causal_self_attention_forward_ref(qkv, NH)
    out, cache = causal_self_attention_forward(qkv.astype(np.float32), NH)
    assert out.dtype == np.float32 and out.shape == out_ref.shape
    np.testing.assert_allclose(out, out_ref, atol=F32_ATOL, rtol=F32_RTOL)
    dout = np.random.default_rng(0).standard_normal(out.shape)
    dqkv_ref = causal_self_attention_backward_ref(dout, cache_ref)
    dqkv = causal_self_attention_backward(dout.astype(np.float32), cache)
    assert dqkv.dtype == np.float32 and dqkv.shape == qkv.shape
    np.testing.assert_allclose(dqkv, dqkv_ref, atol=F32_ATOL, rtol=F32_RTOL)


@given(attn_case())
def test_fast_path_float64_equals_reference(case):
    qkv, NH = case
    out, cache = causal_self_attention_forward(qkv, NH)
    out_ref, cache_ref = causal_self_attention_forward_ref(qkv, NH)
    assert out.dtype == np.float64
    np.testing.assert_allclose(out, out_ref, atol=1e-12, rtol=1e-10)
    dout = np.random.default_rng(1).standard_normal(out.shape)
    np.testing.assert_allclose(causal_self_attention_backward(dout, cache),
                               causal_self_attention_backward_ref(dout, cache_ref), atol=1e-12, rtol=1e-10)


@given(attn_case())
def test_fused_equals_composition(case):
    qkv, NH = case
    out, _ = causal_self_attention_forward(qkv, NH)
    np.testing.assert_allclose(out, composition(qkv, NH), atol=1e-12, rtol=1e-10)


@settings(max_examples=10)
@given(attn_case(max_t=5))
def test_gradcheck(case):
    qkv, NH = case
    report = gradcheck(lambda x: causal_self_attention(x, NH), [qkv], atol=GRAD_ATOL, rtol=GRAD_RTOL)
    assert report["ok"]


@given(attn_case(), st.data())
def test_causality(case, data):
    """Outputs at positions <= t0 ignore q/k/v at positions > t0; and so do their gradients."""
    qkv, NH = case
    B, T, _ = qkv.shape
    t0 = data.draw(st.integers(0, T - 1))
    changed = qkv.copy()
    changed[:, t0 + 1:, :] += 5.0 * np.random.default_rng(2).standard_normal(changed[:, t0 + 1:, :].shape)
    a, _ = causal_self_attention_forward(qkv, NH)
    b, cache = causal_self_attention_forward(changed, NH)
    np.testing.assert_allclose(a[:, :t0 + 1], b[:, :t0 + 1], atol=1e-12, rtol=0)
    # d(outputs up to t0) / d(inputs after t0) = 0
    dout = np.zeros_like(b)
    dout[:, :t0 + 1] = 1.0
    dqkv = causal_self_attention_backward(dout, cache)
    assert np.all(dqkv[:, t0 + 1:] == 0.0)


def test_first_token_attends_only_to_itself():
    qkv = np.random.default_rng(3).standard_normal((2, 4, 12)).astype(np.float32)
    out, cache = causal_self_attention_forward(qkv, 2)
    np.testing.assert_array_equal(out[:, 0], qkv[:, 0, 8:])       # y_0 = v_0 (P_00 = 1)
    probs = cache[1]                                                # (B, NH, T, T)
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-6)
    assert np.all(probs[..., np.triu_indices(4, 1)[0], np.triu_indices(4, 1)[1]] == 0)


def test_tensor_function_float32_and_grad():
    qkv = np.random.default_rng(4).standard_normal((2, 5, 36)).astype(np.float32)
    x = Tensor(qkv, requires_grad=True)
    y = causal_self_attention(x, 3)
    assert y.shape == (2, 5, 12) and y.dtype == np.float32
    g = np.random.default_rng(5).standard_normal(y.shape).astype(np.float32)
    y.backward(g)
    _, cache = causal_self_attention_forward_ref(qkv, 3)
    np.testing.assert_allclose(x.grad, causal_self_attention_backward_ref(g, cache), atol=F32_ATOL, rtol=F32_RTOL)


def test_large_scores_stay_finite():
    qkv = np.random.default_rng(6).standard_normal((1, 8, 12)).astype(np.float32) * 300.0
    out, _ = causal_self_attention_forward(qkv, 1)
    ref, _ = causal_self_attention_forward_ref(qkv, 1)
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(out, ref, atol=1e-3, rtol=1e-4)


def test_bad_input_errors():
    with pytest.raises(DataError, match="qkv"):
        causal_self_attention_forward(np.zeros((2, 3, 10), np.float32), 1)
    with pytest.raises(ConfigError, match="n_head"):
        causal_self_attention_forward(np.zeros((2, 3, 12), np.float32), 3)
    with pytest.raises(ConfigError, match="n_head"):
        causal_self_attention_forward(np.zeros((2, 3, 12), np.float32), 0)


def test_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(7)
    B, T, NH, HS = 2, 7, 3, 4
    C = NH * HS
    qkv = rng.standard_normal((B, T, 3 * C)).astype(np.float32)
    dout = rng.standard_normal((B, T, C)).astype(np.float32)
    out, cache = causal_self_attention_forward(qkv, NH)
    dqkv = causal_self_attention_backward(dout, cache)

    x = torch.tensor(qkv, requires_grad=True)
    q, k, v = x.split(C, dim=2)
    heads = lambda t: t.reshape(B, T, NH, HS).transpose(1, 2)  # noqa: E731
    y = torch.nn.functional.scaled_dot_product_attention(heads(q), heads(k), heads(v), is_causal=True)
    y = y.transpose(1, 2).reshape(B, T, C)
    y.backward(torch.tensor(dout))
    np.testing.assert_allclose(out, y.detach().numpy(), atol=1e-5, rtol=1e-4)
    np.testing.assert_allclose(dqkv, x.grad.numpy(), atol=1e-5, rtol=1e-4)


@given(attn_case(max_t=9), st.sampled_from([1, 2, 3, 4]))
def test_causal_blocking_matches_reference(case, block):
    """The causally blocked products (row blocks that skip all-masked key blocks) for any block
    size, including partial last blocks, equal the dense reference in float64."""
    import scratchgpt.ops.attention as attention_module
    qkv, NH = case
    saved = attention_module._CAUSAL_BLOCK
    attention_module._CAUSAL_BLOCK = block
    try:
        out, cache = causal_self_attention_forward(qkv, NH)
        dout = np.random.default_rng(8).standard_normal(out.shape)
        dqkv = causal_self_attention_backward(dout, cache)
    finally:
        attention_module._CAUSAL_BLOCK = saved
    out_ref, cache_ref = causal_self_attention_forward_ref(qkv, NH)
    np.testing.assert_allclose(out, out_ref, atol=1e-12, rtol=1e-10)
    np.testing.assert_allclose(dqkv, causal_self_attention_backward_ref(dout, cache_ref), atol=1e-12, rtol=1e-10)


def test_training_size_float32():
    """T = 150 spans three causal blocks of 64 (the last partial) and many row chunks."""
    rng = np.random.default_rng(9)
    qkv = rng.standard_normal((2, 150, 3 * 16)).astype(np.float32)
    out, cache = causal_self_attention_forward(qkv, 2)
    out_ref, cache_ref = causal_self_attention_forward_ref(qkv, 2)
    np.testing.assert_allclose(out, out_ref, atol=F32_ATOL, rtol=F32_RTOL)
    dout = rng.standard_normal(out.shape).astype(np.float32)
    np.testing.assert_allclose(causal_self_attention_backward(dout, cache),
                               causal_self_attention_backward_ref(dout, cache_ref), atol=F32_ATOL, rtol=F32_RTOL)


def test_strided_inputs():
    """A non-contiguous qkv (e.g. a transposed view) and a strided dout give the same result."""
    rng = np.random.default_rng(10)
    qkv = rng.standard_normal((36, 5, 2)).astype(np.float32).transpose(2, 1, 0)   # (2, 5, 36)
    assert not qkv.flags.c_contiguous
    out, cache = causal_self_attention_forward(qkv, 3)
    out_ref, cache_ref = causal_self_attention_forward_ref(np.ascontiguousarray(qkv), 3)
    np.testing.assert_allclose(out, out_ref, atol=F32_ATOL, rtol=F32_RTOL)
    dout = rng.standard_normal((2, 5, 12)).astype(np.float32)[:, :, ::-1]
    np.testing.assert_allclose(causal_self_attention_backward(dout, cache),
                               causal_self_attention_backward_ref(dout, cache_ref), atol=F32_ATOL, rtol=F32_RTOL)


@given(BH=st.integers(1, 3), T=st.integers(1, 80), seed=st.integers(0, 2**31 - 1),
       spread=st.sampled_from([0.5, 3.0, 30.0]))
def test_float32_softmax_kernel_matches_float64_softmax(BH, T, seed, spread):
    """The float32-only causal softmax kernel (full-width rows, mask inside the exp loop) vs
    the float64 definition, for widths that are and are not multiples of the SIMD width; the
    future must come out exactly 0 even when the buffer held garbage there."""
    from scratchgpt.ops.attention import _causal_softmax
    rng = np.random.default_rng(seed)
    s = (rng.standard_normal((BH, T, T)) * spread).astype(np.float32)
    scale = 0.37
    ref = s.astype(np.float64) * scale
    ref[:, np.triu_indices(T, 1)[0], np.triu_indices(T, 1)[1]] = -np.inf
    ref = np.exp(ref - ref.max(axis=-1, keepdims=True))
    ref /= ref.sum(axis=-1, keepdims=True)
    att = s.copy()
    att[:, np.triu_indices(T, 1)[0], np.triu_indices(T, 1)[1]] = np.nan   # never read as data
    _causal_softmax(att, scale)
    assert att.dtype == np.float32
    np.testing.assert_allclose(att, ref, atol=1e-6, rtol=1e-5)
    assert np.all(att[:, np.triu_indices(T, 1)[0], np.triu_indices(T, 1)[1]] == 0)


@given(BH=st.integers(1, 3), T=st.integers(1, 80), seed=st.integers(0, 2**31 - 1),
       dtype=st.sampled_from([np.float32, np.float64]))
def test_softmax_backward_kernel_ignores_the_future(BH, T, seed, dtype):
    """scale * dS = scale * p (dp - sum p dp) on and below the diagonal, exactly 0 above it, even
    when dp holds NaN/inf garbage above the diagonal (the blocked products never fill it)."""
    from scratchgpt.ops.attention import _causal_softmax, _causal_softmax_backward_inplace
    rng = np.random.default_rng(seed)
    p = rng.standard_normal((BH, T, T)).astype(dtype)
    _causal_softmax(p, 1.0)
    dp = rng.standard_normal((BH, T, T)).astype(dtype)
    p64, dp64 = p.astype(np.float64), dp.astype(np.float64)
    ref = 0.5 * p64 * (dp64 - (p64 * dp64).sum(axis=-1, keepdims=True))
    iu = np.triu_indices(T, 1)
    dp[:, iu[0], iu[1]] = np.where(rng.random(iu[0].size) < 0.5, np.nan, np.inf)
    _causal_softmax_backward_inplace.pick(p.size)(p, dp, dtype(0.5))
    assert dp.dtype == dtype
    tol = dict(atol=1e-6, rtol=1e-5) if dtype == np.float32 else dict(atol=1e-13, rtol=1e-12)
    np.testing.assert_allclose(dp, ref, **tol)
    assert np.all(dp[:, iu[0], iu[1]] == 0)


def _split_benchmark():
    """benchmarks/attention_split.py: the batch split over threads, an experiment kept out of the library."""
    from benchmark_modules import load_benchmark
    return load_benchmark("attention_split")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_batch_split_path_matches_reference(dtype, monkeypatch):
    """The batch split over threads (serial nogil kernels, 1-thread BLAS) against the
    reference, float32 and float64, T spanning two causal blocks."""
    split = _split_benchmark()
    if split.blas_thread_setter() is None:
        pytest.skip("this NumPy's OpenBLAS has no openblas_set_num_threads_local")
    monkeypatch.setattr(split.numba, "get_num_threads", lambda: 2)
    assert split.n_split(3) == 2
    rng = np.random.default_rng(11)
    qkv = rng.standard_normal((3, 70, 3 * 12)).astype(dtype)
    out, cache = split.split_forward(qkv, 2, 2)
    out_ref, cache_ref = causal_self_attention_forward_ref(qkv, 2)
    dout = rng.standard_normal(out.shape).astype(dtype)
    dqkv = split.split_backward(dout, cache, 2)
    assert out.dtype == dtype and dqkv.dtype == dtype
    tol = dict(atol=F32_ATOL, rtol=F32_RTOL) if dtype == np.float32 else dict(atol=1e-12, rtol=1e-10)
    np.testing.assert_allclose(out, out_ref, **tol)
    np.testing.assert_allclose(dqkv, causal_self_attention_backward_ref(dout, cache_ref), **tol)


def test_batch_split_restores_the_blas_thread_count():
    """The split limits OpenBLAS to 1 thread while it runs; afterwards the caller's count must be
    back (a leaked 1 made every later Linear single-threaded)."""
    split = _split_benchmark()
    setter = split.blas_thread_setter()
    if setter is None:
        pytest.skip("this NumPy's OpenBLAS has no openblas_set_num_threads_local")
    prev = setter(3)                                  # a recognisable count
    try:
        qkv = np.random.default_rng(12).standard_normal((2, 8, 3 * 4)).astype(np.float32)
        out, cache = split.split_forward(qkv, 2, 2)
        split.split_backward(np.ones_like(out), cache, 2)
        assert setter(prev) == 3                      # returns the count that was in effect
    finally:
        setter(prev)
