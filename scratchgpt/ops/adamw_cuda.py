"""The AdamW update on the GPU: adamw.py's algebra, one thread per parameter element, in place.

    p <- p (1 − lr·wd) − (lr / bc1) · m / (sqrt(v) / sqrt(bc2) + eps),
    m <- β1 m + (1 − β1) g,   v <- β2 v + (1 − β2) g²,   bc1 = 1 − β1^t, bc2 = 1 − β2^t

The scalars are formed on the host in float64 and rounded once to the parameter dtype, exactly
as the CPU path does, so the two agree to float32 rounding.
"""
from __future__ import annotations

import math

from ..cuda_arrays import cuda, launch1, require_device
from ..errors import DataError
from .adamw import _check_hyper


@cuda.jit
def _adamw_cuda(p, g, m, v, decay, beta1, beta2, one_m_b1, one_m_b2, step_size, inv_sqrt_bc2, eps):
    i = cuda.grid(1)
    if i < p.size:
        gi = g[i]
        mi = beta1 * m[i] + one_m_b1 * gi
        vi = beta2 * v[i] + one_m_b2 * gi * gi
        m[i] = mi
        v[i] = vi
        p[i] = p[i] * decay - step_size * mi / (math.sqrt(vi) * inv_sqrt_bc2 + eps)


def adamw_update_cuda(p, g, m, v, step, lr, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0):
    """One AdamW step in place on flat device arrays p, m, v (g read only)."""
    _check_hyper(step, lr, beta1, beta2, eps, weight_decay)
    require_device(p, g, m, v, where="adamw_update_cuda")
    for name, a in (("g", g), ("m", m), ("v", v)):
        if a.shape != p.shape or a.dtype != p.dtype:
            raise DataError(f"adamw_update_cuda: {name} is {a.dtype} {tuple(a.shape)}, p is {p.dtype} {tuple(p.shape)}")
    ft = p.dtype.type
    bc1 = 1.0 - beta1 ** step
    bc2 = 1.0 - beta2 ** step
    launch1(_adamw_cuda, p.size, p, g, m, v, ft(1.0 - lr * weight_decay), ft(beta1),
           ft(beta2), ft(1.0 - beta1), ft(1.0 - beta2), ft(lr / bc1), ft(1.0 / math.sqrt(bc2)), ft(eps))
