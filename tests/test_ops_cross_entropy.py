"""Fused softmax cross-entropy with ignore_index: fast path vs reference, gradients,
composition with log-softmax + gather, ignore_index semantics, errors, torch parity."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scratchgpt.autograd import Tensor, gradcheck
from scratchgpt.errors import ConfigError, DataError
from scratchgpt.ops.cross_entropy_op import (
    cross_entropy,
    cross_entropy_backward,
    cross_entropy_backward_ref,
    cross_entropy_forward,
    cross_entropy_forward_ref,
)

# float32 fast path vs float64 reference (abs + rel * |ref|): the loss is a mean of
# log-sum-exps of O(10) logits; the SIMD exp is ~1 ulp, sums run in float64.
F32_ATOL, F32_RTOL = 1e-5, 1e-5
# gradcheck bound (float64 central differences), the stated relative error bound for this op.
GRAD_ATOL, GRAD_RTOL = 1e-7, 1e-5
IGNORE = -100


@st.composite
def ce_case(draw, max_rows=6, max_v=40):
    shape = tuple(draw(st.lists(st.integers(1, max_rows), min_size=1, max_size=2)))
    V = draw(st.integers(1, max_v))
    seed = draw(st.integers(0, 2**31 - 1))
    scale = draw(st.sampled_from([0.1, 1.0, 10.0]))
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal(shape + (V,)) * scale
    targets = rng.integers(0, V, size=shape)
    p_ignore = draw(st.sampled_from([0.0, 0.3, 1.0]))
    targets[rng.random(shape) < p_ignore] = IGNORE
    reduction = draw(st.sampled_from(["mean", "sum"]))
    return logits, targets, reduction


def composition(logits, targets, reduction):
    """-log_softmax gathered at the targets, averaged (or summed) over non-ignored positions."""
    z = logits.reshape(-1, logits.shape[-1])
    t = targets.reshape(-1)
    m = z.max(axis=1, keepdims=True)
    log_softmax = z - m - np.log(np.exp(z - m).sum(axis=1, keepdims=True))
    keep = t != IGNORE
    nll = -log_softmax[np.arange(len(t))[keep], t[keep]]
    if reduction == "sum":
        return nll.sum()
    return nll.mean() if keep.any() else 0.0


@given(ce_case())
def test_fast_path_matches_reference_float32(case):
    logits, targets, reduction = case
    ref, cache_ref = cross_entropy_forward_ref(logits, targets, IGNORE, reduction)
    loss, cache = cross_entropy_forward(logits.astype(np.float32), targets, IGNORE, reduction)
    assert loss.dtype == np.float32 and loss.shape == ()
    np.testing.assert_allclose(loss, ref, atol=F32_ATOL, rtol=F32_RTOL)
    for dloss in (1.0, 0.5):
        g = cross_entropy_backward(np.float32(dloss), cache)
        assert g.dtype == np.float32 and g.shape == logits.shape
        np.testing.assert_allclose(g, cross_entropy_backward_ref(dloss, cache_ref), atol=1e-6, rtol=1e-5)


@given(ce_case())
def test_fused_equals_log_softmax_gather(case):
    logits, targets, reduction = case
    loss, _ = cross_entropy_forward(logits, targets, IGNORE, reduction)
    assert loss.dtype == np.float64
    np.testing.assert_allclose(loss, composition(logits, targets, reduction), atol=1e-12, rtol=1e-10)


@settings(max_examples=10)
@given(ce_case(max_rows=4, max_v=12))
def test_gradcheck(case):
    logits, targets, reduction = case
    report = gradcheck(lambda z: cross_entropy(z, targets, IGNORE, reduction), [logits],
                       atol=GRAD_ATOL, rtol=GRAD_RTOL)
    assert report["ok"]


@given(ce_case())
def test_ignored_rows_have_no_effect(case):
    logits, targets, reduction = case
    ignored = targets == IGNORE
    changed = logits.copy()
    changed[ignored] += 100.0 * np.random.default_rng(0).standard_normal(changed[ignored].shape)
    a, _ = cross_entropy_forward(logits, targets, IGNORE, reduction)
    b, cache = cross_entropy_forward(changed, targets, IGNORE, reduction)
    np.testing.assert_allclose(a, b, atol=1e-12, rtol=1e-12)
    g = cross_entropy_backward(1.0, cache)
    assert np.all(g[ignored] == 0.0)
    # each kept row's gradient is w * (p - onehot): it sums to 0 over the vocabulary
    np.testing.assert_allclose(g.sum(axis=-1), 0.0, atol=1e-12)


# ---------------------------------------------------------------- per-target weights (weighted loss mask)
def _weights_for(targets, seed):
    rng = np.random.default_rng(seed)
    w = rng.choice([0.0, 1.0, 1.0, 3.0, 0.5], size=targets.shape)
    return w


@given(ce_case())
def test_weighted_fast_path_matches_reference(case):
    logits, targets, reduction = case
    w = _weights_for(targets, logits.size)
    ref, cache_ref = cross_entropy_forward_ref(logits, targets, IGNORE, reduction, weights=w)
    loss, cache = cross_entropy_forward(logits.astype(np.float32), targets, IGNORE, reduction, weights=w)
    np.testing.assert_allclose(loss, ref, atol=F32_ATOL, rtol=F32_RTOL)
    np.testing.assert_allclose(cross_entropy_backward(np.float32(0.5), cache), cross_entropy_backward_ref(0.5, cache_ref),
                               atol=1e-6, rtol=1e-5)
    # the definition: a weighted mean (sum) of the per-row losses of the unweighted op
    per_row, _ = cross_entropy_forward_ref(logits, targets, IGNORE, "sum", weights=None)
    rows = [cross_entropy_forward_ref(logits.reshape(-1, logits.shape[-1])[i:i + 1], targets.reshape(-1)[i:i + 1],
                                      IGNORE, "sum")[0] for i in range(targets.size)]
    om = np.where(targets.reshape(-1) != IGNORE, w.reshape(-1), 0.0)
    want = float(np.dot(om, rows))
    if reduction == "mean":
        want = want / om.sum() if om.sum() else 0.0
    np.testing.assert_allclose(ref, want, atol=1e-12, rtol=1e-10)
    np.testing.assert_allclose(per_row, float(np.sum(rows)), atol=1e-12, rtol=1e-10)


@given(ce_case())
def test_unit_weights_are_the_plain_loss_bit_for_bit(case):
    logits, targets, reduction = case
    z = logits.astype(np.float32)
    a, ca = cross_entropy_forward(z, targets, IGNORE, reduction)
    b, cb = cross_entropy_forward(z, targets, IGNORE, reduction, weights=np.ones(targets.shape))
    assert a == b and np.array_equal(cross_entropy_backward(1.0, ca), cross_entropy_backward(1.0, cb))


@settings(max_examples=10)
@given(ce_case(max_rows=4, max_v=12))
def test_weighted_gradcheck(case):
    logits, targets, reduction = case
    w = _weights_for(targets, 7)
    report = gradcheck(lambda z: cross_entropy(z, targets, IGNORE, reduction, weights=w), [logits],
                       atol=GRAD_ATOL, rtol=GRAD_RTOL)
    assert report["ok"]


def test_weights_scale_rows_and_are_checked():
    z = np.log(np.array([[1.0, 1.0, 2.0], [3.0, 1.0, 1e-300]]))
    t = np.array([2, 0])
    loss, cache = cross_entropy_forward(z, t, weights=np.array([3.0, 1.0]))
    np.testing.assert_allclose(loss, (3 * np.log(2.0) + np.log(4 / 3)) / 4, rtol=1e-12)
    g = cross_entropy_backward(1.0, cache)
    np.testing.assert_allclose(g[0], 3 / 4 * np.array([0.25, 0.25, -0.5]), atol=1e-12)
    zero, _ = cross_entropy_forward(z, t, weights=np.zeros(2))
    assert zero == 0.0
    with pytest.raises(DataError, match="weights shape"):
        cross_entropy_forward(z, t, weights=np.ones(3))
    with pytest.raises(DataError, match=">= 0"):
        cross_entropy_forward(z, t, weights=np.array([1.0, -1.0]))


def test_all_ignored_gives_zero_loss_and_zero_grad():
    logits = Tensor(np.random.default_rng(1).standard_normal((2, 3, 5)).astype(np.float32), requires_grad=True)
    targets = np.full((2, 3), IGNORE)
    loss = cross_entropy(logits, targets)
    assert loss.item() == 0.0 and loss.dtype == np.float32
    loss.backward()
    assert logits.grad.shape == (2, 3, 5) and np.all(logits.grad == 0.0)


def test_custom_ignore_index_and_mean_weights():
    z = np.log(np.array([[1.0, 1.0, 2.0], [3.0, 1.0, 0.0 + 1e-300], [1.0, 1.0, 1.0]]))
    t = np.array([2, 0, 7])                                   # row 2 ignored via ignore_index=7
    loss, cache = cross_entropy_forward(z, t, ignore_index=7)
    # row 0: -log(2/4); row 1: -log(3/4); mean over the 2 kept rows
    np.testing.assert_allclose(loss, (np.log(2.0) + np.log(4 / 3)) / 2, rtol=1e-12)
    g = cross_entropy_backward(1.0, cache)
    np.testing.assert_allclose(g[0], np.array([0.25, 0.25, 0.5 - 1.0]) / 2, atol=1e-12)
    np.testing.assert_allclose(g[2], 0.0)


def test_large_logits_are_stable():
    z = np.array([[1e4, 1e4 - 1.0, -1e4], [-5e3, 0.0, 5e3]], dtype=np.float32)
    t = np.array([1, 2])
    loss, cache = cross_entropy_forward(z, t)
    ref, _ = cross_entropy_forward_ref(z, t)
    assert np.isfinite(loss)
    np.testing.assert_allclose(loss, ref, rtol=1e-5)
    assert np.all(np.isfinite(cross_entropy_backward(1.0, cache)))


def test_float32_at_training_size():
    """A GPT-sized row count and vocabulary (fast path exercises the SIMD exp over long rows)."""
    rng = np.random.default_rng(2)
    z = (rng.standard_normal((150, 4096)) * 3).astype(np.float32)   # > 64 rows: multi-row chunks
    t = rng.integers(0, 4096, 150)
    t[::5] = IGNORE
    loss, cache = cross_entropy_forward(z, t)
    ref, cache_ref = cross_entropy_forward_ref(z, t)
    np.testing.assert_allclose(loss, ref, atol=F32_ATOL, rtol=F32_RTOL)
    np.testing.assert_allclose(cross_entropy_backward(1.0, cache), cross_entropy_backward_ref(1.0, cache_ref),
                               atol=1e-8, rtol=1e-4)


def test_no_grad_forward_matches():
    from scratchgpt.autograd import no_grad
    rng = np.random.default_rng(3)
    z = rng.standard_normal((4, 9)).astype(np.float32)
    t = rng.integers(0, 9, 4)
    with no_grad():
        a = cross_entropy(Tensor(z, requires_grad=True), t)
    b = cross_entropy(Tensor(z, requires_grad=True), t)
    assert not a.requires_grad and a.item() == b.item()


def test_bad_input_errors():
    z = np.zeros((2, 3, 5), np.float32)
    with pytest.raises(DataError, match=r"targets must be in \[0, 5\).*found 5"):
        cross_entropy_forward(z, np.array([[0, 1, 5], [0, 0, 0]]))
    with pytest.raises(DataError, match=r"found -1"):
        cross_entropy_forward(z, np.array([[0, 1, -1], [0, 0, 0]]))
    with pytest.raises(DataError, match="targets shape"):
        cross_entropy_forward(z, np.zeros((2, 4), int))
    with pytest.raises(DataError, match="integer"):
        cross_entropy_forward(z, np.zeros((2, 3)))
    with pytest.raises(ConfigError, match="reduction"):
        cross_entropy_forward(z, np.zeros((2, 3), int), reduction="max")


def test_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    z = (rng.standard_normal((3, 5, 50)) * 2).astype(np.float32)
    t = rng.integers(0, 50, (3, 5))
    t[0, :2] = IGNORE
    for reduction in ("mean", "sum"):
        loss, cache = cross_entropy_forward(z, t, IGNORE, reduction)
        g = cross_entropy_backward(1.0, cache)
        tz = torch.tensor(z, requires_grad=True)
        tl = torch.nn.functional.cross_entropy(tz.reshape(-1, 50), torch.tensor(t).reshape(-1),
                                               ignore_index=IGNORE, reduction=reduction)
        tl.backward()
        np.testing.assert_allclose(loss, tl.item(), atol=1e-5, rtol=1e-5)
        np.testing.assert_allclose(g, tz.grad.numpy(), atol=1e-7, rtol=1e-5)


# ---------------------------------------------------------------- the SIMD exp / max helpers
# (scratchgpt/ops/_vexp.py; shared by the softmax kernels of attention and cross-entropy)
from numba import njit  # noqa: E402

from scratchgpt.ops._vexp import exp_affine_sum, exp_affine_sum_inplace, exp_inplace, row_max  # noqa: E402


@njit(cache=True)
def _run_vexp(x, a, b):
    ibuf = np.empty(x.shape[0], dtype=np.int32)
    y1 = x.copy()
    exp_inplace(y1, ibuf)
    y2 = np.empty_like(x)
    s2 = exp_affine_sum(x, y2, a, b, ibuf)
    y3 = x.copy()
    s3 = exp_affine_sum_inplace(y3, a, b, ibuf)
    acc = np.empty(16, dtype=x.dtype)
    return y1, y2, s2, y3, s3, row_max(x, acc)


@given(st.lists(st.floats(-120.0, 100.0, width=32), min_size=1, max_size=70),
       st.sampled_from([1.0, 0.125]), st.floats(-5.0, 5.0, width=32))
def test_simd_exp_and_max_match_numpy(values, a, b):
    x = np.array(values, dtype=np.float32)
    y1, y2, s2, y3, s3, m = _run_vexp(x, np.float32(a), np.float32(b))
    x64 = x.astype(np.float64)
    in_range = x64 < 88.37                             # above: saturates at exp(88.376)
    # about 1 ulp in the normal float32 range; exactly 0 below it (exp(-87.34) = 1.2e-38)
    np.testing.assert_allclose(y1[in_range], np.exp(x64[in_range]), rtol=3e-7, atol=1.2e-38)
    assert np.all(y1[x64 < -87.34] == 0.0)
    assert np.all(np.isfinite(y1)) and np.all(y1[~in_range] >= 2.3e38)
    # shifted: the float32 argument v = a*x - b itself carries up to one ulp of v of rounding,
    # which exp turns into a relative error of |v| * 2^-23 on top of the ~1 ulp of exp
    v = np.float64(a) * x64 - np.float64(b)
    ok = v < 88.37
    shifted = np.exp(np.minimum(v, 88.37))
    err = np.abs(y2[ok] - shifted[ok])
    assert np.all(err <= (3e-7 + np.abs(v[ok]) * 2.0**-23) * shifted[ok] + 1.2e-38)
    np.testing.assert_array_equal(y2, y3)
    np.testing.assert_allclose([s2, s3], y2.astype(np.float64).sum(), rtol=1e-12)
    assert m == x.max()


def test_simd_exp_special_values():
    x = np.array([-np.inf, np.nan, 0.0, 1.0, -1.0, 88.0, -88.0, 1000.0], dtype=np.float32)
    y1 = _run_vexp(x, np.float32(1.0), np.float32(0.0))[0]
    assert y1[0] == 0.0 and np.isnan(y1[1]) and y1[2] == 1.0
    np.testing.assert_allclose(y1[3:6], np.exp(np.array([1.0, -1.0, 88.0])), rtol=3e-7)
    assert y1[6] == 0.0                                # below the normal range flushes to 0
    assert np.isfinite(y1[7]) and y1[7] > 2.3e38       # saturates instead of inf
