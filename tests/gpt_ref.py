"""A whole GPT-2 forward and hand-written backward in float64 NumPy — the test oracle.

Independent of scratchgpt.ops and of the autograd engine (in the spirit of llm.c's test_gpt2):
every layer's gradient is derived by hand here, so a bug in an op or in the engine cannot hide
by being reproduced in the reference.

Parameters are a dict keyed by GPT-2 names (transformer.wte.weight, transformer.h.0.ln_1.weight,
...); linear weights are (in, out) like GPT-2's Conv1D; the output layer is tied to wte.
"""
from __future__ import annotations

import numpy as np

GELU_K = np.sqrt(2.0 / np.pi)


# ----------------------------------------------------------------------- layers
def layernorm_fwd(x, w, b, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    rstd = 1.0 / np.sqrt(var + eps)
    xhat = (x - mu) * rstd
    return xhat * w + b, (xhat, rstd, w)


def layernorm_bwd(dout, cache):
    xhat, rstd, w = cache
    C = xhat.shape[-1]
    axes = tuple(range(dout.ndim - 1))
    dw = (dout * xhat).sum(axes)
    db = dout.sum(axes)
    dxhat = dout * w
    # d/dx of (x - mu) * rstd: remove the mean of dxhat and its projection on xhat
    dx = rstd * (dxhat - dxhat.mean(-1, keepdims=True) - xhat * (dxhat * xhat).mean(-1, keepdims=True))
    assert dx.shape[-1] == C
    return dx, dw, db


def linear_fwd(x, w, b):
    return x @ w + b, x


def linear_bwd(dout, x, w):
    C_in, C_out = w.shape
    x2 = x.reshape(-1, C_in)
    d2 = dout.reshape(-1, C_out)
    return (d2 @ w.T).reshape(x.shape), x2.T @ d2, d2.sum(0)


def gelu_fwd(x):
    u = GELU_K * (x + 0.044715 * x ** 3)
    t = np.tanh(u)
    return 0.5 * x * (1.0 + t), (x, t)


def gelu_bwd(dout, cache):
    x, t = cache
    du = GELU_K * (1.0 + 3 * 0.044715 * x ** 2)
    return dout * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t ** 2) * du)


def attention_fwd(qkv, n_head):
    B, T, C3 = qkv.shape
    C = C3 // 3
    HS = C // n_head
    q, k, v = (qkv[..., i * C:(i + 1) * C].reshape(B, T, n_head, HS).transpose(0, 2, 1, 3)
               for i in range(3))                                # (B, NH, T, HS)
    scale = 1.0 / np.sqrt(HS)
    s = (q @ k.transpose(0, 1, 3, 2)) * scale                    # (B, NH, T, T)
    s = np.where(np.tril(np.ones((T, T), bool)), s, -np.inf)
    s = s - s.max(-1, keepdims=True)
    p = np.exp(s)
    p /= p.sum(-1, keepdims=True)
    y = p @ v                                                     # (B, NH, T, HS)
    return y.transpose(0, 2, 1, 3).reshape(B, T, C), (q, k, v, p, scale)


def attention_bwd(dy, cache):
    q, k, v, p, scale = cache
    B, NH, T, HS = q.shape
    dy = dy.reshape(B, T, NH, HS).transpose(0, 2, 1, 3)           # (B, NH, T, HS)
    dp = dy @ v.transpose(0, 1, 3, 2)                             # (B, NH, T, T)
    dv = p.transpose(0, 1, 3, 2) @ dy
    ds = p * (dp - (dp * p).sum(-1, keepdims=True))               # softmax backward; masked p = 0
    ds *= scale
    dq = ds @ k
    dk = ds.transpose(0, 1, 3, 2) @ q
    merge = lambda a: a.transpose(0, 2, 1, 3).reshape(B, T, NH * HS)
    return np.concatenate([merge(dq), merge(dk), merge(dv)], axis=-1)


def cross_entropy_fwd(logits, targets, ignore_index=-100):
    m = logits.max(-1, keepdims=True)
    lse = m + np.log(np.exp(logits - m).sum(-1, keepdims=True))
    logp = logits - lse                                           # (B, T, V)
    valid = targets != ignore_index
    n = int(valid.sum())
    safe = np.where(valid, targets, 0)
    picked = np.take_along_axis(logp, safe[..., None], -1)[..., 0]
    loss = -(picked * valid).sum() / max(n, 1)
    return loss, (logp, safe, valid, n)


def cross_entropy_bwd(cache):
    logp, safe, valid, n = cache
    d = np.exp(logp)
    np.put_along_axis(d, safe[..., None], np.take_along_axis(d, safe[..., None], -1) - 1.0, -1)
    return d * valid[..., None] / max(n, 1)


