"""Adam and AdamW.

For parameter p with gradient g at step t = 1, 2, ... (per parameter), learning rate lr,
betas (b1, b2), eps and weight decay wd:

    m_t   = b1 * m_{t-1} + (1 - b1) * g            first moment (mean of g)
    v_t   = b2 * v_{t-1} + (1 - b2) * g^2          second moment (mean of g^2)
    m_hat = m_t / (1 - b1^t)                       bias correction: m_0 = v_0 = 0 pull the
    v_hat = v_t / (1 - b2^t)                       early averages towards zero
    p    <- p - lr * m_hat / (sqrt(v_hat) + eps)

Weight decay differs between the two (Loshchilov & Hutter, "Decoupled Weight Decay
Regularization", 2019):
  - Adam (L2 penalty): g <- g + wd * p before the moments, so the decay is rescaled by
    1/sqrt(v_hat) like the gradient — parameters with large gradients are barely decayed.
  - AdamW (decoupled): p <- p - lr * wd * p alongside the Adam step (both use the old p),
    so every weight shrinks at the same rate whatever its gradient history.
These are the equations of torch.optim.Adam / AdamW, which the tests compare against.

The update runs in the fused Numba kernel ``scratchgpt.ops.adamw.adamw_update`` (one pass
over p, g, m, v in place; float32, or float64 for gradient-check style runs). Its float64 NumPy
twin ``adamw_update_ref`` is what the op's own tests hold it to. Adam's L2 form reuses the same
kernel with the penalty added to a copy of the gradient and the decoupled decay set to 0.
"""
from __future__ import annotations

import numbers

import numpy as np

from ..errors import ConfigError
from .optimizer import Optimizer


def _kernel():
    # imported on first step, not at import time: the kernel module compiles Numba code
    from ..ops.adamw import adamw_update
    return adamw_update


class Adam(Optimizer):
    defaults = {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0}
    state_keys = ("exp_avg", "exp_avg_sq")
    decoupled = False  # AdamW flips this

    def __init__(self, params_or_groups, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=None):
        if weight_decay is None:
            weight_decay = self.defaults["weight_decay"]
        super().__init__(params_or_groups, lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay)
        self._fast = None

    def _check_hyper(self, group, where):
        super()._check_hyper(group, where)
        betas = group["betas"]
        try:
            b1, b2 = (float(b) for b in betas)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: betas must be a pair of numbers, got {betas!r}") from None
        if not (0.0 <= b1 < 1.0 and 0.0 <= b2 < 1.0):
            raise ConfigError(f"{where}: betas must each be in [0, 1), got {betas!r}")
        group["betas"] = (b1, b2)
        eps = group["eps"]
        if not isinstance(eps, numbers.Real) or not eps >= 0.0:
            raise ConfigError(f"{where}: eps must be a number >= 0, got {eps!r}")

    def _update(self, group, param, grad, state):
        if self._fast is None:
            self._fast = _kernel()
        p = param.data
        if not isinstance(p, np.ndarray):
            self._update_cuda(group, p, grad, state)
            return
        if p.dtype not in (np.float32, np.float64):
            raise ValueError(f"Adam supports float32 and float64 parameters, got {p.dtype}")
        b1, b2 = group["betas"]
        wd = float(group["weight_decay"])
        g = np.ascontiguousarray(grad, dtype=p.dtype).reshape(-1)  # a view when already contiguous
        if not self.decoupled:
            if wd != 0.0:
                g = g + wd * p.reshape(-1)  # L2 penalty on a copy; the user's .grad stays as it was
            wd = 0.0
        self._fast(p.reshape(-1), g, state["exp_avg"].reshape(-1), state["exp_avg_sq"].reshape(-1),
                   int(state["step"]), float(group["lr"]), b1, b2, float(group["eps"]), wd)


    def _update_cuda(self, group, p, grad, state):
        from .. import cuda_arrays
        from ..ops.adamw_cuda import adamw_update_cuda
        b1, b2 = group["betas"]
        wd = float(group["weight_decay"])
        g = cuda_arrays.flat(grad)
        if not self.decoupled:
            if wd != 0.0:
                g = cuda_arrays.axpby(g, 1.0, cuda_arrays.flat(p), wd)   # L2 penalty on a copy
            wd = 0.0
        adamw_update_cuda(cuda_arrays.flat(p), g, cuda_arrays.flat(state["exp_avg"]),
                          cuda_arrays.flat(state["exp_avg_sq"]), int(state["step"]), float(group["lr"]),
                          b1, b2, float(group["eps"]), wd)


class AdamW(Adam):
    """Adam with decoupled weight decay; default weight_decay 0.01 as in torch.optim.AdamW."""

    defaults = {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 1e-2}
    decoupled = True
