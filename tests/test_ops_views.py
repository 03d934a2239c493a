"""reshape / transpose / getitem / concat: backward routes every gradient element home."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

from scratchgpt.autograd import Tensor, gradcheck
from scratchgpt.ops import concat, getitem, reshape, transpose
from scratchgpt.ops import views as V

# pure data movement: the numeric gradient is exact up to rounding of the projection sum
GC = dict(atol=1e-8, rtol=1e-7)


@given(seed=st.integers(0, 2**31 - 1),
       case=st.sampled_from([((2, 3, 4), (6, 4)), ((2, 3, 4), (4, -1)), ((6,), (2, 1, 3)), ((2, 6), (12,))]))
def test_reshape(seed, case):
    shape, new = case
    x = np.random.default_rng(seed).standard_normal(shape)
    gradcheck(lambda t: reshape(t, new), [x], **GC)
    y, c = V.reshape_forward(x.astype(np.float32), new)
    np.testing.assert_array_equal(y, V.reshape_forward_ref(x.astype(np.float32), new)[0])


@given(seed=st.integers(0, 2**31 - 1),
       case=st.sampled_from([((2, 3), None), ((2, 3, 4), (0, 2, 1)), ((2, 3, 4), (2, 0, 1)), ((2, 3, 4), None)]))
def test_transpose(seed, case):
    shape, axes = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    gradcheck(lambda t: transpose(t, axes), [x], **GC)
    y, c = V.transpose_forward(x, axes)
    yr, cr = V.transpose_forward_ref(x, axes)
    np.testing.assert_array_equal(y, yr)
    g = rng.standard_normal(y.shape)
    np.testing.assert_array_equal(V.transpose_backward(g, c), V.transpose_backward_ref(g, cr))


INDICES = [
    (slice(1, 3),),
    (0,),
    (Ellipsis, 1),
    (slice(None), None, slice(0, 4, 2)),
    (np.array([0, 2, 0]),),                 # repeated rows: gradients must add up
    (np.array([1, 1]), np.array([0, 0])),   # the same element twice
    (np.array([[True, False, True, False], [False, False, True, True], [True, True, True, True]]),),
]


@given(seed=st.integers(0, 2**31 - 1), k=st.integers(0, len(INDICES) - 1))
def test_getitem_basic_and_advanced(seed, k):
    index = INDICES[k]
    index = index[0] if len(index) == 1 else index
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((3, 4))
    gradcheck(lambda t: getitem(t, index), [x], **GC)
    y, c = V.getitem_forward(x.astype(np.float32), index)
    yr, cr = V.getitem_forward_ref(x, index)
    np.testing.assert_allclose(y, yr, rtol=1e-7)
    g = rng.standard_normal(np.shape(yr)).astype(np.float32)
    np.testing.assert_allclose(V.getitem_backward(g, c), V.getitem_backward_ref(g, cr), atol=1e-6, rtol=1e-6)


def test_getitem_repeated_index_accumulates():
    x = Tensor(np.zeros(4, dtype=np.float32), requires_grad=True)
    x[np.array([1, 1, 3])].sum().backward()
    np.testing.assert_array_equal(x.grad, [0, 2, 0, 1])


@given(seed=st.integers(0, 2**31 - 1), axis=st.sampled_from([0, 1, -1]), n=st.integers(1, 3))
def test_concat(seed, axis, n):
    rng = np.random.default_rng(seed)
    shapes = []
    for i in range(n):
        s = [2, 3]
        s[axis] = 1 + i
        shapes.append(tuple(s))
    xs = [rng.standard_normal(s) for s in shapes]
    gradcheck(lambda *ts: concat(list(ts), axis), xs, **GC)
    y, c = V.concat_forward([a.astype(np.float32) for a in xs], axis)
    yr, cr = V.concat_forward_ref(xs, axis)
    np.testing.assert_allclose(y, yr, rtol=1e-7)
    g = rng.standard_normal(y.shape)
    for got, want in zip(V.concat_backward(g, c), V.concat_backward_ref(g, cr)):
        np.testing.assert_array_equal(got, want)


def test_views_compose_and_bad_input():
    x = Tensor(np.arange(6, dtype=np.float32), requires_grad=True)
    y = x.reshape(2, 3).T[1:]  # (2, 2): rows 1..2 of the transpose
    (y * Tensor(np.array([[1.0, 2.0], [3.0, 4.0]], dtype=np.float32))).sum().backward()
    np.testing.assert_array_equal(x.grad, [0, 1, 3, 0, 2, 4])
    with pytest.raises(ValueError, match="not a permutation"):
        transpose(Tensor(np.ones((2, 3))), (0, 0))
    with pytest.raises(ValueError, match="at least one"):
        concat([], 0)
