"""Central finite differences in float64, the ground truth for every backward pass.

For a scalar loss L(x), dL/dx_i ≈ (L(x + h e_i) − L(x − h e_i)) / 2h, with error O(h²).
We check an op f by projecting its output on a fixed random vector r (L = Σ r ⊙ f(x)), which
exercises every output element's gradient at once.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from .tensor import Tensor


def numerical_grad(fn: Callable[[], float], x: np.ndarray, h: float = 1e-6) -> np.ndarray:
    """dfn/dx by central differences; ``fn`` reads ``x`` in place (we perturb and restore it)."""
    g = np.zeros_like(x, dtype=np.float64)
    flat = x.reshape(-1)
    gflat = g.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + h
        fp = fn()
        flat[i] = old - h
        fm = fn()
        flat[i] = old
        gflat[i] = (fp - fm) / (2.0 * h)
    return g


def gradcheck(
    fn: Callable[..., Tensor],
    inputs: Sequence[np.ndarray | Tensor],
    *,
    h: float = 1e-6,
    atol: float = 1e-6,
    rtol: float = 1e-5,
    seed: int = 0,
    raise_on_fail: bool = True,
) -> dict:
    """Compare the analytic gradient of ``fn(*tensors)`` with float64 central differences.

    ``inputs`` are arrays (or Tensors); each float input becomes a float64 Tensor that
    requires grad. Integer arrays (token ids, targets) pass through unchanged.
    Returns {"max_abs_err": ..., "max_rel_err": ..., "ok": bool, "per_input": [...]}.
    A failure raises AssertionError naming the input and the worst element, unless
    ``raise_on_fail=False``.
    """
    tensors = []
    for a in inputs:
        arr = a.data if isinstance(a, Tensor) else np.asarray(a)
        if np.issubdtype(arr.dtype, np.floating):
            tensors.append(Tensor(np.array(arr, dtype=np.float64), requires_grad=True))
        else:
            tensors.append(arr)

    out = fn(*tensors)
    rng = np.random.default_rng(seed)
    r = rng.standard_normal(out.shape) if out.data.ndim else np.array(1.0)
    # backward of the projection sum(out * r) is backward of out with the incoming gradient r
    out.backward(np.asarray(r, dtype=np.float64))

    report = {"per_input": [], "ok": True, "max_abs_err": 0.0, "max_rel_err": 0.0}
    for k, t in enumerate(tensors):
        if not isinstance(t, Tensor):
            continue

        def f():
            from .grad_mode import no_grad
            with no_grad():
                return float((fn(*tensors).data * r).sum())

        num = numerical_grad(f, t.data, h)
        ana = t.grad if t.grad is not None else np.zeros_like(t.data)
        err = np.abs(ana - num)
        bound = atol + rtol * np.abs(num)
        worst = int(np.argmax(err - bound)) if err.size else 0
        ok = bool(np.all(err <= bound))
        rel = float(np.max(err / (np.abs(num) + 1e-12))) if err.size else 0.0
        report["per_input"].append({"input": k, "max_abs_err": float(err.max(initial=0.0)), "max_rel_err": rel, "ok": ok})
        report["max_abs_err"] = max(report["max_abs_err"], float(err.max(initial=0.0)))
        report["max_rel_err"] = max(report["max_rel_err"], rel)
        if not ok:
            report["ok"] = False
            if raise_on_fail:
                idx = np.unravel_index(worst, t.data.shape)
                raise AssertionError(
                    f"gradcheck failed for input {k} at index {idx}: analytic {ana[idx]!r} vs "
                    f"numerical {num[idx]!r} (abs err {err[idx]:.3e} > {bound[idx]:.3e})"
                )
    return report
