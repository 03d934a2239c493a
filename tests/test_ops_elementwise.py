"""Elementwise ops: gradients vs float64 central differences, fast path vs ref, broadcasting."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

from scratchgpt.autograd import Tensor, gradcheck
from scratchgpt.ops import add, div, exp, mul, relu, scale, sub, tanh
from scratchgpt.ops import elementwise as E

# Gradient check bound (float64 central differences, h = 1e-6): truncation error ~h² and
# rounding ~1e-16/h, so |analytic - numeric| <= 1e-7 + 1e-6 |numeric| is a tight bound.
GC = dict(atol=1e-7, rtol=1e-6)
# float32 fast path vs float64 ref: one or two roundings of O(1) values
F32 = dict(atol=1e-6, rtol=1e-6)

# pairs of broadcast-compatible shapes: equal, trailing (C,), size-1 axes, scalar-like ()
SHAPE_PAIRS = [((2, 3), (2, 3)), ((2, 3, 4), (4,)), ((2, 1, 4), (3, 1)), ((3,), (2, 3)), ((2, 3), ()),
               ((1, 3), (2, 1))]


def _draw(rng, shape, lo=None):
    x = rng.standard_normal(shape)
    if lo is not None:  # keep away from 0 (division, relu kink)
        x = np.where(np.abs(x) < lo, np.sign(x + 1e-12) * lo, x) + 0.0
    return np.asarray(x)


@given(pair=st.sampled_from(SHAPE_PAIRS), seed=st.integers(0, 2**31 - 1),
       op=st.sampled_from(["add", "sub", "mul", "div"]))
def test_binary_gradcheck_with_broadcasting(pair, seed, op):
    rng = np.random.default_rng(seed)
    a = _draw(rng, pair[0])
    b = _draw(rng, pair[1], lo=0.3 if op == "div" else None)
    fn = {"add": add, "sub": sub, "mul": mul, "div": div}[op]
    gradcheck(fn, [a, b], **GC)


@given(pair=st.sampled_from(SHAPE_PAIRS), seed=st.integers(0, 2**31 - 1),
       op=st.sampled_from(["add", "sub", "mul", "div"]))
def test_binary_fast_matches_ref(pair, seed, op):
    rng = np.random.default_rng(seed)
    a = _draw(rng, pair[0]).astype(np.float32)
    b = _draw(rng, pair[1], lo=0.3).astype(np.float32)
    g = rng.standard_normal(np.broadcast_shapes(a.shape, b.shape)).astype(np.float32)
    fwd, bwd = getattr(E, f"{op}_forward"), getattr(E, f"{op}_backward")
    fwd_r, bwd_r = getattr(E, f"{op}_forward_ref"), getattr(E, f"{op}_backward_ref")
    y, c = fwd(a, b)
    yr, cr = fwd_r(a, b)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, yr, **F32)
    for got, want in zip(bwd(g, c), bwd_r(g, cr)):
        assert got.shape == want.shape
        # gradients of broadcast inputs are sums over up to 6 float32 terms
        np.testing.assert_allclose(got, want, atol=1e-5, rtol=1e-5)


@given(shape=st.sampled_from([(3,), (2, 3), (2, 2, 3)]), seed=st.integers(0, 2**31 - 1),
       op=st.sampled_from(["exp", "tanh", "relu", "scale"]))
def test_unary_gradcheck_and_ref(shape, seed, op):
    rng = np.random.default_rng(seed)
    x = _draw(rng, shape, lo=0.05)  # relu: no element at the kink
    if op == "scale":
        s = float(rng.uniform(-2, 2))
        gradcheck(lambda t: scale(t, s), [x], **GC)
        y, c = E.scale_forward(x.astype(np.float32), s)
        yr, _ = E.scale_forward_ref(x, s)
        np.testing.assert_allclose(y, yr, **F32)
        return
    fn = {"exp": exp, "tanh": tanh, "relu": relu}[op]
    gradcheck(fn, [x], **GC)
    x32 = x.astype(np.float32)
    g = rng.standard_normal(shape).astype(np.float32)
    y, c = getattr(E, f"{op}_forward")(x32)
    yr, cr = getattr(E, f"{op}_forward_ref")(x32)
    np.testing.assert_allclose(y, yr, **F32)
    np.testing.assert_allclose(getattr(E, f"{op}_backward")(g, c), getattr(E, f"{op}_backward_ref")(g, cr), **F32)


def test_broadcast_gradients_reduce_to_input_shapes():
    a = Tensor(np.ones((2, 3, 4), dtype=np.float32), requires_grad=True)
    b = Tensor(np.full((3, 1), 2.0, dtype=np.float32), requires_grad=True)
    mul(a, b).sum().backward()
    assert a.grad.shape == (2, 3, 4) and b.grad.shape == (3, 1)
    np.testing.assert_allclose(a.grad, np.full((2, 3, 4), 2.0))
    np.testing.assert_allclose(b.grad, np.full((3, 1), 8.0))  # 2 * 4 ones per row


def test_scalars_on_either_side_keep_float32():
    x = Tensor(np.arange(3, dtype=np.float32), requires_grad=True)
    for y in (add(x, 1.5), sub(2.0, x), mul(np.float64(3.0), x), div(x, np.array([1.0, 2.0, 4.0])),
              x * 2, 1 - x, -x):
        assert y.dtype == np.float32, y
    y = div(1.0, add(x, 1.0))  # 1 / (x + 1)
    y.sum().backward()
    np.testing.assert_allclose(x.grad, -1.0 / (np.arange(3) + 1.0) ** 2, rtol=1e-6)


def test_scale_rejects_a_tensor_factor():
    with pytest.raises(TypeError, match="scalar"):
        scale(Tensor(np.ones(2)), Tensor(np.ones(2)))
