"""Small random GPTs and a full-recompute greedy oracle for the engine tests."""
import numpy as np

from scratchgpt.autograd import no_grad
from scratchgpt.models import GPT, GPTConfig


def tiny_gpt(seed=0, vocab=61, block=12, n_layer=2, n_head=2, n_embd=16, bias=True, scale=8.0, smear=False):
    """A random GPT whose weights are scaled up so greedy decoding does not collapse into one
    repeated token (GPT-2's 0.02 init gives near-uniform logits) and logits are well separated."""
    model = GPT(GPTConfig(vocab_size=vocab, block_size=block, n_layer=n_layer, n_head=n_head,
                          n_embd=n_embd, dropout=0.0, bias=bias, smear=smear), seed=seed)
    rng = np.random.default_rng(seed + 1000)
    for name, p in model.named_parameters():
        if p.data.ndim == 2:
            p.data *= np.float32(scale)
        elif name.endswith(".bias"):
            p.data[...] = rng.standard_normal(p.data.shape).astype(np.float32) * 0.1
        elif name == "transformer.smear.weight":   # a gate that differs per token, not a constant 0.5
            p.data[...] = rng.standard_normal(p.data.shape).astype(np.float32)
    model.eval()
    return model


def recompute_greedy(model, prompt, n):
    """(tokens, per-step logits (n, V) float32): n greedy tokens, each from a full forward of
    the whole sequence so far (no cache) — the definition the engine must reproduce."""
    ids = list(prompt)
    out, logits = [], []
    with no_grad():
        for _ in range(n):
            lg, _ = model(np.asarray([ids], dtype=np.int64))
            row = lg.data[0, -1]
            logits.append(row.copy())
            t = int(np.argmax(row))
            out.append(t)
            ids.append(t)
    return out, np.array(logits)


def forward_logits(model, ids):
    """Logits (T, V) of one full forward."""
    with no_grad():
        lg, _ = model(np.asarray([ids], dtype=np.int64))
    return lg.data[0]
