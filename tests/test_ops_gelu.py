"""gelu (tanh approximation): Numba path vs float64 ref, gradients vs central differences."""
import math

import numpy as np
from hypothesis import given, strategies as st

from scratchgpt.autograd import gradcheck
from scratchgpt.ops import gelu
from scratchgpt.ops.gelu_op import gelu_backward, gelu_backward_ref, gelu_forward, gelu_forward_ref
from scratchgpt.ops._numba import force_build

GC = dict(atol=1e-7, rtol=1e-6)  # smooth function: central differences good to ~1e-10
F32 = dict(atol=1e-6, rtol=1e-5)  # cancellation-free float32 formula: a few ulps relative


@given(shape=st.sampled_from([(3,), (2, 4), (2, 2, 3)]), seed=st.integers(0, 2**31 - 1),
       spread=st.sampled_from([0.5, 2.0, 5.0]))
def test_gradcheck(shape, seed, spread):
    x = np.random.default_rng(seed).standard_normal(shape) * spread
    gradcheck(gelu, [x], **GC)


@given(parallel=st.booleans(), n=st.integers(1, 3000), seed=st.integers(0, 2**31 - 1), spread=st.sampled_from([0.5, 3.0, 10.0]))
def test_numba_matches_ref_float32(n, seed, spread, parallel):
    with force_build(parallel):  # both builds of every kernel must match the ref
        rng = np.random.default_rng(seed)
        x = (rng.standard_normal(n) * spread).astype(np.float32)
        y, cache = gelu_forward(x)
        yr, cr = gelu_forward_ref(x)
        assert y.dtype == np.float32
        np.testing.assert_allclose(y, yr, **F32)
        g = rng.standard_normal(n).astype(np.float32)
        np.testing.assert_allclose(gelu_backward(g, cache), gelu_backward_ref(g, cr), **F32)


def test_close_to_exact_erf_gelu():
    # independent check of the formula: the tanh form approximates x Φ(x) = ½ x (1 + erf(x/√2))
    # to within ~5e-4 everywhere (Hendrycks & Gimpel 2016)
    x = np.linspace(-6, 6, 240).reshape(3, 80)
    y, _ = gelu_forward(x)
    exact = 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))
    assert y.shape == x.shape
    assert np.max(np.abs(y - exact)) < 5e-4
    assert np.max(np.abs(y[np.abs(x) > 5] - exact[np.abs(x) > 5])) < 1e-5  # tails: 0 and x


@given(parallel=st.booleans(), n=st.integers(1, 5000), seed=st.integers(0, 2**31 - 1),
       spread=st.sampled_from([0.5, 3.0, 10.0]))
def test_fused_forward_matches_ref_float64(n, seed, spread, parallel):
    # the fused kernel works in chunks of _CHUNK (2048) elements: n up to 5000 covers 1-3 chunks
    # and a ragged last chunk; float64 takes the exact np.exp inside the kernel
    with force_build(parallel):
        rng = np.random.default_rng(seed)
        x = rng.standard_normal(n) * spread
        y, cache = gelu_forward(x)
        yr, cr = gelu_forward_ref(x)
        assert y.dtype == np.float64
        np.testing.assert_allclose(y, yr, atol=1e-13, rtol=1e-12)
        g = rng.standard_normal(n)
        np.testing.assert_allclose(gelu_backward(g, cache), gelu_backward_ref(g, cr), atol=1e-13, rtol=1e-12)


def test_fused_forward_equals_three_pass_float32():
    # the SIMD exp inside the fused kernel vs NumPy's np.exp in the old 3-pass forward: a few ulps
    from benchmark_modules import load_benchmark
    gelu_forward_3pass = load_benchmark("gelu_versions").gelu_forward_3pass
    x = (np.random.default_rng(3).standard_normal((7, 1000)) * 4).astype(np.float32)
    for parallel in (False, True):
        with force_build(parallel):
            y, (_, e, _) = gelu_forward(x)
            y3, (_, e3, _) = gelu_forward_3pass(x)
            np.testing.assert_allclose(y, y3, atol=1e-6, rtol=1e-5)
            np.testing.assert_allclose(e, e3, atol=1e-7, rtol=1e-6)
