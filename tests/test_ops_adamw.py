"""AdamW update op: Numba kernel vs float64 reference, hand-computed steps, Adam special case."""
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from scratchgpt.errors import ConfigError, DataError
from scratchgpt.ops._numba import PARALLEL_MIN_ELEMENTS as _PARALLEL_MIN
from scratchgpt.ops.adamw import adamw_update, adamw_update_ref

# float32 kernel vs float64 reference after one step: |Δp| <= lr (Adam's step is bounded by
# lr), so errors are float32 rounding of p (~6e-8 |p|) plus rounding of m/sqrt(v) (~1e-7 lr).
F32_ATOL, F32_RTOL = 1e-6, 1e-5


@st.composite
def adam_case(draw):
    n = draw(st.sampled_from([1, 3, 17, 1000, _PARALLEL_MIN + 5]))   # serial and parallel kernels
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    p = rng.standard_normal(n)
    g = rng.standard_normal(n) * draw(st.sampled_from([1e-4, 1.0, 100.0]))
    m = rng.standard_normal(n) * 0.1
    v = np.abs(rng.standard_normal(n)) * 0.01
    hyper = dict(
        step=draw(st.integers(1, 1000)),
        lr=draw(st.sampled_from([0.0, 1e-4, 3e-3, 0.1])),
        beta1=draw(st.sampled_from([0.0, 0.9])),
        beta2=draw(st.sampled_from([0.95, 0.999])),
        eps=draw(st.sampled_from([1e-8, 1e-6])),
        weight_decay=draw(st.sampled_from([0.0, 0.01, 0.1])),
    )
    return p, g, m, v, hyper


@given(adam_case())
def test_kernel_matches_reference(case):
    p, g, m, v, hyper = case
    rp, rm, rv = adamw_update_ref(p, g, m, v, **hyper)
    for dt, atol, rtol in ((np.float32, F32_ATOL, F32_RTOL), (np.float64, 1e-14, 1e-12)):
        kp, kg, km, kv = (a.astype(dt) for a in (p, g, m, v))
        adamw_update(kp, kg, km, kv, **hyper)
        assert kp.dtype == dt
        np.testing.assert_allclose(kp, rp, atol=atol, rtol=rtol)
        np.testing.assert_allclose(km, rm, atol=atol, rtol=rtol)
        np.testing.assert_allclose(kv, rv, atol=atol, rtol=rtol)


def test_reference_does_not_modify_inputs():
    p, g, m, v = np.ones(3), np.ones(3), np.zeros(3), np.zeros(3)
    adamw_update_ref(p, g, m, v, step=1, lr=0.1, weight_decay=0.1)
    assert np.all(p == 1.0) and np.all(m == 0.0) and np.all(v == 0.0)


def test_two_hand_computed_steps():
    """lr=0.1, beta1=0.9, beta2=0.99, eps=1e-8, weight_decay=0.1, p0 = [1, -2, 0.5].

    Step 1, g1 = [0.5, -1, 0]:
      decay  p <- p·(1 - 0.1·0.1) = [0.99, -1.98, 0.495]
      m1 = 0.1·g1 = [0.05, -0.1, 0];  v1 = 0.01·g1² = [0.0025, 0.01, 0]
      m̂ = m1/0.1 = [0.5, -1, 0];      v̂ = v1/0.01 = [0.25, 1, 0];  sqrt(v̂) = [0.5, 1, 0]
      p1 = p - 0.1·m̂/(sqrt(v̂)+1e-8) = [0.99 - 0.05/0.50000001, -1.98 + 0.1/1.00000001, 0.495]
         = [0.890000002, -1.880000001, 0.495]
    Step 2, g2 = [1, 1, 2]:
      decay  p <- 0.99·p1 = [0.88110000198, -1.86120000099, 0.49005]
      m2 = 0.9·m1 + 0.1·g2 = [0.145, 0.01, 0.2];  v2 = 0.99·v1 + 0.01·g2² = [0.012475, 0.0199, 0.04]
      bias corrections 1 - 0.9² = 0.19, 1 - 0.99² = 0.0199
      m̂ = [0.76315789474, 0.05263157895, 1.05263157895];  v̂ = [0.62688442211, 1, 2.01005025126]
      sqrt(v̂) = [0.79176033123, 1, 1.41776241002]
      p2 = p - 0.1·m̂/(sqrt(v̂)+1e-8)
         = [0.88110000198 - 0.09638748684, -1.86120000099 - 0.00526315784, 0.49005 - 0.07424597832]
         = [0.78471251514, -1.86646315883, 0.41580402168]
    """
    hyper = dict(lr=0.1, beta1=0.9, beta2=0.99, eps=1e-8, weight_decay=0.1)
    p1_expected = np.array([0.890000002, -1.880000001, 0.495])
    m1_expected = np.array([0.05, -0.1, 0.0])
    v1_expected = np.array([0.0025, 0.01, 0.0])
    p2_expected = np.array([0.78471251514, -1.86646315883, 0.41580402168])
    m2_expected = np.array([0.145, 0.01, 0.2])
    v2_expected = np.array([0.012475, 0.0199, 0.04])
    g1, g2 = np.array([0.5, -1.0, 0.0]), np.array([1.0, 1.0, 2.0])

    # reference, float64
    p, m, v = np.array([1.0, -2.0, 0.5]), np.zeros(3), np.zeros(3)
    p, m, v = adamw_update_ref(p, g1, m, v, step=1, **hyper)
    np.testing.assert_allclose(p, p1_expected, atol=1e-10)
    np.testing.assert_allclose(m, m1_expected, atol=1e-12)
    np.testing.assert_allclose(v, v1_expected, atol=1e-12)
    p, m, v = adamw_update_ref(p, g2, m, v, step=2, **hyper)
    np.testing.assert_allclose(p, p2_expected, atol=1e-10)
    np.testing.assert_allclose(m, m2_expected, atol=1e-12)
    np.testing.assert_allclose(v, v2_expected, atol=1e-12)

    # kernel, in place, float64 and float32
    for dt, atol in ((np.float64, 1e-10), (np.float32, 1e-6)):
        p, m, v = np.array([1.0, -2.0, 0.5], dt), np.zeros(3, dt), np.zeros(3, dt)
        adamw_update(p, g1.astype(dt), m, v, step=1, **hyper)
        np.testing.assert_allclose(p, p1_expected, atol=atol)
        adamw_update(p, g2.astype(dt), m, v, step=2, **hyper)
        np.testing.assert_allclose(p, p2_expected, atol=atol)
        np.testing.assert_allclose(m, m2_expected, atol=atol)
        np.testing.assert_allclose(v, v2_expected, atol=atol)


