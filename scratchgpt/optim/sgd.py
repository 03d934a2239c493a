"""SGD with momentum (optionally Nesterov) and L2 weight decay.

For parameter p with gradient g, weight decay wd, momentum mu, dampening d, learning rate lr:

    g_t   = g + wd * p                         (L2 penalty folded into the gradient)
    buf_1 = g_t                                 (first step: the buffer starts at the gradient)
    buf_t = mu * buf_{t-1} + (1 - d) * g_t      (later steps)
    u     = g_t + mu * buf_t   if nesterov else buf_t
    p    <- p - lr * u

With mu = 0 this is plain gradient descent, p <- p - lr * (g + wd * p). These are the
equations torch.optim.SGD uses, so the two can be compared step by step.

The update is a handful of whole-array NumPy operations, done in place; SGD is not on any
hot path in this project (AdamW is), so it has no Numba kernel. On the GPU the same steps run
as element-wise device kernels (``cuda_arrays.axpby`` and friends), in the same order and
float32 rounding, and the momentum buffer stays on the device.
"""
from __future__ import annotations

import numbers

import numpy as np

from ..errors import ConfigError
from .optimizer import Optimizer


class SGD(Optimizer):
    defaults = {"lr": 1e-2, "momentum": 0.0, "dampening": 0.0, "nesterov": False, "weight_decay": 0.0}

    def __init__(self, params_or_groups, lr=1e-2, momentum=0.0, dampening=0.0, nesterov=False,
                 weight_decay=0.0):
        super().__init__(params_or_groups, lr=lr, momentum=momentum, dampening=dampening,
                         nesterov=nesterov, weight_decay=weight_decay)

    @property
    def state_keys(self):
        # a momentum buffer only when some group uses momentum
        return ("momentum_buffer",) if any(g["momentum"] != 0.0 for g in self.param_groups) else ()

    def _check_hyper(self, group, where):
        super()._check_hyper(group, where)
        mu = group["momentum"]
        if not isinstance(mu, numbers.Real) or not 0.0 <= mu <= 1.0:
            raise ConfigError(f"{where}: momentum must be in [0, 1], got {mu!r}")
        d = group["dampening"]
        if not isinstance(d, numbers.Real) or not 0.0 <= d <= 1.0:
            raise ConfigError(f"{where}: dampening must be in [0, 1], got {d!r}")
        if group["nesterov"] and (mu <= 0.0 or d != 0.0):
            raise ConfigError(f"{where}: nesterov needs momentum > 0 and dampening 0 "
                              f"(got momentum={mu}, dampening={d})")

    def _update(self, group, param, grad, state):
        if not isinstance(param.data, np.ndarray):
            self._update_cuda(group, param, grad, state)
            return
        p = param.data
        lr, wd, mu = group["lr"], group["weight_decay"], group["momentum"]
        g = grad.astype(p.dtype, copy=False)
        if wd != 0.0:
            g = g + wd * p  # new array: never modify the .grad the user may still read
        if mu != 0.0:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = np.zeros_like(p)
            if state["step"] == 1:
                buf[...] = g
            else:
                buf *= mu
                buf += (1.0 - group["dampening"]) * g
            g = g + mu * buf if group["nesterov"] else buf
        p -= (lr * g).astype(p.dtype, copy=False)

    def _update_cuda(self, group, param, grad, state):
        from .. import cuda_arrays as ca
        p, g = ca.flat(param.data), ca.flat(grad)
        lr, wd, mu = group["lr"], group["weight_decay"], group["momentum"]
        if wd != 0.0:
            g = ca.axpby(g, 1.0, p, wd)              # new array: the user's .grad stays as it was
        if mu != 0.0:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = ca.zeros(tuple(param.data.shape), param.data.dtype)
            fb = ca.flat(buf)
            if state["step"] == 1:
                ca.copy_into(g, fb)
            else:
                ca.axpby_into(fb, mu, g, 1.0 - group["dampening"])
            g = ca.axpby(g, 1.0, fb, mu) if group["nesterov"] else fb
        ca.axpby_into(p, 1.0, g, -lr)
