"""Sampler tests: Cython == reference, filters keep only what they promise, frequencies match.

Expected distributions here are computed independently (plain softmax + sorting written in the
test), not through ``distribution_ref``, so a shared bug in both samplers would still fail.
"""
import math

import numpy as np
import pytest
from hypothesis import given, strategies as st

from scratchgpt.errors import ConfigError
from scratchgpt.sampling import GREEDY_TEMPERATURE, distribution_ref, sample, sample_ref

SAMPLERS = [sample, sample_ref]


def softmax64(z):
    z = np.asarray(z, dtype=np.float64)
    e = np.exp(z - z.max())
    return e / e.sum()


def order_desc(p):
    """Token ids by decreasing value, lower id first on ties."""
    return np.lexsort((np.arange(len(p)), -np.asarray(p)))


def chi2_critical(df, z_alpha):
    """Upper critical value of chi-square(df) by the Wilson–Hilferty cube approximation.

    z_alpha is the standard normal quantile of 1 - alpha (3.0902 for alpha = 0.001). At alpha =
    0.001 it runs 0.6% (df=10) to 3% (df=1) above the exact quantile, i.e. the test's true
    significance level is a little below 0.001; a wrong sampler misses by far more.
    """
    a = 2.0 / (9.0 * df)
    return df * (1.0 - a + z_alpha * math.sqrt(a)) ** 3


Z_999 = 3.090232  # standard normal 0.999 quantile: significance level alpha = 0.001


# ---------------------------------------------------------------- Cython == reference

logit_values = st.one_of(
    st.floats(-30, 30, width=32),
    st.integers(-3, 3).map(float),      # many exact ties
    st.just(-math.inf),                 # masked tokens
)


@st.composite
def sampling_case(draw):
    V = draw(st.integers(1, 300))
    z = np.array(draw(st.lists(logit_values, min_size=V, max_size=V)), dtype=np.float32)
    if np.isneginf(z).all():
        z[draw(st.integers(0, V - 1))] = 0.0
    kw = {"temperature": draw(st.sampled_from([0.0, 1e-6, 0.3, 0.7, 1.0, 1.5]))}
    kw["top_k"] = draw(st.one_of(st.none(), st.integers(1, V + 3)))
    kw["top_p"] = draw(st.one_of(st.none(), st.floats(0.01, 1.0), st.sampled_from([0.25, 0.5, 1.0])))
    kw["min_p"] = draw(st.one_of(st.none(), st.floats(0.0, 1.0), st.sampled_from([0.5, 1.0])))
    if draw(st.booleans()):
        kw["history"] = draw(st.lists(st.integers(0, V - 1), max_size=20))
        kw["repetition_penalty"] = draw(st.sampled_from([1.0, 0.8, 1.3, 2.0]))
        kw["frequency_penalty"] = draw(st.sampled_from([0.0, 0.5, -0.2]))
        kw["presence_penalty"] = draw(st.sampled_from([0.0, 0.7]))
    if draw(st.booleans()):
        z = z.astype(np.float64)
    return z, kw


@given(sampling_case(), st.integers(0, 2**32))
def test_cython_equals_reference(case, seed):
    z, kw = case
    for s in (seed, seed + 1, seed + 2):
        assert sample(z, rng=s, **kw) == sample_ref(z, rng=s, **kw)


@pytest.mark.parametrize("V", [50257, 256000])
@pytest.mark.parametrize("kw", [
    {"temperature": 0.8},
    {"temperature": 0.8, "top_k": 50},
    {"temperature": 0.8, "top_k": 5000},    # k above the heap limit -> np.partition path
    {"temperature": 1.0, "top_p": 0.9},     # large nucleus: several growth rounds
    {"temperature": 0.5, "top_p": 0.5, "min_p": 0.05},
])
def test_cython_equals_reference_large_vocab(V, kw):
    z = (np.random.default_rng(V).standard_normal(V) * 3).astype(np.float32)
    hist = np.random.default_rng(1).integers(0, V, 64)
    for seed in range(4):
        assert sample(z, rng=seed, history=hist, repetition_penalty=1.2, **kw) == \
            sample_ref(z, rng=seed, history=hist, repetition_penalty=1.2, **kw)


# ---------------------------------------------------------------- filters

@given(st.lists(st.floats(-10, 10, width=32), min_size=1, max_size=200),
       st.integers(1, 20), st.integers(0, 10_000))
