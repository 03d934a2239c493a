"""The AdamW (and Adam) parameter update as an op.

For parameter p with gradient g, first/second moments m, v, step t = 1, 2, ... (Loshchilov &
Hutter, "Decoupled Weight Decay Regularization"; the form torch.optim.AdamW uses):

    p  <- p - lr · wd · p                       decoupled weight decay (not added to g)
    m  <- β1 · m + (1 - β1) · g
    v  <- β2 · v + (1 - β2) · g²
    m̂  = m / (1 - β1^t)                         bias corrections: m, v start at 0
    v̂  = v / (1 - β2^t)
    p  <- p - lr · m̂ / (sqrt(v̂) + eps)

With wd = 0 this is exactly Adam. (Adam with *L2* weight decay, g <- g + wd · p, is a different
update; the optimizer in scratchgpt.optim builds it by adding wd·p to g before calling this op
with wd = 0.)

``adamw_update_ref`` returns new (p, m, v) in float64; ``adamw_update`` updates flat arrays in
place with one fused Numba pass (one read of p, g, m, v and one write of p, m, v per element,
instead of ~10 NumPy temporaries).
"""
from __future__ import annotations

import math

import numpy as np
from numba import prange

from ..errors import ConfigError, DataError
from ._numba import UPDATE, njit_pair


def _check_hyper(step, lr, beta1, beta2, eps, weight_decay):
    if int(step) != step or step < 1:
        raise ConfigError(f"step must be an int >= 1 (the count of updates so far, this one included), got {step!r}")
    for name, b in (("beta1", beta1), ("beta2", beta2)):
        if not 0.0 <= b < 1.0:
            raise ConfigError(f"{name} must be in [0, 1), got {b!r}")
    if not eps >= 0:  # eps = 0 is allowed, as in torch (0/0 then gives NaN where v = 0)
        raise ConfigError(f"eps must be >= 0, got {eps!r}")
    if lr < 0 or weight_decay < 0:
        raise ConfigError(f"lr and weight_decay must be >= 0, got lr={lr!r}, weight_decay={weight_decay!r}")


# ============================================================================ reference (float64)
def adamw_update_ref(p, g, m, v, step, lr, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0):
    """One AdamW step in float64. Returns new arrays (p, m, v); inputs are not modified."""
    _check_hyper(step, lr, beta1, beta2, eps, weight_decay)
    p, g, m, v = (np.asarray(a, dtype=np.float64) for a in (p, g, m, v))
    p = p - lr * weight_decay * p
    m = beta1 * m + (1.0 - beta1) * g
    v = beta2 * v + (1.0 - beta2) * g * g
    m_hat = m / (1.0 - beta1 ** step)
    v_hat = v / (1.0 - beta2 ** step)
    p = p - lr * m_hat / (np.sqrt(v_hat) + eps)
    return p, m, v


# ============================================================================ fast CPU path
# UPDATE fastmath (see _numba.py): the division and sqrt vectorise; no reduction to reorder.
@njit_pair(fastmath=UPDATE)
def _adamw_kernel(p, g, m, v, decay, beta1, beta2, one_m_b1, one_m_b2, step_size, inv_sqrt_bc2, eps):
    for i in prange(p.shape[0]):  # flat (N,), in place on p, m, v
        gi = g[i]
        mi = beta1 * m[i] + one_m_b1 * gi
        vi = beta2 * v[i] + one_m_b2 * gi * gi
        m[i] = mi
        v[i] = vi
        p[i] = p[i] * decay - step_size * mi / (math.sqrt(vi) * inv_sqrt_bc2 + eps)


def adamw_update(p, g, m, v, step, lr, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0):
    """One AdamW step, in place on the flat contiguous arrays p, m, v (float32 or float64).

    Algebra, so the kernel does one division per element: with bc1 = 1 - β1^t, bc2 = 1 - β2^t,
    lr · m̂ / (sqrt(v̂) + eps) = (lr / bc1) · m / (sqrt(v) / sqrt(bc2) + eps); the weight decay
    factor (1 - lr·wd) multiplies p first, as in the reference.
    """
    _check_hyper(step, lr, beta1, beta2, eps, weight_decay)
    arrays = {"p": p, "g": g, "m": m, "v": v}
    for name, a in arrays.items():
        if not isinstance(a, np.ndarray) or a.ndim != 1 or not a.flags.c_contiguous:
            raise DataError(f"adamw_update: {name} must be a flat contiguous NumPy array")
        if a.dtype != p.dtype or a.dtype not in (np.float32, np.float64):
            raise DataError(f"adamw_update: {name} has dtype {a.dtype}; all four must share "
                            f"float32 or float64 (p is {p.dtype})")
        if a.shape != p.shape:
            raise DataError(f"adamw_update: {name} has shape {a.shape}, p has {p.shape}")
    ft = p.dtype.type
    bc1 = 1.0 - beta1 ** step
    bc2 = 1.0 - beta2 ** step
    kernel = _adamw_kernel.pick(p.shape[0])
    # 1 - beta is formed in float64 and then rounded: in float32, 1 - float32(0.999) is off by
    # 1.3e-5 relative (float32(0.999) = 0.99900001), which biases v by that much every step.
    kernel(p, g, m, v, ft(1.0 - lr * weight_decay), ft(beta1), ft(beta2), ft(1.0 - beta1),
           ft(1.0 - beta2), ft(lr / bc1), ft(1.0 / math.sqrt(bc2)), ft(eps))


# ---- numba.cuda kernel: ops/adamw_cuda.py (adamw_update_cuda, for device arrays) ----
