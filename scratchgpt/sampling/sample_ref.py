"""The reference sampler: next-token choice from a logits vector, written to be read.

Pipeline (each step sees the output of the one before)::

    logits (V,)  --penalties over history-->  --/ temperature-->  --top-k-->  --top-p-->  --min-p-->  draw

1. Penalties, applied once per distinct token t in ``history`` (the ids generated so far):
   - repetition penalty r (CTRL, Keskar et al. 2019): z[t] / r if z[t] > 0 else z[t] * r — with
     r > 1 a seen token always loses probability whatever the sign of its logit;
   - frequency f and presence p (OpenAI API): z[t] - count(t) * f - p.
2. Temperature: z / T. T below ``GREEDY_TEMPERATURE`` (1e-5; 0 included) means greedy: the
   index of the largest penalized logit (the first one on ties), no random number is drawn.
3. top-k: keep the k largest logits; ties at the k-th value go to the lowest token ids, so
   exactly k tokens survive.
4. top-p (nucleus, Holtzman et al. 2019): order the survivors by probability (highest first,
   lower id first on ties) and keep the shortest prefix whose probability mass is >= top_p.
   It always keeps at least the most likely token.
5. min-p: keep tokens whose probability is >= min_p * (probability of the most likely token).
6. Draw: ONE uniform u in [0, 1) from the generator; walk the surviving tokens in increasing
   id order accumulating their weights and return the first token whose running sum exceeds
   u * total (inverse CDF).

Why every sum is a running sum in a fixed order: the Cython sampler must return the same
token as this one for the same seed. Floating-point addition is not associative, so both
add the same numbers in the same order (np.cumsum is a plain left-to-right loop, unlike
np.sum's pairwise tree), and both call the same np.exp; the surviving set and the token
drawn are then bit-for-bit identical.

Weights are exp(z - max z), so the best token has weight exactly 1.0 — which is why min-p
reduces to "weight >= min_p".
"""
from __future__ import annotations

import numpy as np

from ..errors import ConfigError
from ._checks import GREEDY_TEMPERATURE, bad_logits_message, check_args, check_logits, make_rng


def apply_penalties_ref(z: np.ndarray, history: np.ndarray, repetition_penalty: float,
                        frequency_penalty: float, presence_penalty: float) -> None:
    """Penalize, in place, the float64 logits ``z`` (V,) of the tokens seen in ``history``."""
    if history.size == 0:
        return
    seen, counts = np.unique(history, return_counts=True)  # each distinct token once
    zs = z[seen]
    if repetition_penalty != 1.0:
        zs = np.where(zs > 0, zs / repetition_penalty, zs * repetition_penalty)
    if frequency_penalty != 0.0 or presence_penalty != 0.0:
        zs = zs - counts.astype(np.float64) * frequency_penalty - presence_penalty
    z[seen] = zs


def top_k_ids_ref(z: np.ndarray, k: int) -> np.ndarray:
    """Ids of the k largest entries of z, ties broken toward low ids, in increasing id order."""
    V = z.shape[0]
    kth = np.partition(z, V - k)[V - k]           # the k-th largest value, O(V)
    above = np.flatnonzero(z > kth)               # strictly better: all kept
    ties = np.flatnonzero(z == kth)[: k - above.size]
    return np.sort(np.concatenate([above, ties]))


def distribution_ref(logits, temperature=1.0, top_k=None, top_p=None, min_p=None,
                     repetition_penalty=1.0, frequency_penalty=0.0, presence_penalty=0.0,
                     history=None):
    """The tokens the sampler may return and their probabilities: ``(ids, probs)``.

    ids are increasing; probs (float64) sum to 1. In greedy mode it is ``([argmax], [1.0])``.
    This is what ``sample`` draws from; tests compare empirical frequencies against it.
    """
    ids, w, _greedy = _filtered_weights(logits, temperature, top_k, top_p, min_p, repetition_penalty,
                                        frequency_penalty, presence_penalty, history)
    cum = np.cumsum(w)
    return ids, w / cum[-1]


def _filtered_weights(logits, temperature, top_k, top_p, min_p, repetition_penalty,
                      frequency_penalty, presence_penalty, history):
    """Steps 1-5 of the pipeline: surviving ids (increasing) and their unnormalized weights."""
    arr = check_logits(logits)
    V = arr.shape[0]
    (temperature, top_k, top_p, min_p, repetition_penalty, frequency_penalty, presence_penalty,
     history) = check_args(temperature, top_k, top_p, min_p, repetition_penalty, frequency_penalty,
                           presence_penalty, history, V)
    z = arr.astype(np.float64)  # (V,) a copy: penalties write into it
    msg = bad_logits_message(z)
    if msg:
        raise ConfigError(msg)

    apply_penalties_ref(z, history, repetition_penalty, frequency_penalty, presence_penalty)

    if temperature < GREEDY_TEMPERATURE:
        return np.array([int(np.argmax(z))]), np.ones(1), True
    z = z / temperature
    zmax = z.max()
    if not np.isfinite(zmax):
        raise ConfigError(f"logits: too large for temperature {temperature} (overflow to inf)")

    if top_k is not None:
        ids = top_k_ids_ref(z, top_k)
    else:
        ids = np.arange(V)
    w = np.exp(z[ids] - zmax)  # (n,) the best token gets exactly exp(0) = 1

    if top_p is not None:
        total = np.cumsum(w)[-1]                    # mass of the survivors, in id order
        order = np.argsort(-w, kind="stable")       # most likely first; stable => low id first on ties
        mass = np.cumsum(w[order])                  # (n,) running mass along that order
        reached = np.flatnonzero(mass >= top_p * total)
        n_keep = int(reached[0]) + 1 if reached.size else w.size  # rounding shortfall: keep all
        keep = np.sort(order[:n_keep])
        ids, w = ids[keep], w[keep]

    if min_p is not None:
        keep = w >= min_p  # p / p_max == w / 1.0
        ids, w = ids[keep], w[keep]
    return ids, w, False


def sample_ref(logits, temperature=1.0, top_k=None, top_p=None, min_p=None, repetition_penalty=1.0,
               frequency_penalty=0.0, presence_penalty=0.0, history=None, rng=None) -> int:
    """Pick the next token id from ``logits`` (V,). See the module docstring for the pipeline.

    rng: a ``np.random.Generator`` (advanced by exactly one ``random()`` call unless greedy), an
    int seed, or None for fresh OS entropy.
    """
    gen = make_rng(rng)  # validated before any work, used only when not greedy
    ids, w, greedy = _filtered_weights(logits, temperature, top_k, top_p, min_p, repetition_penalty,
                                       frequency_penalty, presence_penalty, history)
    if greedy:
        return int(ids[0])
    u = gen.random()
    cum = np.cumsum(w)                              # (n,) running weight in increasing id order
    j = int(np.searchsorted(cum, u * cum[-1], side="right"))  # first running sum > u * total
    if j >= ids.size:  # u * total rounded up to total: take the last token with weight
        j = int(np.flatnonzero(w > 0)[-1])
    return int(ids[j])
