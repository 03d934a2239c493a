"""softmax / log_softmax: Numba rows vs float64 ref, gradients, log_softmax == log(softmax)."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

from scratchgpt.autograd import Tensor, gradcheck
from scratchgpt.ops import log_softmax, softmax
from scratchgpt.ops.softmax_op import (log_softmax_backward, log_softmax_backward_ref, log_softmax_forward,
                                    log_softmax_forward_ref, softmax_backward, softmax_backward_ref,
                                    softmax_forward, softmax_forward_ref)
from scratchgpt.ops._numba import force_build

GC = dict(atol=1e-7, rtol=1e-6)  # smooth: central differences good to ~1e-9 for |x| <= 5
F32 = dict(atol=1e-6, rtol=1e-5)  # probabilities in [0, 1], a few float32 roundings

CASES = [((4,), -1), ((2, 5), -1), ((2, 5), 0), ((2, 3, 4), 1), ((3, 1, 2), -1)]


@given(case=st.sampled_from(CASES), seed=st.integers(0, 2**31 - 1), log=st.booleans())
def test_gradcheck(case, seed, log):
    shape, axis = case
    x = np.random.default_rng(seed).standard_normal(shape) * 2
    fn = log_softmax if log else softmax
    gradcheck(lambda t: fn(t, axis=axis), [x], **GC)


@given(parallel=st.booleans(), rows=st.integers(1, 20), n=st.integers(1, 70), seed=st.integers(0, 2**31 - 1),
       spread=st.sampled_from([1.0, 10.0, 50.0]), axis=st.sampled_from([0, -1]))
def test_numba_matches_ref_float32(rows, n, seed, spread, axis, parallel):
    with force_build(parallel):  # both builds of every kernel must match the ref
        rng = np.random.default_rng(seed)
        x = (rng.standard_normal((rows, n)) * spread).astype(np.float32)
        g = rng.standard_normal((rows, n)).astype(np.float32)
        y, c = softmax_forward(x, axis)
        yr, cr = softmax_forward_ref(x, axis)
        assert y.dtype == np.float32
        np.testing.assert_allclose(y, yr, **F32)
        np.testing.assert_allclose(softmax_backward(g, c), softmax_backward_ref(g, cr), atol=2e-6, rtol=1e-5)
        y, c = log_softmax_forward(x, axis)
        yr, cr = log_softmax_forward_ref(x, axis)
        # log-probabilities reach -spread*several; relative float32 rounding of the shift
        np.testing.assert_allclose(y, yr, atol=1e-5, rtol=1e-6)
        np.testing.assert_allclose(log_softmax_backward(g, c), log_softmax_backward_ref(g, cr),
                                   atol=1e-5 * np.sqrt(n), rtol=1e-5)


@given(seed=st.integers(0, 2**31 - 1), axis=st.sampled_from([0, 1, -1]))
def test_log_softmax_equals_log_of_softmax(seed, axis):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((3, 6))
    a = Tensor(x, requires_grad=True)
    b = Tensor(x, requires_grad=True)
    r = Tensor(rng.standard_normal((3, 6)))
    ya = log_softmax(a, axis=axis)
    yb_soft = softmax(b, axis=axis)
    np.testing.assert_allclose(ya.data, np.log(yb_soft.data), atol=1e-12)
    (ya * r).sum().backward()
    # d/dx Σ r log(s) through the composition: log's gradient is r / s
    (yb_soft * Tensor(r.data / yb_soft.data)).sum().backward()
    np.testing.assert_allclose(a.grad, b.grad, atol=1e-10)


def test_rows_sum_to_one_and_extreme_logits_are_finite():
    x = np.array([[1000.0, 0.0, -1000.0], [-1e4, -1e4, -1e4]], dtype=np.float32)
    y, _ = softmax_forward(x)
    assert np.all(np.isfinite(y))
    np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-6)
    ly, _ = log_softmax_forward(x)
    assert np.all(np.isfinite(ly)) and ly[0, 0] == 0.0


def test_bad_axis():
    with pytest.raises(ValueError, match="axis 2 is out of range"):
        softmax(Tensor(np.ones((2, 2))), axis=2)