def test_top_k_only_returns_top_k(values, k, seed):
    z = np.array(values, dtype=np.float32)
    allowed = set(order_desc(z)[:k].tolist())
    for fn in SAMPLERS:
        for s in range(seed, seed + 5):
            assert fn(z, top_k=k, rng=s) in allowed


def nucleus(p, top_p):
    """Smallest prefix (by decreasing p, low id first on ties) with mass >= top_p."""
    order = order_desc(p)
    mass = np.cumsum(p[order])
    n = int(np.searchsorted(mass, top_p)) + 1  # first position where mass >= top_p
    return set(order[:min(n, len(p))].tolist())


@given(st.lists(st.floats(-8, 8, width=32), min_size=1, max_size=200),
       st.floats(0.05, 0.99), st.sampled_from([0.5, 1.0, 2.0]), st.integers(0, 10_000))
def test_top_p_only_returns_nucleus(values, top_p, temperature, seed):
    z = np.array(values, dtype=np.float32)
    p = softmax64(z.astype(np.float64) / temperature)
    # 1e-9 of slack on the threshold: this softmax sums in a different order than the sampler,
    # so a mass exactly at top_p may land on either side of it; any true leak is far larger.
    allowed = nucleus(p, top_p + 1e-9)
    for fn in SAMPLERS:
        for s in range(seed, seed + 5):
            assert fn(z, top_p=top_p, temperature=temperature, rng=s) in allowed


def test_top_p_exact_small_case():
    p = np.array([0.2, 0.5, 0.3])
    z = np.log(p).astype(np.float32)
    for fn in SAMPLERS:
        got = {fn(z, top_p=0.45, rng=s) for s in range(50)}
        assert got == {1}                   # 0.5 alone already covers 0.45
        got = {fn(z, top_p=0.7, rng=s) for s in range(200)}
        assert got == {1, 2}                # 0.5 + 0.3 = 0.8 >= 0.7, never token 0
        got = {fn(z, top_p=1e-6, rng=s) for s in range(20)}
        assert got == {1}                   # always at least one token


def test_min_p_keeps_tokens_above_fraction_of_max():
    p = np.array([0.05, 0.4, 0.3, 0.15, 0.1])
    z = np.log(p)
    for fn in SAMPLERS:
        got = {fn(z, min_p=0.5, rng=s) for s in range(300)}   # keep p >= 0.2
        assert got == {1, 2}
        assert {fn(z, min_p=1.0, rng=s) for s in range(20)} == {1}


def test_masked_tokens_never_drawn():
    z = np.full(10, -np.inf, dtype=np.float32)
    z[[2, 7]] = [0.0, 1.0]
    for fn in SAMPLERS:
        assert {fn(z, rng=s) for s in range(200)} == {2, 7}


# ---------------------------------------------------------------- greedy

@given(st.lists(st.floats(-50, 50, width=32), min_size=1, max_size=300))
def test_temperature_zero_is_argmax(values):
    z = np.array(values, dtype=np.float32)
    for fn in SAMPLERS:
        assert fn(z, temperature=0.0) == int(np.argmax(z))
        assert fn(z, temperature=GREEDY_TEMPERATURE / 2, top_k=3, top_p=0.1) == int(np.argmax(z))


def test_small_positive_temperature_approaches_argmax():
    rng = np.random.default_rng(0)
    z = (rng.permutation(1000) * 0.1).astype(np.float32)   # distinct, gaps >= 0.1
    for fn in SAMPLERS:
        assert {fn(z, temperature=1e-3, rng=s) for s in range(12)} == {int(np.argmax(z))}


def test_greedy_sees_penalties():
    z = np.array([1.0, 3.0, 2.0], dtype=np.float32)
    for fn in SAMPLERS:
        assert fn(z, temperature=0, history=[1], repetition_penalty=2.0) == 2   # 3/2 = 1.5 < 2
        assert fn(z, temperature=0, history=[1, 1], frequency_penalty=0.6) == 2  # 3 - 1.2 = 1.8


# ---------------------------------------------------------------- frequencies

def expected_probs(z, temperature=1.0, top_k=None, top_p=None, min_p=None):
    """Independent implementation of the documented pipeline for small V (no penalties)."""
    p = softmax64(np.asarray(z, np.float64) / temperature)
    keep = np.ones(len(p), bool)
    if top_k is not None:
        keep[:] = False
        keep[order_desc(p)[:top_k]] = True
    if top_p is not None:
        q = np.where(keep, p, 0) / p[keep].sum()
        inside = nucleus(q, top_p)
        keep &= np.isin(np.arange(len(p)), list(inside))
    if min_p is not None:
        keep &= p >= min_p * p.max()
    q = np.where(keep, p, 0.0)
    return q / q.sum()


