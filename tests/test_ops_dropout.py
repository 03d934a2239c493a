"""dropout: seeded, mean-preserving, identity when off, gradient = the same mask, clear errors."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

from scratchgpt.autograd import Tensor, gradcheck
from scratchgpt.errors import ConfigError
from scratchgpt.ops import dropout
from scratchgpt.ops.dropout_op import dropout_backward, dropout_backward_ref, dropout_forward, dropout_forward_ref
from scratchgpt.ops._numba import force_build

GC = dict(atol=1e-8, rtol=1e-7)  # for a fixed mask dropout is linear: numeric grad exact


@given(shape=st.sampled_from([(5,), (2, 3), (2, 2, 3)]), p=st.sampled_from([0.1, 0.5, 0.9]),
       seed=st.integers(0, 2**31 - 1))
def test_gradcheck_fixed_seed(shape, p, seed):
    x = np.random.default_rng(seed).standard_normal(shape)
    # an int seed makes every call draw the same mask, so central differences see a fixed function
    gradcheck(lambda t: dropout(t, p, rng=seed), [x], **GC)


@given(parallel=st.booleans(), n=st.integers(1, 500), p=st.floats(0.0, 0.95), seed=st.integers(0, 2**31 - 1))
def test_numba_matches_ref(n, p, seed, parallel):
    with force_build(parallel):  # both builds of every kernel must match the ref
        rng = np.random.default_rng(seed)
        x = rng.standard_normal(n).astype(np.float32)
        g = rng.standard_normal(n).astype(np.float32)
        y, c = dropout_forward(x, p, np.random.default_rng(seed))
        yr, cr = dropout_forward_ref(x, p, np.random.default_rng(seed))
        np.testing.assert_allclose(y, yr, atol=1e-7, rtol=1e-6)  # one float32 multiply
        np.testing.assert_allclose(dropout_backward(g, c), dropout_backward_ref(g, cr), atol=1e-7, rtol=1e-6)
        assert np.array_equal(y == 0, yr == 0)  # the very same mask


def test_seeded_reproducibility_and_different_seeds_differ():
    x = Tensor(np.ones((64, 64), dtype=np.float32))
    a = dropout(x, 0.3, rng=7).data
    b = dropout(x, 0.3, rng=7).data
    c = dropout(x, 0.3, rng=8).data
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    g1, g2 = np.random.default_rng(5), np.random.default_rng(5)
    first = dropout(x, 0.3, rng=g1).data
    np.testing.assert_array_equal(first, dropout(x, 0.3, rng=g2).data)  # same seed, same mask
    assert not np.array_equal(first, dropout(x, 0.3, rng=g1).data)  # a Generator advances


def test_mean_preserved_and_drop_rate():
    # 250k elements, fixed seed: the kept fraction has std sqrt(p(1-p)/n) ~ 1e-3, so 5e-3 is ~5 sigma
    x = Tensor(np.ones((500, 500), dtype=np.float32))
    p = 0.25
    y = dropout(x, p, rng=123).data
    assert abs(float((y == 0).mean()) - p) < 5e-3
    assert abs(float(y.mean()) - 1.0) < 5e-3 / (1 - p)
    np.testing.assert_allclose(y[y != 0], 1.0 / (1 - p), rtol=1e-6)


def test_gradient_uses_the_forward_mask():
    x = Tensor(np.arange(1, 101, dtype=np.float32), requires_grad=True)
    y = dropout(x, 0.5, rng=3)
    y.sum().backward()
    kept = y.data != 0
    np.testing.assert_allclose(x.grad[kept], 2.0)
    np.testing.assert_array_equal(x.grad[~kept], 0.0)


def test_identity_when_off():
    x = Tensor(np.ones((3, 3), dtype=np.float32), requires_grad=True)
    assert dropout(x, 0.0, rng=1) is x
    assert dropout(x, 0.7, rng=1, training=False) is x
    y, cache = dropout_forward(x.data, 0.0)
    assert y is x.data and cache is None


@pytest.mark.parametrize("p", [-0.1, 1.0, 1.5, float("nan"), "0.5", None])
def test_bad_p_is_a_clear_error(p):
    with pytest.raises(ConfigError, match="p must be"):
        dropout(Tensor(np.ones(3)), p, rng=0)


def test_bad_rng_is_a_clear_error():
    with pytest.raises(ConfigError, match="rng must be"):
        dropout(Tensor(np.ones(3)), 0.5, rng="seed")