# ------------------------------------------------------------------------ model
def gpt_forward(params, idx, targets, n_layer, n_head, eps=1e-5, ignore_index=-100):
    """Return (logits, loss or None, cache). Everything in float64."""
    P = {k: np.asarray(v, np.float64) for k, v in params.items()}
    B, T = idx.shape
    wte, wpe = P["transformer.wte.weight"], P["transformer.wpe.weight"]
    x = wte[idx] + wpe[:T][None]                                  # (B, T, C)
    caches = []
    for l in range(n_layer):
        pre = f"transformer.h.{l}."
        ln1, c_ln1 = layernorm_fwd(x, P[pre + "ln_1.weight"], P[pre + "ln_1.bias"], eps)
        qkv, _ = linear_fwd(ln1, P[pre + "attn.c_attn.weight"], P[pre + "attn.c_attn.bias"])
        y, c_att = attention_fwd(qkv, n_head)
        a, _ = linear_fwd(y, P[pre + "attn.c_proj.weight"], P[pre + "attn.c_proj.bias"])
        x1 = x + a
        ln2, c_ln2 = layernorm_fwd(x1, P[pre + "ln_2.weight"], P[pre + "ln_2.bias"], eps)
        h, _ = linear_fwd(ln2, P[pre + "mlp.c_fc.weight"], P[pre + "mlp.c_fc.bias"])
        g, c_gelu = gelu_fwd(h)
        m, _ = linear_fwd(g, P[pre + "mlp.c_proj.weight"], P[pre + "mlp.c_proj.bias"])
        caches.append((ln1, c_ln1, y, c_att, ln2, c_ln2, g, c_gelu))
        x = x1 + m
    lnf, c_lnf = layernorm_fwd(x, P["transformer.ln_f.weight"], P["transformer.ln_f.bias"], eps)
    logits = lnf @ wte.T                                          # (B, T, V) tied output layer
    loss, c_ce = (None, None)
    if targets is not None:
        loss, c_ce = cross_entropy_fwd(logits, targets, ignore_index)
    cache = dict(P=P, idx=idx, caches=caches, lnf=lnf, c_lnf=c_lnf, c_ce=c_ce)
    return logits, loss, cache


def gpt_backward(cache, n_layer):
    """Gradients of the mean loss w.r.t. every parameter, keyed by GPT-2 name."""
    P, idx = cache["P"], cache["idx"]
    B, T = idx.shape
    G = {k: np.zeros_like(v) for k, v in P.items()}
    dlogits = cross_entropy_bwd(cache["c_ce"])                    # (B, T, V)
    wte = P["transformer.wte.weight"]
    V, C = wte.shape
    lnf = cache["lnf"]
    G["transformer.wte.weight"] += dlogits.reshape(-1, V).T @ lnf.reshape(-1, C)
    dx, dw, db = layernorm_bwd(dlogits @ wte, cache["c_lnf"])
    G["transformer.ln_f.weight"] += dw
    G["transformer.ln_f.bias"] += db
    for l in reversed(range(n_layer)):
        pre = f"transformer.h.{l}."
        ln1, c_ln1, y, c_att, ln2, c_ln2, g, c_gelu = cache["caches"][l]
        # x = x1 + m: the residual passes dx to x1 unchanged, plus the MLP branch
        dg, dW, dB = linear_bwd(dx, g, P[pre + "mlp.c_proj.weight"])
        G[pre + "mlp.c_proj.weight"] += dW
        G[pre + "mlp.c_proj.bias"] += dB
        dh = gelu_bwd(dg, c_gelu)
        dln2, dW, dB = linear_bwd(dh, ln2, P[pre + "mlp.c_fc.weight"])
        G[pre + "mlp.c_fc.weight"] += dW
        G[pre + "mlp.c_fc.bias"] += dB
        dx1, dw, db = layernorm_bwd(dln2, c_ln2)
        G[pre + "ln_2.weight"] += dw
        G[pre + "ln_2.bias"] += db
        dx1 = dx1 + dx
        # x1 = x + a
        dy, dW, dB = linear_bwd(dx1, y, P[pre + "attn.c_proj.weight"])
        G[pre + "attn.c_proj.weight"] += dW
        G[pre + "attn.c_proj.bias"] += dB
        dqkv = attention_bwd(dy, c_att)
        dln1, dW, dB = linear_bwd(dqkv, ln1, P[pre + "attn.c_attn.weight"])
        G[pre + "attn.c_attn.weight"] += dW
        G[pre + "attn.c_attn.bias"] += dB
        dx0, dw, db = layernorm_bwd(dln1, c_ln1)
        G[pre + "ln_1.weight"] += dw
        G[pre + "ln_1.bias"] += db
        dx = dx1 + dx0
    np.add.at(G["transformer.wte.weight"], idx, dx)
    G["transformer.wpe.weight"][:T] += dx.sum(0)
    return G
