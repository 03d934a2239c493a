"""Softmax cross-entropy fused with ``ignore_index`` (masked targets).

logits z (..., V) are flattened to N rows; targets t (...) to N integers. Row n is *valid* when
t_n != ignore_index; N_valid = number of valid rows.

    lse_n  = m_n + log sum_j exp(z_nj - m_n)          m_n = max_j z_nj (for stability)
    loss_n = lse_n - z_{n, t_n}                        (= -log softmax(z_n)[t_n]); 0 if ignored
    L      = sum_n loss_n / N_valid                    reduction="mean" (L = 0 if N_valid = 0)
    L      = sum_n loss_n                              reduction="sum"

Gradient, with p_n = softmax(z_n) and w = 1/N_valid ("mean") or 1 ("sum"):

    dL/dz_nj = w · (p_nj - [j = t_n])  for valid rows,  0 for ignored rows.

Optional per-target weights ω (...) ≥ 0, the shape of the targets (a *weighted* loss mask, e.g.
2-4x on the tokens of slot values the reply must copy; issue 9). With W = Σ_valid ω_n:

    L = Σ_n ω_n loss_n / W   ("mean": a weighted average; W = 0 gives L = 0)
    L = Σ_n ω_n loss_n       ("sum")
    dL/dz_nj = w_n · (p_nj - [j = t_n])   with w_n = ω_n / W ("mean") or ω_n ("sum")

ω = 1 everywhere is the unweighted loss, bit for bit (the kernel takes a per-row w_n either way).
The weights are data, not parameters: no gradient flows to them.

Fast CPU path: one fused Numba pass per row, rows split over threads (prange): max, exp with
the SIMD exp of ``_vexp``, sum, loss, and — while the exps are in cache — the gradient
w·(p − onehot) written straight into the buffer backward returns. Rejected alternative: cache
the logits (free: they are alive anyway) and recompute exp in backward; that costs a second
full exp pass over N·V (8.4M elements in config M) and an extra read, where computing the
gradient in forward costs only the write we would do in backward anyway. Under ``no_grad`` the
forward computes the loss only. Measured numbers are in ``cross_entropy_forward``'s docstring.
"""
from __future__ import annotations

import numpy as np
from numba import prange

from ..autograd import Function, Tensor
from ..backend import is_device_array
from ..errors import ConfigError, DataError
from ._numba import EXP_ROWS, njit_pair
from ._vexp import exp_affine_sum, row_max

_REDUCTIONS = ("mean", "sum")


# The target value cross_entropy skips (PyTorch's convention). The one definition: data batches,
# models and the trainer import it from here.
IGNORE_INDEX = -100


def _row_weights(weights, targets_shape, valid: np.ndarray, reduction: str) -> tuple[np.ndarray, float]:
    """(w (N,) float64 = the per-row gradient scale, W = the mean's denominator) for ``weights``
    (None = 1 per valid row); ignored rows get w = 0."""
    if weights is None:
        om = valid.astype(np.float64)                                      # (N,)
    else:
        om = np.asarray(weights, dtype=np.float64)
        if om.shape != tuple(targets_shape):
            raise DataError(f"weights shape {om.shape} must equal targets shape {tuple(targets_shape)}")
        om = np.where(valid, om.reshape(-1), 0.0)                          # (N,)
        if not np.all(np.isfinite(om)) or (om < 0).any():
            raise DataError("weights must be finite and >= 0")
    W = float(om.sum())
    if reduction == "mean":
        return (om / W if W else om * 0.0), W
    return om, W


