"""matmul / linear: gradients vs central differences, BLAS path and Numba kernel vs float64 ref."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

from scratchgpt.autograd import Tensor, gradcheck
from scratchgpt.ops import linear, matmul
from scratchgpt.ops.matmul_op import (linear_backward, linear_backward_ref, linear_forward, linear_forward_ref,
                                   matmul_backward, matmul_backward_ref, matmul_forward, matmul_forward_ref,
                                   matmul_numba)
from scratchgpt.ops._numba import force_build

# bilinear ops: central differences are exact up to rounding (~1e-10 here), so tight bounds
GC = dict(atol=1e-7, rtol=1e-6)


def f32_tol(K):
    """float32 dot products of K terms of N(0,1) values: error grows ~ sqrt(K) ulps of sqrt(K)."""
    return dict(atol=2e-6 * K, rtol=1e-5)


SHAPES = [((3, 4), (4, 2)), ((2, 3, 4), (4, 5)), ((2, 1, 3, 4), (5, 4, 2)), ((4,), (4, 3)),
          ((2, 3, 4), (4,)), ((4,), (4,)), ((3, 2, 4), (3, 4, 2))]


@given(case=st.sampled_from(SHAPES), seed=st.integers(0, 2**31 - 1))
def test_matmul_gradcheck_broadcast_and_1d(case, seed):
    rng = np.random.default_rng(seed)
    a, b = rng.standard_normal(case[0]), rng.standard_normal(case[1])
    gradcheck(matmul, [a, b], **GC)


@given(case=st.sampled_from(SHAPES), seed=st.integers(0, 2**31 - 1))
def test_matmul_fast_matches_ref(case, seed):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal(case[0]).astype(np.float32)
    b = rng.standard_normal(case[1]).astype(np.float32)
    y, c = matmul_forward(a, b)
    yr, cr = matmul_forward_ref(a, b)
    tol = f32_tol(a.shape[-1])
    np.testing.assert_allclose(y, yr, **tol)
    g = rng.standard_normal(yr.shape).astype(np.float32)
    for got, want in zip(matmul_backward(g, c), matmul_backward_ref(g, cr)):
        assert got.shape == want.shape and got.dtype == np.float32
        np.testing.assert_allclose(got, want, **f32_tol(12))


@given(n=st.integers(1, 3), t=st.integers(1, 4), cin=st.integers(1, 5), cout=st.integers(1, 5),
       bias=st.booleans(), seed=st.integers(0, 2**31 - 1))
def test_linear_gradcheck(n, t, cin, cout, bias, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, t, cin))
    w = rng.standard_normal((cin, cout))
    if bias:
        gradcheck(linear, [x, w, rng.standard_normal(cout)], **GC)
    else:
        gradcheck(lambda x_, w_: linear(x_, w_), [x, w], **GC)


@given(n=st.integers(1, 4), t=st.integers(1, 9), cin=st.integers(1, 40), cout=st.integers(1, 40),
       seed=st.integers(0, 2**31 - 1))
def test_linear_fast_matches_ref(n, t, cin, cout, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, t, cin)).astype(np.float32)
    w = rng.standard_normal((cin, cout)).astype(np.float32)
    b = rng.standard_normal(cout).astype(np.float32)
    y, c = linear_forward(x, w, b)
    yr, cr = linear_forward_ref(x, w, b)
    assert y.shape == (n, t, cout) and y.dtype == np.float32
    np.testing.assert_allclose(y, yr, **f32_tol(cin))
    g = rng.standard_normal(y.shape).astype(np.float32)
    dx, dw, db = linear_backward(g, c)
    dxr, dwr, dbr = linear_backward_ref(g, cr)
    np.testing.assert_allclose(dx, dxr, **f32_tol(cout))
    np.testing.assert_allclose(dw, dwr, **f32_tol(n * t))
    np.testing.assert_allclose(db, dbr, **f32_tol(n * t))


@given(parallel=st.booleans(), m=st.integers(1, 130), k=st.integers(1, 70), n=st.integers(1, 130), seed=st.integers(0, 2**31 - 1),
       f64=st.booleans())
def test_numba_tiled_matmul_matches_ref(m, k, n, seed, f64, parallel):
    with force_build(parallel):  # both builds of every kernel must match the ref
        # sizes straddle the 64-wide tiles so partial edge tiles are exercised
        rng = np.random.default_rng(seed)
        dt = np.float64 if f64 else np.float32
        a = rng.standard_normal((m, k)).astype(dt)
        b = rng.standard_normal((k, n)).astype(dt)
        got = matmul_numba(a, b)
        assert got.dtype == dt
        want, _ = matmul_forward_ref(a, b)
        np.testing.assert_allclose(got, want, **(dict(atol=1e-12 * k, rtol=1e-12) if f64 else f32_tol(k)))


def test_linear_is_one_matmul_plus_bias_and_skips_unneeded_grads():
    rng = np.random.default_rng(0)
    x = Tensor(rng.standard_normal((2, 3, 4)).astype(np.float32))  # no grad: an input batch
    w = Tensor(rng.standard_normal((4, 5)).astype(np.float32), requires_grad=True)
    b = Tensor(rng.standard_normal(5).astype(np.float32), requires_grad=True)
    y = linear(x, w, b)
    np.testing.assert_allclose(y.data, x.data @ w.data + b.data, rtol=1e-6, atol=1e-6)
    y.sum().backward()
    assert x.grad is None and w.grad.shape == (4, 5) and b.grad.shape == (5,)
    np.testing.assert_allclose(b.grad, np.full(5, 6.0))


def test_bad_shapes_are_clear_errors():
    with pytest.raises(ValueError, match=r"weight must have shape \(4, Cout\)"):
        linear(Tensor(np.ones((2, 4))), Tensor(np.ones((3, 5))))
    with pytest.raises(ValueError, match="matmul_numba"):
        matmul_numba(np.ones((2, 3)), np.ones((4, 2)))


def test_linear_with_transposed_weight_tied_head():
    # the GPT lm_head: linear(x, transpose(wte)); dW must come back in wte's own (C-) layout
    rng = np.random.default_rng(1)
    from scratchgpt.ops import transpose
    gradcheck(lambda x_, w_: linear(x_, transpose(w_)), [rng.standard_normal((2, 3, 4)), rng.standard_normal((5, 4))],
              **GC)
    wte = Tensor(rng.standard_normal((7, 4)).astype(np.float32), requires_grad=True)
    x = Tensor(rng.standard_normal((2, 3, 4)).astype(np.float32))
    y = linear(x, transpose(wte))
    g = rng.standard_normal((2, 3, 7)).astype(np.float32)
    y.backward(g)
    assert wte.grad.flags.c_contiguous
    np.testing.assert_allclose(wte.grad, g.reshape(-1, 7).T @ x.data.reshape(-1, 4), rtol=1e-5, atol=1e-5)