@given(st.integers(0, 2**31 - 1), st.integers(1, 5))
def test_zero_weight_decay_is_adam(seed, n_steps):
    """Adam (Kingma & Ba, Algorithm 1), written out here independently, over several steps."""
    rng = np.random.default_rng(seed)
    lr, b1, b2, eps = 1e-2, 0.9, 0.999, 1e-8
    p0 = rng.standard_normal(7)
    grads = [rng.standard_normal(7) for _ in range(n_steps)]

    theta, m1, m2 = p0.copy(), np.zeros(7), np.zeros(7)
    for t, g in enumerate(grads, start=1):
        m1 = b1 * m1 + (1 - b1) * g
        m2 = b2 * m2 + (1 - b2) * g ** 2
        alpha_t = lr * math.sqrt(1 - b2 ** t) / (1 - b1 ** t)      # the paper's efficient form
        eps_hat = eps * math.sqrt(1 - b2 ** t)
        theta = theta - alpha_t * m1 / (np.sqrt(m2) + eps_hat)

    p, m, v = p0.copy(), np.zeros(7), np.zeros(7)
    for t, g in enumerate(grads, start=1):
        adamw_update(p, g, m, v, step=t, lr=lr, beta1=b1, beta2=b2, eps=eps, weight_decay=0.0)
    np.testing.assert_allclose(p, theta, atol=1e-12, rtol=1e-10)
    np.testing.assert_allclose(m, m1, atol=1e-14)
    np.testing.assert_allclose(v, m2, atol=1e-14)


def test_bad_input_errors():
    a = np.zeros(4, np.float32)
    with pytest.raises(ConfigError, match="step"):
        adamw_update(a.copy(), a.copy(), a.copy(), a.copy(), step=0, lr=0.1)
    with pytest.raises(ConfigError, match="beta1"):
        adamw_update(a.copy(), a.copy(), a.copy(), a.copy(), step=1, lr=0.1, beta1=1.0)
    with pytest.raises(DataError, match="dtype"):
        adamw_update(a.copy(), a.astype(np.float64), a.copy(), a.copy(), step=1, lr=0.1)
    with pytest.raises(DataError, match="shape"):
        adamw_update(a.copy(), np.zeros(3, np.float32), a.copy(), a.copy(), step=1, lr=0.1)
    with pytest.raises(DataError, match="flat contiguous"):
        adamw_update(np.zeros((2, 2), np.float32), a.copy(), a.copy(), a.copy(), step=1, lr=0.1)


def test_matches_torch_adamw():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    p0 = rng.standard_normal(50).astype(np.float32)
    grads = [rng.standard_normal(50).astype(np.float32) for _ in range(4)]
    tp = torch.nn.Parameter(torch.tensor(p0))
    opt = torch.optim.AdamW([tp], lr=1e-2, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)
    p, m, v = p0.copy(), np.zeros(50, np.float32), np.zeros(50, np.float32)
    for t, g in enumerate(grads, start=1):
        tp.grad = torch.tensor(g)
        opt.step()
        adamw_update(p, g, m, v, step=t, lr=1e-2, beta1=0.9, beta2=0.95, eps=1e-8, weight_decay=0.1)
    np.testing.assert_allclose(p, tp.detach().numpy(), atol=1e-6, rtol=1e-6)
