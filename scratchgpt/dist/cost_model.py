"""The alpha-beta model of ring allreduce, and what it says about data parallelism at scale.

Sending n bytes costs ``alpha + n * beta`` (alpha: latency per message, beta: seconds per byte
= 1 / bandwidth). Ring allreduce over p ranks is a reduce-scatter then an allgather, each p - 1
rounds of one message of n/p bytes per rank:

    T_allreduce(n, p) = 2 (p - 1) alpha + 2 (p - 1) / p * n * beta

— the bandwidth term barely grows with p (it tends to 2 n beta), the latency term grows
linearly. Data parallelism over a fixed global batch divides the compute of a step by p but not
its gradient allreduce, so

    step(p) = compute / p + T_allreduce(gradient bytes, p)      (no overlap)

and it stops paying once the allreduce is as long as a rank's share of the compute. Overlapping
the allreduce with backward hides at most the backward part (~2/3 of the compute).

Memory per rank for Adam in float32: weights 4 + gradients 4 + two moments 8 = 16 bytes per
parameter, all replicated under plain data parallelism. ZeRO-1 shards the moments (8/p), with
the same communication volume (reduce-scatter + allgather instead of allreduce); tensor
parallelism also splits weights and gradients (and the activations' matmuls) but sends
activations twice per block per pass instead.
"""
from __future__ import annotations

import numpy as np

# The network the projection assumes (stated, not measured): 100 Gb/s links, 5 us per message.
NETWORK = {"name": "100 Gb/s, 5 us", "alpha": 5e-6, "beta": 8 / 100e9}
GPT2_124M = dict(vocab_size=50257, block_size=1024, n_layer=12, n_embd=768)


def ring_allreduce_seconds(nbytes: float, p: int, alpha: float, beta: float) -> float:
    if p <= 1:
        return 0.0
    return 2 * (p - 1) * alpha + 2 * (p - 1) / p * nbytes * beta


def fit_alpha_beta(nbytes, seconds, p: int) -> tuple[float, float]:
    """Least-squares (alpha, beta) from allreduce timings on p ranks (the model above)."""
    n = np.asarray(nbytes, dtype=np.float64)
    t = np.asarray(seconds, dtype=np.float64)
    A = np.stack([np.full_like(n, 2 * (p - 1)), 2 * (p - 1) / p * n], axis=1)
    (alpha, beta), *_ = np.linalg.lstsq(A, t, rcond=None)
    if alpha < 0:       # noisy timings (a loaded machine) can tilt the line below zero: no latency then
        alpha = 0.0
        beta = float(np.dot(A[:, 1], t) / np.dot(A[:, 1], A[:, 1]))
    return float(alpha), float(beta)


def gpt2_parameters(vocab_size, block_size, n_layer, n_embd) -> int:
    """Parameters of a GPT-2 shape with tied embeddings (124,439,808 for GPT-2 small)."""
    C = n_embd
    per_block = 12 * C * C + 13 * C          # qkv 3C^2+3C, proj C^2+C, fc 4C^2+4C, proj 4C^2+C, 2 LN 4C
    return vocab_size * C + block_size * C + n_layer * per_block + 2 * C


def train_flops_per_token(n_params: int, n_layer: int, block_size: int, n_embd: int) -> float:
    """6 N (forward + backward of the matmuls) + 12 L T C (attention scores and mixing)."""
    return 6.0 * n_params + 12.0 * n_layer * block_size * n_embd


def project(ranks, n_params: int, tokens_per_step: int, flops_per_token: float, flops_per_second: float,
            alpha: float, beta: float, overlap: float = 0.0) -> list[dict]:
    """Step time, speedup and efficiency of data parallelism over a fixed global batch.
    ``overlap``: the fraction of a rank's compute the allreduce can hide behind (0: none)."""
    grad_bytes = 4 * n_params
    compute1 = tokens_per_step * flops_per_token / flops_per_second
    rows = []
    for p in ranks:
        compute = compute1 / p
        comm = ring_allreduce_seconds(grad_bytes, p, alpha, beta)
        exposed = max(0.0, comm - overlap * compute)
        step = compute + exposed
        rows.append({"ranks": p, "compute_s": compute, "allreduce_s": comm, "step_s": step,
                     "speedup": compute1 / step, "efficiency": compute1 / step / p,
                     "dp_gb_per_rank": 16 * n_params / 1e9,
                     "zero1_gb_per_rank": (8 + 8 / p) * n_params / 1e9})
    return rows


def break_even_ranks(n_params: int, tokens_per_step: int, flops_per_token: float, flops_per_second: float,
                     alpha: float, beta: float) -> int:
    """The smallest p at which the (non-overlapped) allreduce takes as long as a rank's compute."""
    compute1 = tokens_per_step * flops_per_token / flops_per_second
    p = 2
    while p < 1 << 20 and ring_allreduce_seconds(4 * n_params, p, alpha, beta) < compute1 / p:
        p += 1
    return p


def projection_table(rows, title: str) -> str:
    lines = [title, "",
             "| ranks | compute/step | allreduce/step | step | speedup | efficiency | GB/rank DP | GB/rank ZeRO-1 |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['ranks']} | {_t(r['compute_s'])} | {_t(r['allreduce_s'])} | {_t(r['step_s'])} | "
                     f"{r['speedup']:.1f}x | {100 * r['efficiency']:.0f} % | {r['dp_gb_per_rank']:.2f} | "
                     f"{r['zero1_gb_per_rank']:.2f} |")
    return "\n".join(lines)


def _t(s: float) -> str:
    return f"{s * 1e3:.1f} ms" if s < 10 else f"{s:.1f} s"