def _check_inputs(logits: np.ndarray, targets, ignore_index: int, reduction: str):
    """Validate and flatten: returns (z (N, V), t (N,) int64, valid (N,) bool, N_valid)."""
    if reduction not in _REDUCTIONS:
        raise ConfigError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    if logits.ndim < 1 or logits.shape[-1] == 0:
        raise DataError(f"logits must have shape (..., V) with V >= 1, got {logits.shape}")
    targets = np.asarray(targets)
    if not np.issubdtype(targets.dtype, np.integer):
        raise DataError(f"targets must be an integer array, got dtype {targets.dtype}")
    if targets.shape != logits.shape[:-1]:
        raise DataError(f"targets shape {targets.shape} must equal logits shape without the last "
                        f"dim {logits.shape[:-1]}")
    V = logits.shape[-1]
    t = targets.reshape(-1).astype(np.int64, copy=False)                  # (N,)
    valid = t != ignore_index                                              # (N,)
    bad = valid & ((t < 0) | (t >= V))
    if bad.any():
        n = int(np.argmax(bad))
        raise DataError(f"targets must be in [0, {V}) or equal ignore_index={ignore_index}; "
                        f"found {int(t[n])} at flat position {n}")
    z = logits.reshape(-1, V)                                              # (N, V)
    return z, t, valid, int(valid.sum())


# ============================================================================ reference (float64)
def cross_entropy_forward_ref(logits, targets, ignore_index=IGNORE_INDEX, reduction="mean", compute_grad=True,
                              weights=None):
    """The definition in float64: -log_softmax gathered at the targets, times the weights
    (1 without). ``compute_grad`` is accepted for signature parity with the fast path; the
    reference always derives the gradient in backward from the cached logits."""
    logits = np.asarray(logits, dtype=np.float64)
    z, t, valid, n_valid = _check_inputs(logits, targets, ignore_index, reduction)
    om = np.ones(t.shape) if weights is None else np.asarray(weights, dtype=np.float64).reshape(-1)
    if om.shape != t.shape:
        raise DataError(f"weights shape {np.shape(weights)} must equal targets shape {np.shape(targets)}")
    om = np.where(valid, om, 0.0)                                          # (N,)
    m = z.max(axis=1, keepdims=True)                                       # (N, 1)
    logp = z - m - np.log(np.exp(z - m).sum(axis=1, keepdims=True))        # (N, V)
    rows = np.arange(z.shape[0])
    picked = np.where(valid, -logp[rows, np.where(valid, t, 0)], 0.0)     # (N,)
    total = (om * picked).sum()
    W = om.sum()
    if reduction == "mean":
        loss = total / W if W else 0.0
    else:
        loss = total
    return np.array(loss, dtype=np.float64), (logp, t, valid, om, W, reduction, logits.shape)


def cross_entropy_backward_ref(dloss, cache):
    """dL/dlogits (..., V), float64."""
    logp, t, valid, om, W, reduction, shape = cache
    grad = np.exp(logp)                                                    # p (N, V)
    rows = np.nonzero(valid)[0]
    grad[rows, t[rows]] -= 1.0
    grad[~valid] = 0.0
    w = (om / W if W else om * 0.0) if reduction == "mean" else om         # (N,)
    return (grad * (w[:, None] * float(dloss))).reshape(shape)


