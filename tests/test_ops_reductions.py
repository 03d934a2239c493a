"""sum / mean: gradients vs central differences, fast path vs float64 ref, axis handling."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

from scratchgpt.autograd import Tensor, gradcheck
from scratchgpt.ops import mean, sum as op_sum
from scratchgpt.ops import reductions as R

# sum/mean are linear: central differences are exact up to rounding, so the bound is tight.
GC = dict(atol=1e-8, rtol=1e-7)

CASES = [((2, 3), None), ((2, 3), 0), ((2, 3), -1), ((2, 3, 4), (0, 2)), ((2, 3, 4), 1), ((4,), 0)]


@given(case=st.sampled_from(CASES), keepdims=st.booleans(), seed=st.integers(0, 2**31 - 1),
       op=st.sampled_from(["sum", "mean"]))
def test_gradcheck(case, keepdims, seed, op):
    shape, axis = case
    x = np.random.default_rng(seed).standard_normal(shape)
    fn = op_sum if op == "sum" else mean
    gradcheck(lambda t: fn(t, axis=axis, keepdims=keepdims), [x], **GC)


@given(case=st.sampled_from(CASES), keepdims=st.booleans(), seed=st.integers(0, 2**31 - 1),
       op=st.sampled_from(["sum", "mean"]))
def test_fast_matches_ref(case, keepdims, seed, op):
    shape, axis = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(np.float32)
    y, c = getattr(R, f"{op}_forward")(x, axis, keepdims)
    yr, cr = getattr(R, f"{op}_forward_ref")(x, axis, keepdims)
    assert y.dtype == np.float32 and y.shape == yr.shape
    np.testing.assert_allclose(y, yr, atol=1e-6, rtol=1e-6)  # sums of <= 24 float32 terms
    g = rng.standard_normal(yr.shape).astype(np.float32)
    dx = getattr(R, f"{op}_backward")(g, c)
    assert dx.shape == shape and dx.flags.c_contiguous and dx.flags.writeable
    np.testing.assert_allclose(dx, getattr(R, f"{op}_backward_ref")(g, cr), atol=1e-7, rtol=1e-6)


def test_mean_gradient_values_and_tensor_methods():
    x = Tensor(np.ones((2, 5), dtype=np.float32), requires_grad=True)
    x.mean().backward()
    np.testing.assert_allclose(x.grad, np.full((2, 5), 0.1), rtol=1e-6)
    x.grad = None
    x.sum(axis=1).sum().backward()
    np.testing.assert_allclose(x.grad, np.ones((2, 5)))


def test_bad_axis_is_a_clear_error():
    with pytest.raises(ValueError, match="axis 3 is out of range"):
        op_sum(Tensor(np.ones((2, 2))), axis=3)
