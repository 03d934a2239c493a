"""layernorm: fused Numba forward/backward vs float64 ref, gradients vs central differences."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

from scratchgpt.autograd import Tensor, gradcheck
from scratchgpt.ops import layernorm
from scratchgpt.ops.layernorm_op import (layernorm_backward, layernorm_backward_ref, layernorm_forward,
                                      layernorm_forward_ref)
from scratchgpt.ops._numba import force_build

# Gradient bound: x is drawn with row spread >= ~0.3 so 1/σ stays moderate; the numeric
# derivative (h = 1e-6) is then good to ~1e-9 and the analytic one to ~1e-14.
GC = dict(atol=1e-7, rtol=1e-6)
# float32 fast path vs float64 ref: normalised outputs are O(|w|) and computed with float64
# row statistics, so a few float32 ulps; dw/db sum over up to 12 rows.
F32 = dict(atol=1e-5, rtol=1e-5)


def _inputs(rng, shape, dt=np.float64):
    C = shape[-1]
    x = rng.standard_normal(shape) * rng.uniform(0.5, 3.0) + rng.uniform(-2, 2)
    return x.astype(dt), rng.standard_normal(C).astype(dt), rng.standard_normal(C).astype(dt)


@given(shape=st.sampled_from([(1, 2), (3, 4), (2, 3, 5), (2, 2, 8)]), seed=st.integers(0, 2**31 - 1),
       bias=st.booleans())
def test_gradcheck(shape, seed, bias):
    x, w, b = _inputs(np.random.default_rng(seed), shape)
    if bias:
        gradcheck(layernorm, [x, w, b], **GC)
    else:
        gradcheck(lambda x_, w_: layernorm(x_, w_, None), [x, w], **GC)


@given(parallel=st.booleans(), rows=st.integers(1, 40), C=st.integers(1, 70), seed=st.integers(0, 2**31 - 1))
def test_numba_matches_ref_float32(rows, C, seed, parallel):
    with force_build(parallel):  # both builds of every kernel must match the ref
        rng = np.random.default_rng(seed)
        x, w, b = _inputs(rng, (rows, C), np.float32)
        y, cache = layernorm_forward(x, w, b)
        yr, cr = layernorm_forward_ref(x, w, b)
        assert y.dtype == np.float32
        np.testing.assert_allclose(y, yr, **F32)
        g = rng.standard_normal((rows, C)).astype(np.float32)
        dx, dw, db = layernorm_backward(g, cache)
        dxr, dwr, dbr = layernorm_backward_ref(g, cr)
        # dx is scaled by 1/σ (up to ~2 here) and sums C terms per row
        np.testing.assert_allclose(dx, dxr, atol=2e-5, rtol=1e-4)
        np.testing.assert_allclose(dw, dwr, atol=1e-5 * rows, rtol=1e-5)
        np.testing.assert_allclose(db, dbr, atol=1e-5 * rows, rtol=1e-5)


def test_caches_row_statistics_and_is_deterministic():
    rng = np.random.default_rng(3)
    x, w, b = _inputs(rng, (37, 16), np.float32)
    y, cache = layernorm_forward(x, w, b)
    x2, _, mean, rstd = cache[:4]
    np.testing.assert_allclose(mean, x.mean(axis=1), atol=1e-5)
    np.testing.assert_allclose(rstd, 1 / np.sqrt(x.var(axis=1) + 1e-5), rtol=1e-5)
    g = rng.standard_normal((37, 16)).astype(np.float32)
    first = layernorm_backward(g, cache)
    again = layernorm_backward(g, cache)
    for a, b_ in zip(first, again):
        np.testing.assert_array_equal(a, b_)  # fixed chunking: bit-identical


def test_constant_rows_do_not_blow_up():
    x = np.full((2, 8), 3.0, dtype=np.float32)
    y, _ = layernorm_forward(x, np.ones(8, np.float32), np.zeros(8, np.float32))
    assert np.all(np.isfinite(y)) and np.allclose(y, 0.0)


def test_shape_errors():
    with pytest.raises(ValueError, match=r"weight must have shape \(4,\)"):
        layernorm(Tensor(np.ones((2, 4))), Tensor(np.ones(3)), Tensor(np.ones(4)))