# ============================================================================ fast CPU path
@njit_pair(fastmath=EXP_ROWS)
def _ce_rows(z, t, valid, w, grad, losses, compute_grad):
    """Per row n: losses[n] = lse - z[n, t[n]] (0 if not valid); if compute_grad,
    grad[n] = w[n] * (softmax(z[n]) - onehot(t[n])) (0 if not valid). Rows in parallel."""
    N, V = z.shape
    n_chunks = min(N, 64)                  # rows in contiguous chunks: scratch allocated per chunk
    for c in prange(n_chunks):
        ibuf = np.empty(V, dtype=np.int32)
        acc = np.empty(16, dtype=z.dtype)
        ebuf = np.empty(V, dtype=z.dtype)
        scale = np.empty(1, dtype=z.dtype)  # w/total in the row's dtype: float32 stays SIMD
        one = np.ones(1, dtype=z.dtype)[0]
        for n in range(c * N // n_chunks, (c + 1) * N // n_chunks):
            if not valid[n]:
                losses[n] = 0.0
                if compute_grad:
                    grad[n, :] = 0
                continue
            row = z[n]
            m = row_max(row, acc)
            e = grad[n] if compute_grad else ebuf   # the exps land where the gradient will be
            total = exp_affine_sum(row, e, one, m, ibuf)   # float64 sum: V up to ~50k terms
            tn = t[n]
            losses[n] = np.log(total) - (np.float64(row[tn]) - np.float64(m))
            if compute_grad:
                scale[0] = w[n] / total
                s = scale[0]
                for j in range(V):
                    e[j] = e[j] * s
                e[tn] -= w[n]


def cross_entropy_forward(logits, targets, ignore_index=IGNORE_INDEX, reduction="mean", compute_grad=True,
                          weights=None):
    """Fast path (``weights``: optional per-target weights, see the module docstring). Returns (loss 0-d array in the logits dtype, cache); with ``compute_grad``
    the cache holds the finished gradient for dL = 1 (backward only scales it by dL).

    Measured (forward with gradient + backward, float32, min over repeats, 1 thread, process
    CPU time; benchmarks/fused_ops.py): config M shape (N = B*T = 2048 rows, V = 4096) 7.0 ms
    vs torch 2.13 F.cross_entropy 29.9 ms; config S (N = 768, V = 65) 0.09 ms vs 0.11 ms.
    """
    logits = np.asarray(logits)
    if logits.dtype not in (np.float32, np.float64):
        logits = logits.astype(np.float32)
    z, t, valid, n_valid = _check_inputs(logits, targets, ignore_index, reduction)
    z = np.ascontiguousarray(z)
    N = z.shape[0]
    if weights is None:   # the plain loss: every valid row 1/N_valid ("mean") or 1 ("sum")
        w = np.full(N, (1.0 / n_valid if n_valid else 0.0) if reduction == "mean" else 1.0)   # (N,)
        om, W = None, float(n_valid)
    else:
        w, W = _row_weights(weights, np.shape(targets), valid, reduction)
        om = w * W if reduction == "mean" else w                           # ω_n (0 where ignored)
    losses = np.empty(N, dtype=np.float64)                                 # (N,)
    grad = np.empty(z.shape if compute_grad else (1, 1), dtype=z.dtype)    # (N, V)
    _ce_rows.pick(z.size)(z, t, valid, w, grad, losses, compute_grad)
    total = float(losses.sum()) if om is None else float((om * losses).sum())
    loss = (total / W if W else 0.0) if reduction == "mean" else total
    cache = (grad.reshape(logits.shape) if compute_grad else None, logits.shape)
    return np.array(loss, dtype=logits.dtype), cache


def cross_entropy_backward(dloss, cache):
    """dL/dlogits (..., V). Returns the cached buffer itself when dL == 1 (the usual case: the
    loss is the root of backward); the autograd engine never writes into gradient buffers."""
    grad, shape = cache
    if grad is None:
        raise RuntimeError("cross_entropy_backward needs a forward run with compute_grad=True")
    d = float(np.asarray(dloss))
    if d == 1.0:
        return grad
    return grad * grad.dtype.type(d)


# ---- numba.cuda kernel: ops/cross_entropy_cuda.py (its class is registered for device "cuda") ----


# ============================================================================ autograd
class CrossEntropyFunction(Function):
    @staticmethod
    def forward(ctx, logits, targets, ignore_index=IGNORE_INDEX, reduction="mean", weights=None):
        return cross_entropy_forward(logits, targets, ignore_index, reduction,
                                     compute_grad=ctx.grad_enabled, weights=weights)

    @staticmethod
    def backward(ctx, grad):
        return cross_entropy_backward(grad, ctx.cache), None


def cross_entropy(logits, targets, ignore_index: int = IGNORE_INDEX, reduction: str = "mean",
                  weights=None) -> Tensor:
    """logits (..., V) Tensor, targets NumPy int (...) -> scalar Tensor (mean over non-ignored);
    ``weights`` (...) float >= 0: a weighted mean instead (module docstring)."""
    if not isinstance(logits, Tensor):
        logits = Tensor(logits)
    if isinstance(targets, Tensor):
        targets = targets.data
    if not is_device_array(targets):    # GPU targets stay on the GPU (checked on the host before the copy)
        targets = np.asarray(targets)
    if weights is None:   # the CUDA class takes no weights argument
        return CrossEntropyFunction.apply(logits, targets, ignore_index=ignore_index, reduction=reduction)
    return CrossEntropyFunction.apply(logits, targets, ignore_index=ignore_index, reduction=reduction,
                                      weights=np.asarray(weights))