CHI_CASES = [
    {},
    {"temperature": 0.6},
    {"temperature": 1.7, "top_k": 4},
    {"top_p": 0.8},
    {"min_p": 0.15},
    {"temperature": 1.3, "top_k": 6, "top_p": 0.9, "min_p": 0.05},
]


@pytest.mark.parametrize("kw", CHI_CASES)
def test_empirical_frequencies_match_distribution(kw):
    """Chi-square goodness of fit at significance 0.001, fixed seed (deterministic)."""
    z = np.array([2.0, 1.0, 0.5, 0.0, -0.5, -1.0, 1.5, 0.2], dtype=np.float32)
    p = expected_probs(z, **kw)
    n_draws = 8000
    gen = np.random.default_rng(2024)
    counts = np.bincount([sample(z, rng=gen, **kw) for _ in range(n_draws)], minlength=len(z))
    assert counts[p == 0].sum() == 0, "a filtered-out token was drawn"
    support = p > 0
    expected = n_draws * p[support]
    chi2 = float(((counts[support] - expected) ** 2 / expected).sum())
    df = int(support.sum()) - 1
    if df == 0:
        return  # a single survivor: the zero-count assertion above is the whole check
    assert chi2 < chi2_critical(df, Z_999), (chi2, df, counts, expected)
    # distribution_ref agrees with the independent formula (it is what both samplers draw from)
    ids, probs = distribution_ref(z, **kw)
    np.testing.assert_allclose(probs, p[ids], rtol=1e-12, atol=1e-15)
    assert set(ids.tolist()) == set(np.flatnonzero(support).tolist())


def test_chi2_critical_matches_tables():
    # published chi-square 0.999 quantiles; the approximation is high by at most ~3%
    for df, exact in [(1, 10.828), (3, 16.266), (5, 20.515), (7, 24.322), (10, 29.588)]:
        approx = chi2_critical(df, Z_999)
        assert exact <= approx <= exact * 1.035, (df, approx, exact)


# ---------------------------------------------------------------- penalties

def penalized(z, history, r=1.0, f=0.0, p=0.0):
    z = np.asarray(z, np.float64).copy()
    seen, counts = np.unique(history, return_counts=True)
    for t, c in zip(seen, counts):
        z[t] = z[t] / r if z[t] > 0 else z[t] * r
        z[t] = z[t] - c * f - p
    return z


@pytest.mark.parametrize("pen", [
    {"repetition_penalty": 1.5},
    {"repetition_penalty": 0.7},
    {"frequency_penalty": 0.4},
    {"presence_penalty": 0.9},
    {"repetition_penalty": 1.3, "frequency_penalty": 0.2, "presence_penalty": 0.1},
])
def test_penalties_equal_manual_logit_edit(pen):
    z = np.array([1.5, -0.5, 0.8, 0.0, 2.0, -1.2], dtype=np.float32)
    hist = [0, 1, 1, 4, 4, 4, 3]
    manual = penalized(z, hist, pen.get("repetition_penalty", 1.0), pen.get("frequency_penalty", 0.0),
                       pen.get("presence_penalty", 0.0))
    _, probs = distribution_ref(z, history=hist, **pen)
    np.testing.assert_allclose(probs, softmax64(manual), rtol=1e-12)
    for fn in SAMPLERS:
        for s in range(20):
            assert fn(z, history=hist, rng=s, **pen) == fn(manual, rng=s)


def test_repetition_penalty_lowers_seen_tokens_of_either_sign():
    z = np.array([1.0, -1.0, 0.5, 0.5], dtype=np.float32)
    _, base = distribution_ref(z)
    _, pen = distribution_ref(z, history=[0, 1], repetition_penalty=2.0)
    assert pen[0] < base[0] and pen[1] < base[1]     # positive halved, negative doubled
    assert pen[2] > base[2] and pen[3] > base[3]     # unseen tokens gain the freed mass


def test_frequency_penalty_scales_with_count_presence_does_not():
    z = np.zeros(3, dtype=np.float32)
    _, fp = distribution_ref(z, history=[0, 1, 1, 1], frequency_penalty=0.5)
    assert fp[1] < fp[0] < fp[2]
    _, pp = distribution_ref(z, history=[0, 1, 1, 1], presence_penalty=0.5)
    assert pp[0] == pp[1] < pp[2]


# ---------------------------------------------------------------- rng contract

