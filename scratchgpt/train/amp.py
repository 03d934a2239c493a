"""Mixed precision: float16 forward/backward, float32 master weights, dynamic loss scaling.

Why each part:
  * float16 activations halve activation memory (the bulk of training memory for small models).
  * float16 has a 5-bit exponent: gradients below ~6e-8 flush to zero. Multiplying the loss by a
    scale S (e.g. 1024) shifts every gradient up by S, out of the underflow range; we divide by S
    again in float32 before the update.
  * A too-large S overflows to inf. Then the step is SKIPPED (weights and optimizer untouched),
    the scale is halved, and the trainer says so. After ``growth_interval`` clean steps the
    scale doubles again, so it tracks the largest safe value.
  * Updates are applied to float32 master weights: a float16 weight of 1.0 cannot absorb an
    update smaller than ~5e-4 (its spacing), so small lr*grad steps would vanish.

The cast happens at the model boundary (``HalfPrecisionWeights``), and on the CPU it is an
*emulation*: Numba cannot compile kernels for float16 on the CPU (its data model has no
float16 type), and NumPy's float16 matmul has no BLAS path (hundreds of times slower). So:
  * forward: each parameter's ``.data`` is swapped for its value rounded to float16 (stored as
    float32) — the network sees exactly the weights a float16 model would have;
  * backward: the ops compute in float32; each parameter's gradient is then cast to float16,
    which overflows to inf and flushes tiny values to 0 exactly as float16 gradients would,
    then cast back, accumulated in float32 across micro-batches and unscaled;
  * the master weights are put back and the optimizer updates them in float32.
What this does NOT give on the CPU: activations stay float32, so there is no memory saving and
the extra casts make a step a little slower. ``chapters/ch9.md`` reports the measured numbers.
On a GPU with float16 kernels the same class would swap in real float16 arrays.
"""
from __future__ import annotations

import numpy as np


def to_half_values(a: np.ndarray) -> np.ndarray:
    """``a`` rounded to float16 and stored back in ``a``'s dtype: out-of-range values become
    ±inf, values below float16's smallest subnormal (~6e-8) become 0 — float16's behaviour."""
    with np.errstate(over="ignore"):
        return a.astype(np.float16).astype(a.dtype)


class LossScaler:
    def __init__(self, init_scale: float = 1024.0, growth_interval: int = 200,
                 growth_factor: float = 2.0, backoff_factor: float = 0.5, min_scale: float = 1.0):
        self.scale = float(init_scale)
        self.growth_interval = int(growth_interval)
        self.growth_factor = float(growth_factor)
        self.backoff_factor = float(backoff_factor)
        self.min_scale = float(min_scale)
        self.good_steps = 0
        self.skipped = 0

    def update(self, found_nonfinite: bool) -> None:
        """Adjust the scale after a step: back off on overflow, grow after a clean streak."""
        if found_nonfinite:
            self.scale = max(self.min_scale, self.scale * self.backoff_factor)
            self.good_steps = 0
            self.skipped += 1
        else:
            self.good_steps += 1
            if self.good_steps >= self.growth_interval:
                self.scale *= self.growth_factor
                self.good_steps = 0

    def state_dict(self) -> dict:
        return {"scale": self.scale, "good_steps": self.good_steps, "skipped": self.skipped}

    def load_state_dict(self, d: dict) -> None:
        self.scale = float(d["scale"])
        self.good_steps = int(d["good_steps"])
        self.skipped = int(d["skipped"])


class HalfPrecisionWeights:
    """Context manager: parameters hold float16 copies inside, float32 masters outside.

    Gradients accumulated inside (possibly over several micro-batches) are collected into
    float32 buffers by ``harvest_grads`` — one cast per micro-batch, so accumulation happens in
    float32 and does not lose precision across micro-batches.
    """

    def __init__(self, params):
        self.params = list(params)
        self.master = None

    def __enter__(self):
        self.master = [p.data for p in self.params]
        for p in self.params:
            p.data = to_half_values(p.data)
            p.grad = None
        return self

    def harvest_grads(self, into: list) -> None:
        """Add each parameter's gradient, passed through float16, into the float32 ``into``."""
        for i, p in enumerate(self.params):
            if p.grad is None:
                continue
            g = to_half_values(p.grad)
            with np.errstate(invalid="ignore", over="ignore"):  # inf + -inf = nan: still "overflow"
                into[i] = g if into[i] is None else into[i] + g
            p.grad = None

    def __exit__(self, *exc):
        for p, m in zip(self.params, self.master):
            p.data = m
        self.master = None
        return False
