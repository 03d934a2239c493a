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


# ----------------------------------------------------------------------------- act_quant (int8 activations)
from scratchgpt.ops.quantized_matmul import (int4_act_linear_ref, int8_act_linear_ref,  # noqa: E402
                                             quantize_rows, quantize_rows_ref)


@given(m=st.integers(1, ROWS_MAX_M), k=st.integers(1, 100), scale=st.sampled_from([1e-3, 1.0, 1e4]),
       seed=st.integers(0, 2**31 - 1))
def test_quantize_rows_kernel_equals_ref_and_half_step_bound(m, k, scale, seed):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((m, k)) * scale).astype(np.float32)
    x[:, : k // 3] = 0.0 if seed % 2 else x[:, : k // 3]                # some all-zero blocks
    nb = -(-k // 32)
    xq = np.full((ROWS_MAX_M, nb * 32), 99, np.int8)
    dx = np.full((ROWS_MAX_M, nb), np.nan, np.float32)
    quantize_rows(x, xq, dx)
    want_q, want_d = quantize_rows_ref(x)
    np.testing.assert_array_equal(xq[:m], want_q)                      # the same integers, bit for bit
    np.testing.assert_array_equal(dx[:m], want_d)
    assert np.abs(want_q).max() <= 127 and not want_q[:, k:].any()      # zero padding past K
    x_hat = (want_q.reshape(m, nb, 32) * want_d.astype(np.float64)[:, :, None]).reshape(m, -1)[:, :k]
    step = np.repeat(want_d.astype(np.float64), 32, axis=1)[:, :k]
    # half a step, plus float32 rounding of x / d (a relative 2^-24 of |x|)
    assert np.all(np.abs(x_hat - x) <= 0.5 * step * (1 + 1e-6) + 1e-7 * np.abs(x) + 1e-38)


@pytest.mark.parametrize("bits", [8, 4])
@given(m=st.sampled_from([1, 2, 3, ROWS_MAX_M]), k=st.integers(1, 150), n=st.integers(1, 70),
       bias=st.booleans(), seed=st.integers(0, 2**31 - 1), data=st.data())
def test_act_quant_kernel_matches_ref_and_weight_only_within_bound(bits, m, k, n, bias, seed, data):
    """Kernel vs ``int*_act_linear_ref`` (same integers, float64 sums): the float32 rounding of
    the kernel only. And the act ref vs the weight-only ref: each x moves by at most dx/2, so an
    output moves by at most Σ_k dx/2 · |W~[k, n]| (a hard bound, not a statistical one)."""
    g = data.draw(GROUPS[bits])
    rng = np.random.default_rng(seed)
    w = weights(rng, k, n, "outliers")
    x = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal(n).astype(np.float32) if bias else None
    packed, s = quant(bits, w, g)
    fast, ref, wo_ref = ((int8_linear, int8_act_linear_ref, int8_linear_ref) if bits == 8
                         else (int4_linear, int4_act_linear_ref, int4_linear_ref))
    outs = []
    for parallel in (False, True):
        with force_build(parallel):
            outs.append(fast(x, packed, s, b, act_quant=True))
    np.testing.assert_array_equal(outs[0], outs[1])                   # serial == parallel, bit for bit
    want = ref(x, packed, s, b)
    w_hat = deq(bits, packed, s, k)
    _, dx = quantize_rows_ref(x)
    x_hat = x + 0.5 * np.repeat(dx.astype(np.float64), 32, axis=1)[:, :k]   # |x| + dx/2 bounds |x_hat|
    tol = kernel_tol(np.abs(x_hat), w_hat, k) + (0 if b is None else 2 * np.abs(b) * 1e-7)
    assert np.all(np.abs(outs[0] - want) <= tol)
    step = 0.5 * np.repeat(dx.astype(np.float64), 32, axis=1)[:, :k]       # (M, K): dx/2 per element
    assert np.all(np.abs(want - wo_ref(x, packed, s, b)) <= step @ np.abs(w_hat) * (1 + 1e-9) + 1e-30)


def test_act_quant_rows_do_not_depend_on_the_batch_and_nan_propagates():
    rng = np.random.default_rng(0)
    w = rng.standard_normal((96, 40)).astype(np.float32)
    q, s = quantize_int8(w)
    x = rng.standard_normal((5, 96)).astype(np.float32)
    together = int8_linear(x, q, s, act_quant=True)
    for r in range(5):
        np.testing.assert_array_equal(int8_linear(x[r:r + 1], q, s, act_quant=True)[0], together[r])
    x[2, 40] = np.nan
    got = int8_linear(x, q, s, act_quant=True)
    assert np.isnan(got[2]).all() and np.isfinite(got[[0, 1, 3, 4]]).all()
    np.testing.assert_array_equal(got[[0, 1, 3, 4]], together[[0, 1, 3, 4]])


def test_int_dot_intrinsic_equals_ref_and_uses_pmaddwd():
    from numba import njit

    from scratchgpt.ops.int_dot import HAS_PMADDWD_512, dot4_q8, dot4_ref

    @njit(cache=False)
    def call(xq, dx, w, dw):
        xa, da, wa, sa = xq.ctypes.data, dx.ctypes.data, w.ctypes.data, dw.ctypes.data
        ws, ss = w.strides[0], dw.strides[0]
        return dot4_q8(xa, da, wa, wa + ws, wa + 2 * ws, wa + 3 * ws, sa, sa + ss, sa + 2 * ss, sa + 3 * ss,
                       dx.shape[0])

    rng = np.random.default_rng(1)
    nb = 5
    xq = rng.integers(-127, 128, 32 * nb).astype(np.int8)
    w = rng.integers(-127, 128, (4, 32 * nb)).astype(np.int8)
    dx = rng.random(nb).astype(np.float32)
    dw = rng.random((4, nb)).astype(np.float32)
    got = np.array(call(xq, dx, w, dw))
    want = dot4_ref(xq, dx, w, dw)
    assert np.all(np.abs(got - want) <= 8 * nb * 32 * 127 * 127 * np.finfo(np.float32).eps * np.abs(dw * dx).max())
    asm = "\n".join(call.inspect_asm().values()).lower()
    if HAS_PMADDWD_512:                 # one multiply-add instruction per 32 products
        assert "vpmaddwd" in asm and "vpmulld" not in asm
