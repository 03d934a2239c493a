"""Decode kernels (ops/decode_*.py): Numba serial and parallel builds vs their float64 refs."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

from scratchgpt.ops._numba import force_build
from scratchgpt.ops.decode_attention import cached_attention, cached_attention_ref
from scratchgpt.ops.decode_embedding import embed_rows, embed_rows_ref
from scratchgpt.ops.decode_gelu import gelu_inplace, gelu_ref
from scratchgpt.ops.decode_layernorm import (add_layernorm_rows, add_layernorm_rows_ref, layernorm_rows,
                                             layernorm_rows_ref)
from scratchgpt.ops.decode_matmul import small_matmul, small_matmul_ref

F32 = dict(atol=2e-5, rtol=2e-5)


@given(parallel=st.booleans(), M=st.integers(1, 19), K=st.integers(1, 70), N=st.integers(1, 40),
       bias=st.booleans(), seed=st.integers(0, 2**31 - 1))
def test_small_matmul_matches_ref(parallel, M, K, N, bias, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((M, K)).astype(np.float32)
    wt = rng.standard_normal((N, K)).astype(np.float32)
    b = rng.standard_normal(N).astype(np.float32) if bias else None
    out = np.full((M, N), np.nan, np.float32)
    with force_build(parallel):
        small_matmul(x, wt, b, out)
    ref = small_matmul_ref(x, wt, b)
    # K-term float32 dot products: error grows like sqrt(K) ulps of the terms' magnitude
    np.testing.assert_allclose(out, ref, atol=1e-5 * K, rtol=1e-5)


@given(parallel=st.booleans(), data=st.data(), seed=st.integers(0, 2**31 - 1))
def test_cached_attention_matches_ref(parallel, data, seed):
    rng = np.random.default_rng(seed)
    S, NH, HS, T = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3)), data.draw(st.integers(1, 8)), 12
    C = NH * HS
    # cache with random history; each row's position: earlier positions of its slot already "cached"
    kc = rng.standard_normal((S, NH, T, HS)).astype(np.float32)
    vc = rng.standard_normal((S, NH, T, HS)).astype(np.float32)
    R = data.draw(st.integers(1, 6))
    slots = np.array([data.draw(st.integers(0, S - 1)) for _ in range(R)], np.int64)
    # distinct (slot, position) pairs so the write order does not matter
    used, positions = set(), []
    for s in slots:
        p = data.draw(st.integers(0, T - 1).filter(lambda q, s=s: (s, q) not in used))
        used.add((int(s), p))
        positions.append(p)
    positions = np.array(positions, np.int64)
    qkv = (rng.standard_normal((R, 3 * C)) * 2).astype(np.float32)
    y_ref, k_ref, v_ref = cached_attention_ref(qkv, kc, vc, slots, positions, NH)
    scores = np.empty((R * NH, T), np.float32)
    out = np.full((R, C), np.nan, np.float32)
    with force_build(parallel):
        cached_attention(qkv, kc, vc, slots, positions, scores, out)
    np.testing.assert_array_equal(kc, k_ref.astype(np.float32))
    np.testing.assert_array_equal(vc, v_ref.astype(np.float32))
    np.testing.assert_allclose(out, y_ref, **F32)


@given(parallel=st.booleans(), R=st.integers(1, 5), C=st.integers(1, 50), seed=st.integers(0, 2**31 - 1))
def test_layernorm_rows_match_ref(parallel, R, C, seed):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((R, C)) * 3 + 1).astype(np.float32)
    d = rng.standard_normal((R, C)).astype(np.float32)
    w, b = rng.standard_normal(C).astype(np.float32), rng.standard_normal(C).astype(np.float32)
    h = np.empty_like(x)
    with force_build(parallel):
        layernorm_rows(x.copy(), w, b, 1e-5, h)
        np.testing.assert_allclose(h, layernorm_rows_ref(x, w, b), atol=1e-4, rtol=1e-4)
        x2 = x.copy()
        add_layernorm_rows(x2, d, w, b, 1e-5, h)
    s_ref, h_ref = add_layernorm_rows_ref(x, d, w, b)
    np.testing.assert_allclose(x2, s_ref, **F32)
    np.testing.assert_allclose(h, h_ref, atol=1e-4, rtol=1e-4)


@given(parallel=st.booleans(), seed=st.integers(0, 2**31 - 1))
def test_gelu_inplace_matches_ref(parallel, seed):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((3, 37)) * 4).astype(np.float32)
    x[0, :4] = [-60.0, 60.0, 0.0, -1e-8]          # the tails: exp overflow -> -0, and exact 0
    y = x.copy()
    with force_build(parallel):
        gelu_inplace(y)
    np.testing.assert_allclose(y, gelu_ref(x), atol=1e-6, rtol=1e-5)


def test_gelu_inplace_agrees_with_training_gelu():
    from scratchgpt.ops.gelu_op import gelu_forward
    x = np.linspace(-12, 12, 2001, dtype=np.float32).reshape(1, -1)
    y = x.copy()
    gelu_inplace(y)
    np.testing.assert_allclose(y, gelu_forward(x)[0], atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("parallel", [False, True])
def test_embed_rows_matches_ref(parallel):
    rng = np.random.default_rng(0)
    wte = rng.standard_normal((11, 6)).astype(np.float32)
    wpe = rng.standard_normal((5, 6)).astype(np.float32)
    toks, pos = np.array([3, 0, 10, 3], np.int64), np.array([0, 4, 1, 1], np.int64)
    out = np.empty((4, 6), np.float32)
    with force_build(parallel):
        embed_rows(wte, wpe, toks, pos, out)
    np.testing.assert_allclose(out, embed_rows_ref(wte, wpe, toks, pos), atol=1e-6)


def test_decode_kernels_are_batch_and_build_invariant():
    # The engine promises bit-identical results alone or batched: a row's result must not depend
    # on the other rows nor on which build (serial/parallel) ran.
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 96)).astype(np.float32)
    wt = rng.standard_normal((77, 96)).astype(np.float32)
    b = rng.standard_normal(77).astype(np.float32)
    outs = []
    for parallel in (False, True):
        o = np.empty((5, 77), np.float32)
        with force_build(parallel):
            small_matmul(x, wt, b, o)
        outs.append(o)
    one = np.empty((1, 77), np.float32)
    small_matmul(x[3:4].copy(), wt, b, one)
    assert np.array_equal(outs[0], outs[1]) and np.array_equal(outs[0][3], one[0])
    # more rows: a row's bits do not depend on M either
    xs = rng.standard_normal((23, 96)).astype(np.float32)
    full = np.empty((23, 77), np.float32)
    small_matmul(xs, wt, b, full)
    part = np.empty((13, 77), np.float32)
    small_matmul(xs[10:].copy(), wt, b, part)
    assert np.array_equal(full[10:], part)
    # any batch size (the CPU engine sends up to 32 decode rows per call) and a K that is not a
    # multiple of the kernel's 16 lanes: every row equals the row alone, bit for bit
    for k in (50, 96):
        xk = rng.standard_normal((32, k)).astype(np.float32)
        wk = rng.standard_normal((77, k)).astype(np.float32)
        batch = small_matmul(xk, wk, b, np.empty((32, 77), np.float32))
        for r in (0, 5, 30, 31):
            assert np.array_equal(batch[r], small_matmul(xk[r:r + 1].copy(), wk, b, np.empty((1, 77), np.float32))[0])
    d = rng.standard_normal((5, 96)).astype(np.float32)
    w = rng.standard_normal(96).astype(np.float32)
    hs = []
    for parallel in (False, True):
        h, xx = np.empty_like(x), x.copy()
        with force_build(parallel):
            add_layernorm_rows(xx, d, w, w, 1e-5, h)
        hs.append(h)
    assert np.array_equal(hs[0], hs[1])
