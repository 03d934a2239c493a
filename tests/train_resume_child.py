"""Helper process for tests/test_train_resume.py: a tiny deterministic training run.

usage: python train_resume_child.py RUN_DIR [--resume]
Prints "step N" after every step (flushed) so the parent can kill it mid-run.
"""
import sys

import numpy as np


def build(run_dir, resume, mixed=False, progress=False):
    from scratchgpt.data.batches import PretrainBatches
    from scratchgpt.models import GPT, GPTConfig
    from scratchgpt.train.eval_batches import fixed_windows
    from scratchgpt.train.config import TrainConfig
    from scratchgpt.train.trainer import Trainer
    V, T = 61, 16
    # a learnable synthetic corpus: a noisy repeating pattern
    rng = np.random.default_rng(0)
    tokens = (np.arange(4000) * 7 % V).astype(np.uint16)
    noise = rng.random(4000) < 0.1
    tokens[noise] = rng.integers(0, V, size=int(noise.sum()))
    cfg = TrainConfig(lr=3e-3, min_lr=3e-4, warmup_steps=2, max_steps=10, batch_size=4, grad_accum=2, seq_len=T,
                      dropout=0.1, eval_every=3, eval_batches=2, checkpoint_every=2, log_every=1, seed=7,
                      mixed_precision=mixed, progress=progress)
    model = GPT(GPTConfig(vocab_size=V, block_size=T, n_layer=2, n_head=2, n_embd=16, dropout=0.1), seed=3)
    batches = PretrainBatches(tokens[:3500], cfg.batch_size, cfg.seq_len, seed=cfg.seed)
    val = fixed_windows(tokens[3500:], cfg.batch_size, cfg.seq_len, cfg.eval_batches)
    return Trainer(model, cfg, batches, val, run_dir, resume=resume, log=lambda s: None)


def main():
    run_dir = sys.argv[1]
    resume = "--resume" in sys.argv
    tr = build(run_dir, resume)

    def on_step(trainer, info):
        print(f"step {trainer.step}", flush=True)

    tr.fit(on_step=on_step)
    print("done", flush=True)


if __name__ == "__main__":
    main()
