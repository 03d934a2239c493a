"""Time to loss: our trainer vs an equivalent PyTorch loop, same model, same data, same wall clock.

    python benchmarks/time_to_loss.py                 # 60 s per side, small GPT
    python benchmarks/time_to_loss.py --budget 120 --n_layer 4 --n_embd 128

Both sides train the same GPT-2-shaped model (pre-LN, tied embeddings, GELU-tanh, GPT-2 init)
with AdamW (decay on matrices only), the same learning rate (linear warmup, then constant —
a cosine would need the step count, which a time budget does not fix), gradient clipping at
1.0, float32, 2 threads, on *the same batches* (both draw from scratchgpt.data.batches
.PretrainBatches with the same seed). After the budget each evaluates the same fixed
validation windows. Each side runs in its own process (NumPy and torch alternating in one
process slow each other down). The PyTorch loop is written here, nanoGPT-style; it is a
reference, never imported by the library.

Data: the bundled offline pretraining corpus (``scratchgpt data`` preset 'default'), tokenized
by a BPE tokenizer trained on it, cached in --workdir.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def prepare(workdir: Path, vocab_size: int) -> None:
    if (workdir / "train.npy").is_file():
        return
    from scratchgpt.data.pipeline import prepare as prep, preset
    from scratchgpt.train.demo import corpus_texts, train_tokenizer
    from scratchgpt.tokenizer.special import CHAT_SPECIAL_TOKENS  # noqa: F401 (documented dependency)
    d = workdir / "data"
    prep(preset("default"), d, progress=False)
    tok = train_tokenizer(d, vocab_size, workdir / "tokenizer.json", progress=False)
    ids = []
    eot = tok.special_tokens["<|endoftext|>"]
    for text in corpus_texts(d):
        ids.extend(tok.encode(text))
        ids.append(eot)
    ids = np.asarray(ids, dtype=np.int64)
    n_val = len(ids) // 20
    np.save(workdir / "train.npy", ids[:-n_val])
    np.save(workdir / "val.npy", ids[-n_val:])
    (workdir / "meta.json").write_text(json.dumps({"vocab_size": tok.vocab_size, "n_tokens": int(len(ids))}))


def lr_at(step, lr, warmup):
    return lr * min(1.0, (step + 1) / warmup)


# ---------------------------------------------------------------------------- ours
def worker_ours(a, train, val, V):
    from scratchgpt.data.batches import PretrainBatches
    from scratchgpt.models import GPT, GPTConfig
    from scratchgpt.train.eval_batches import fixed_windows
    from scratchgpt.train.config import TrainConfig
    from scratchgpt.train.trainer import Trainer, evaluate_loss
    import tempfile
    cfg = TrainConfig(lr=a.lr, min_lr=a.lr, warmup_steps=a.warmup, max_steps=10 ** 9, schedule="constant",
                      batch_size=a.batch_size, seq_len=a.seq_len, weight_decay=0.1, grad_clip=1.0,
                      eval_every=10 ** 8, log_every=10 ** 8, progress=False, seed=a.seed)
    model = GPT(GPTConfig(vocab_size=V, block_size=a.seq_len, n_layer=a.n_layer, n_head=a.n_head,
                          n_embd=a.n_embd), seed=a.seed)
    batches = PretrainBatches(train, a.batch_size, a.seq_len, seed=a.seed)
    vb = fixed_windows(val, a.batch_size, a.seq_len, a.eval_batches)
    with tempfile.TemporaryDirectory() as d:
        tr = Trainer(model, cfg, batches, vb, d, log=lambda s: None)
        tr.train_step()  # compile the Numba kernels outside the timed budget (the torch side warms up too)
        t0 = time.perf_counter()
        steps = 1
        while time.perf_counter() - t0 < a.budget:
            tr.train_step()
            steps += 1
        spent = time.perf_counter() - t0
        return {"side": "scratchgpt", "steps": steps, "seconds": spent, "val_loss": evaluate_loss(model, vb),
                "tokens_per_s": (steps - 1) * a.batch_size * a.seq_len / spent, "params": model.num_parameters()}


# ---------------------------------------------------------------------------- torch
def worker_torch(a, train, val, V):
    import torch
    import torch.nn as tnn
    import torch.nn.functional as F
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    C, NH, L, T = a.n_embd, a.n_head, a.n_layer, a.seq_len

    class Attn(tnn.Module):
        def __init__(self):
            super().__init__()
            self.c_attn = tnn.Linear(C, 3 * C)
            self.c_proj = tnn.Linear(C, C)

        def forward(self, x):
            B, T_, _ = x.shape
            q, k, v = self.c_attn(x).split(C, dim=2)
            q, k, v = (t.view(B, T_, NH, C // NH).transpose(1, 2) for t in (q, k, v))
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            return self.c_proj(y.transpose(1, 2).reshape(B, T_, C))

    class BlockT(tnn.Module):
        def __init__(self):
            super().__init__()
            self.ln_1, self.attn = tnn.LayerNorm(C), Attn()
            self.ln_2 = tnn.LayerNorm(C)
            self.c_fc, self.c_proj = tnn.Linear(C, 4 * C), tnn.Linear(4 * C, C)

        def forward(self, x):
            x = x + self.attn(self.ln_1(x))
            return x + self.c_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))

    class GPTT(tnn.Module):
        def __init__(self):
            super().__init__()
            self.wte, self.wpe = tnn.Embedding(V, C), tnn.Embedding(T, C)
            self.h = tnn.ModuleList(BlockT() for _ in range(L))
            self.ln_f = tnn.LayerNorm(C)
            for n, p in self.named_parameters():
                if p.dim() >= 2:
                    std = 0.02 / math.sqrt(2 * L) if n.endswith("c_proj.weight") else 0.02
                    tnn.init.normal_(p, 0.0, std)
                elif n.endswith("bias"):
                    tnn.init.zeros_(p)

        def forward(self, idx, tgt):
            x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1]))
            for b in self.h:
                x = b(x)
            logits = self.ln_f(x) @ self.wte.weight.T
            return F.cross_entropy(logits.view(-1, V), tgt.reshape(-1))

    from scratchgpt.data.batches import PretrainBatches
    from scratchgpt.train.eval_batches import fixed_windows
    model = GPTT()
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and not n.startswith(("wte", "wpe"))]
    other = [p for n, p in model.named_parameters() if not (p.dim() >= 2 and not n.startswith(("wte", "wpe")))]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": other, "weight_decay": 0.0}],
                            lr=a.lr, betas=(0.9, 0.99), eps=1e-8)
    batches = PretrainBatches(train, a.batch_size, a.seq_len, seed=a.seed)
    vb = fixed_windows(val, a.batch_size, a.seq_len, a.eval_batches)

    def step(i):
        b = batches.next_batch()
        for g in opt.param_groups:
            g["lr"] = lr_at(i, a.lr, a.warmup)
        loss = model(torch.from_numpy(b.x), torch.from_numpy(b.y))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()

    step(0)
    t0 = time.perf_counter()
    steps = 1
    while time.perf_counter() - t0 < a.budget:
        step(steps)
        steps += 1
    spent = time.perf_counter() - t0
    with torch.no_grad():
        tot = sum(float(model(torch.from_numpy(x), torch.from_numpy(y))) * x.size for x, y, _ in vb)
        n = sum(x.size for x, _, _ in vb)
    return {"side": "pytorch", "steps": steps, "seconds": spent, "val_loss": tot / n,
            "tokens_per_s": (steps - 1) * a.batch_size * a.seq_len / spent,
            "params": sum(p.numel() for p in model.parameters())}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--budget", type=float, default=60.0, help="seconds of training per side")
    p.add_argument("--workdir", default="runs/bench_time_to_loss")
    p.add_argument("--vocab_size", type=int, default=1024)
    p.add_argument("--n_layer", type=int, default=4)
    p.add_argument("--n_head", type=int, default=4)
    p.add_argument("--n_embd", type=int, default=128)
    p.add_argument("--seq_len", type=int, default=128)
    p.add_argument("--batch_size", type=int, default=16)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--warmup", type=int, default=30)
    p.add_argument("--eval_batches", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2, help="threads per side (Numba, BLAS, torch)")
    p.add_argument("--worker", choices=["ours", "torch"], default=None)
    a = p.parse_args(argv)
    workdir = Path(a.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    if a.worker:
        train = np.load(workdir / "train.npy", allow_pickle=False)
        val = np.load(workdir / "val.npy", allow_pickle=False)
        V = json.loads((workdir / "meta.json").read_text())["vocab_size"]
        res = (worker_ours if a.worker == "ours" else worker_torch)(a, train, val, V)
        print("RESULT " + json.dumps(res), flush=True)
        return 0
    prepare(workdir, a.vocab_size)
    results = []
    args = [x for x in (argv if argv is not None else sys.argv[1:])]
    n = str(a.threads)
    env = {**os.environ, "OMP_NUM_THREADS": n, "NUMBA_NUM_THREADS": n, "OPENBLAS_NUM_THREADS": n}
    for side in ("ours", "torch"):
        print(f"training {side} for {a.budget:.0f}s ...", flush=True)
        out = subprocess.run([sys.executable, __file__, *args, "--worker", side], capture_output=True, text=True,
                             env=env)
        line = [l for l in out.stdout.splitlines() if l.startswith("RESULT ")]
        if not line:
            print(out.stdout[-2000:], out.stderr[-4000:], file=sys.stderr)
            return 1
        results.append(json.loads(line[-1][7:]))
    meta = json.loads((workdir / "meta.json").read_text())
    print(f"\nsame GPT ({results[0]['params']:,} params, {a.n_layer} layers x {a.n_embd}), same batches "
          f"({a.batch_size} x {a.seq_len} tokens of a {meta['n_tokens']:,}-token corpus), {a.budget:.0f}s each, "
          f"float32, {a.threads} thread(s) each:")
    print(f"{'':12}{'steps':>8}{'tokens/s':>12}{'val loss':>10}")
    for r in results:
        print(f"{r['side']:12}{r['steps']:>8}{r['tokens_per_s']:>12,.0f}{r['val_loss']:>10.4f}")
    (workdir / "result.json").write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
