"""A cold Numba cache and a warm one train to the same bits.

ops/_numba.py compiles a parallel build whose sums LLVM may reorder ('reassoc') fresh in every
process instead of loading it from Numba's disk cache: the cached copy is optimised differently
from the code the compiling process ran (numba #10617), so a fresh checkout's first run trained to
other weights than every later run. This test runs the same training step twice in subprocesses
that share an empty cache directory (NUMBA_CACHE_DIR): the first compiles and writes the cache,
the second loads what it can from it. Every kernel is forced to its parallel build, which is
where the difference lived. Both must give the same loss, gradients and updated weights."""
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np


def _step_digest() -> str:
    from scratchgpt.models import GPT, GPTConfig
    from scratchgpt.ops._numba import force_build
    from scratchgpt.optim import AdamW, clip_grad_norm, decay_groups

    h = hashlib.sha256()
    for smear in (False, True):
        cfg = GPTConfig(vocab_size=97, block_size=32, n_layer=2, n_head=2, n_embd=32, dropout=0.0, smear=smear)
        model = GPT(cfg, seed=11)
        opt = AdamW(decay_groups(model, 0.1), lr=3e-3, betas=(0.9, 0.99), eps=1e-8)
        rng = np.random.default_rng(2)
        x, y = rng.integers(0, 97, (4, 32)), rng.integers(0, 97, (4, 32))
        mask = (rng.random((4, 32)) < 0.6).astype(np.float32)
        with force_build(True):
            opt.zero_grad()
            _, loss = model(x, y, loss_mask=mask)
            loss.backward()
            h.update(np.float32(loss.data).tobytes())
            for k, p in model.named_parameters():
                h.update(p.grad.tobytes())
            clip_grad_norm(model.parameters(), 0.5)
            opt.step()
        for k, p in model.named_parameters():
            h.update(p.data.tobytes())
    return h.hexdigest()


def test_cold_and_warm_numba_cache_train_to_the_same_bits(tmp_path):
    root = str(Path(__file__).resolve().parents[1])       # this checkout's package
    env = {**os.environ, "PYTHONPATH": root, "NUMBA_CACHE_DIR": str(tmp_path / "numba_cache")}
    digests = []
    for run in ("cold", "warm"):
        proc = subprocess.run([sys.executable, __file__], capture_output=True, text=True, env=env,
                              timeout=600, cwd=root)
        assert proc.returncode == 0, proc.stderr[-3000:]
        digests.append(json.loads(proc.stdout.strip().splitlines()[-1])["sha256"])
    assert any((tmp_path / "numba_cache").rglob("*.nbi")), "the first run wrote no cache: the test checks nothing"
    assert digests[0] == digests[1], "the run that compiled the kernels and the run that loaded them differ"


if __name__ == "__main__":
    print(json.dumps({"sha256": _step_digest()}))