def test_seed_reproduces_and_generator_advances_by_one_draw():
    z = np.random.default_rng(3).standard_normal(1000).astype(np.float32)
    for fn in SAMPLERS:
        assert fn(z, rng=7) == fn(z, rng=7)
        g1, g2 = np.random.default_rng(5), np.random.default_rng(5)
        fn(z, rng=g1, top_k=10)
        g2.random()
        assert g1.random() == g2.random()


# ---------------------------------------------------------------- bad input

BAD_KWARGS = [
    ({"temperature": -0.1}, "temperature"),
    ({"temperature": float("nan")}, "temperature"),
    ({"top_p": 0.0}, "top_p"),
    ({"top_p": 1.5}, "top_p"),
    ({"top_k": 0}, "top_k"),
    ({"top_k": 2.5}, "top_k"),
    ({"min_p": -0.1}, "min_p"),
    ({"min_p": 1.1}, "min_p"),
    ({"repetition_penalty": 0.0}, "repetition_penalty"),
    ({"frequency_penalty": float("inf")}, "frequency_penalty"),
    ({"history": [0, 99]}, "history"),
    ({"history": [[0, 1]]}, "history"),
    ({"rng": "seed"}, "rng"),
]


@pytest.mark.parametrize("fn", SAMPLERS)
@pytest.mark.parametrize("kw,name", BAD_KWARGS)
def test_invalid_arguments_raise(fn, kw, name):
    z = np.zeros(5, dtype=np.float32)
    with pytest.raises(ConfigError, match=name):
        fn(z, **kw)


@pytest.mark.parametrize("fn", SAMPLERS)
@pytest.mark.parametrize("logits,what", [
    (np.array([0.0, np.nan, 1.0], np.float32), "NaN"),
    (np.array([0.0, np.inf], np.float32), r"\+inf"),
    (np.full(4, -np.inf, np.float32), "every token"),
    (np.zeros((2, 3), np.float32), "1-D"),
    (np.zeros(0, np.float32), "empty"),
])
def test_invalid_logits_raise(fn, logits, what):
    with pytest.raises(ValueError, match=what):  # ConfigError is a ValueError
        fn(logits, rng=0)


def test_penalties_come_before_temperature_and_filters():
    """Documented order: penalties on the raw logits, then / temperature, then top-k."""
    z = np.array([2.0, 1.0, -1.0, 0.5], dtype=np.float32)
    hist = [0, 0, 2]
    manual = penalized(z, hist, r=1.5, f=0.3)
    _, probs = distribution_ref(z, temperature=0.5, history=hist, repetition_penalty=1.5, frequency_penalty=0.3)
    np.testing.assert_allclose(probs, softmax64(manual / 0.5), rtol=1e-12)
    # top-k ranks the *penalized* logits: token 0 drops from 1st (2.0) to 3rd (2/1.5 - 2*0.6 = 0.13 < 0.5)
    ids, _ = distribution_ref(z, top_k=2, history=hist, repetition_penalty=1.5, frequency_penalty=0.6)
    assert ids.tolist() == [1, 3]
    for fn in SAMPLERS:
        assert {fn(z, top_k=2, history=hist, repetition_penalty=1.5, frequency_penalty=0.6, rng=s)
                for s in range(100)} == {1, 3}


@pytest.mark.parametrize("kw,allowed", [
    ({"top_k": 2}, {0, 1}),
    ({"top_p": 0.5}, {0, 1, 2}),                  # 3 of 6 equal tokens reach mass 0.5
    ({"top_k": 4, "top_p": 0.5}, {0, 1}),
    ({"top_p": 0.34}, {0, 1, 2}),                 # 2/6 < 0.34 <= 3/6
])
def test_ties_at_the_cut_go_to_lower_ids(kw, allowed):
    z = np.array([0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -50.0], dtype=np.float32)  # 6 tied + a negligible tail
    for fn in SAMPLERS:
        assert {fn(z, rng=s, **kw) for s in range(200)} == allowed


def test_threads_do_not_share_scratch_buffers():
    """The Cython sampler reuses per-thread buffers; concurrent calls must not clobber each other."""
    from concurrent.futures import ThreadPoolExecutor

    def job(V):
        z = np.random.default_rng(V).standard_normal(V).astype(np.float32) * 2
        got = [sample(z, rng=s, top_p=0.8, top_k=V // 3) for s in range(12)]
        return got == [sample_ref(z, rng=s, top_p=0.8, top_k=V // 3) for s in range(12)]

    with ThreadPoolExecutor(4) as pool:
        assert all(pool.map(job, [40_000, 60_000, 30_000, 50_000, 20_000, 70_000]))
