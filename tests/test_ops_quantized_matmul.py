"""int8 / int4 weight-only quantization: error bound, packed layout, kernels vs float64 ref."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

from scratchgpt.errors import ConfigError
from scratchgpt.ops._numba import force_build
from scratchgpt.ops.quantized_matmul import (
    BLAS_MIN_ROWS, ROWS_MAX_M, INT4_QMAX, INT8_QMAX, dequantize_int4_ref, dequantize_int8_ref, int4_linear,
    int4_linear_ref, int8_linear, int8_linear_ref, pack_int4_ref, quantize_int4, quantize_int8,
    unpack_int4_ref)

GROUPS = {8: st.sampled_from([32, 64, 96]), 4: st.sampled_from([32, 64, 128])}


def weights(rng, k, n, scale_kind):
    w = rng.standard_normal((k, n))
    if scale_kind == "outliers":        # one large value per column: the rest of its group gets coarse
        w[rng.integers(0, k, n), np.arange(n)] *= 50
    elif scale_kind == "zeros":         # whole zero groups: scale 0 must give exact zeros
        w[: k // 2] = 0.0
    return w.astype(np.float32)


def quant(bits, w, g):
    return quantize_int8(w, g) if bits == 8 else quantize_int4(w, g)


def deq(bits, packed, s, k):
    return dequantize_int8_ref(packed, s, k) if bits == 8 else dequantize_int4_ref(packed, s, k)


@given(bits=st.sampled_from([8, 4]), k=st.integers(1, 130), n=st.integers(1, 9),
       kind=st.sampled_from(["normal", "outliers", "zeros"]), seed=st.integers(0, 2**31 - 1),
       data=st.data())
def test_dequantize_error_is_at_most_half_a_step(bits, k, n, kind, seed, data):
    g = data.draw(GROUPS[bits])
    w = weights(np.random.default_rng(seed), k, n, kind)
    packed, s = quant(bits, w, g)
    assert s.dtype == np.float32 and s.shape == (n, -(-k // g))
    w_hat = deq(bits, packed, s, k)                               # (K, N) float64
    assert w_hat.shape == w.shape
    step = np.repeat(s.astype(np.float64), g, axis=1)[:, :k].T   # (K, N): the step d of each element's group
    # d/2 exactly, plus the rounding of one float64 division (|w| * 2^-52 is far below any step)
    assert np.all(np.abs(w_hat - w) <= 0.5 * step + 1e-12 * np.abs(w))
    # the scale is the group's max |w| / QMAX: the largest element of each group is hit exactly
    qmax = INT8_QMAX if bits == 8 else INT4_QMAX
    wt = np.zeros((n, s.shape[1] * g))
    wt[:, :k] = w.T
    amax = np.abs(wt.reshape(n, -1, g)).max(axis=2)
    np.testing.assert_allclose(s, (amax / qmax).astype(np.float32), rtol=0, atol=0)


@given(k=st.integers(1, 100), n=st.integers(1, 6), seed=st.integers(0, 2**31 - 1), data=st.data())
def test_int8_values_and_padding(k, n, seed, data):
    g = data.draw(GROUPS[8])
    w = weights(np.random.default_rng(seed), k, n, "normal")
    q, s = quantize_int8(w, g)
    assert q.dtype == np.int8 and q.shape == (n, s.shape[1] * g) and q.flags.c_contiguous
    assert np.abs(q.astype(int)).max() <= 127
    assert not q[:, k:].any()                                     # padding quantizes to 0


@given(n=st.integers(1, 5), blocks=st.integers(1, 6), seed=st.integers(0, 2**31 - 1))
def test_int4_pack_unpack_round_trip(n, blocks, seed):
    rng = np.random.default_rng(seed)
    q = rng.integers(-8, 8, size=(n, blocks * 32))
    packed = pack_int4_ref(q)
    assert packed.dtype == np.uint8 and packed.shape == (n, blocks * 16)
    np.testing.assert_array_equal(unpack_int4_ref(packed), q)
    # and every byte pattern unpacks to values that pack back to the same byte
    b = rng.integers(0, 256, size=(n, blocks * 16)).astype(np.uint8)
    np.testing.assert_array_equal(pack_int4_ref(unpack_int4_ref(b)), b)


def test_int4_nibble_layout_is_the_documented_one():
    q = (np.arange(64).reshape(1, 64) * 7) % 16 - 8               # values -8..7, two blocks
    packed = pack_int4_ref(q)
    for blk in range(2):                # byte i of block b: q[32b + i] low, q[32b + 16 + i] high
        for i in range(16):
            assert packed[0, 16 * blk + i] == (q[0, 32 * blk + i] + 8) | ((q[0, 32 * blk + 16 + i] + 8) << 4)


def test_group_size_rules():
    w = np.ones((40, 3), np.float32)
    for bad in (0, 8, 16, 33, 48, 288, True, 32.0):
        with pytest.raises(ConfigError):
            quantize_int8(w, bad)
        with pytest.raises(ConfigError):
            quantize_int4(w, bad)
    with pytest.raises(ConfigError):
        quantize_int8(np.ones(4, np.float32))


def kernel_tol(x, w_hat, k):
    """float32 sums of K products, any order (fastmath), vs float64: ~K ulps of Σ|x||w|."""
    mag = np.abs(x).astype(np.float64) @ np.abs(w_hat)
    return 4 * k * np.finfo(np.float32).eps * mag + 1e-30


@pytest.mark.parametrize("parallel", [False, True])
@given(bits=st.sampled_from([8, 4]), m=st.sampled_from([1, 2, 3, ROWS_MAX_M, ROWS_MAX_M + 1, 13, BLAS_MIN_ROWS]),
       k=st.integers(1, 150), n=st.integers(1, 300), bias=st.booleans(),
       seed=st.integers(0, 2**31 - 1), data=st.data())
def test_kernel_matches_ref(parallel, bits, m, k, n, bias, seed, data):
    g = data.draw(GROUPS[bits])
    rng = np.random.default_rng(seed)
    w = weights(rng, k, n, "outliers")
    x = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal(n).astype(np.float32) if bias else None
    packed, s = quant(bits, w, g)
    fast, ref = (int8_linear, int8_linear_ref) if bits == 8 else (int4_linear, int4_linear_ref)
    out = np.full((m, n), np.nan, dtype=np.float32)
    with force_build(parallel):
        got = fast(x, packed, s, b, out=out)
    assert got is out and got.dtype == np.float32
    want = ref(x, packed, s, b)
    tol = kernel_tol(x, deq(bits, packed, s, k), k) + (0 if b is None else 2 * np.abs(b) * 1e-7)
    assert np.all(np.abs(got - want) <= tol)


def test_kernel_refuses_mismatched_input():
    w = np.ones((64, 5), np.float32)
    q, s = quantize_int8(w)
    with pytest.raises(ValueError, match="input features"):
        int8_linear(np.ones((1, 96), np.float32), q, s)
    with pytest.raises(ValueError, match="float32"):
        int8_linear(np.ones((1, 64), np.float64), q, s)
    with pytest.raises(ValueError, match="out must be"):
        int8_linear(np.ones((2, 64), np.float32), q, s, out=np.empty((1, 5), np.float32))
