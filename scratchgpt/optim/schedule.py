"""Learning-rate schedule: linear warmup, then cosine decay to a floor.

    step <  W:        lr = max_lr * (step + 1) / W
    W <= step <= S:   lr = min_lr + (max_lr - min_lr) * (1 + cos(pi * (step - W) / (S - W))) / 2
    step >  S:        lr = min_lr

with W = warmup_steps and S = total_steps. ``step`` counts optimizer steps from 0.

Why ``(step + 1) / W`` and not ``step / W``: the latter spends the very first step at lr = 0,
i.e. does nothing. With ``+1`` warmup reaches max_lr on step W - 1, and the cosine starts at
max_lr on step W, so the curve is continuous and never decreases before W nor increases after.
Past ``total_steps`` (a run resumed for longer than planned) the rate stays at min_lr instead
of climbing back up the next cosine period.

It is a pure function of the step — no optimizer state — so a resumed run gets exactly the
rates it would have had, and the trainer sets ``group["lr"]`` from it before each step.
"""
from __future__ import annotations

import math
import numbers

from ..errors import ConfigError


def lr_schedule(step: int, max_lr: float, warmup_steps: int, total_steps: int, min_lr: float = 0.0) -> float:
    if not isinstance(step, numbers.Integral) or isinstance(step, bool) or step < 0:
        raise ConfigError(f"lr_schedule: step must be an integer >= 0, got {step!r}")
    if not isinstance(warmup_steps, numbers.Integral) or warmup_steps < 0:
        raise ConfigError(f"lr_schedule: warmup_steps must be an integer >= 0, got {warmup_steps!r}")
    if not isinstance(total_steps, numbers.Integral) or total_steps < warmup_steps:
        raise ConfigError(f"lr_schedule: total_steps must be an integer >= warmup_steps ({warmup_steps}), "
                          f"got {total_steps!r}")
    if not (isinstance(max_lr, numbers.Real) and isinstance(min_lr, numbers.Real)
            and 0.0 <= min_lr <= max_lr and math.isfinite(max_lr)):
        raise ConfigError(f"lr_schedule: need 0 <= min_lr <= max_lr (finite), got min_lr={min_lr!r}, max_lr={max_lr!r}")
    if step < warmup_steps:
        return float(max_lr) * (step + 1) / warmup_steps
    if step >= total_steps:
        # step == total_steps is the end of the cosine (exactly min_lr); also covers S == W
        return float(min_lr)
    progress = (step - warmup_steps) / (total_steps - warmup_steps)  # in [0, 1)
    return float(min_lr) + (float(max_lr) - float(min_lr)) * 0.5 * (1.0 + math.cos(math.pi * progress))
