"""The Trainer's data-parallel hooks: a gradient-sync point between backward and clipping, and a
trainer that writes no files (every rank but 0)."""
import numpy as np

from scratchgpt.data.batches import PretrainBatches
from scratchgpt.models import GPT, GPTConfig
from scratchgpt.train.config import TrainConfig
from scratchgpt.train.eval_batches import fixed_windows
from scratchgpt.train.trainer import Trainer

V, T = 31, 8


def _trainer(run_dir, **hooks):
    tokens = (np.arange(1200) * 7 % V).astype(np.uint16)
    cfg = TrainConfig(lr=1e-2, warmup_steps=1, max_steps=4, batch_size=2, grad_accum=2, seq_len=T,
                      eval_every=2, eval_batches=1, checkpoint_every=2, log_every=1, seed=1, progress=False,
                      optimizer="sgd", weight_decay=0.0, grad_clip=1.0, patience=1, min_delta=10.0)
    model = GPT(GPTConfig(vocab_size=V, block_size=T, n_layer=1, n_head=2, n_embd=8), seed=0)
    batches = PretrainBatches(tokens[:1000], cfg.batch_size, cfg.seq_len, seed=cfg.seed)
    val = fixed_windows(tokens[1000:], cfg.batch_size, cfg.seq_len, cfg.eval_batches)
    return Trainer(model, cfg, batches, val, run_dir, log=lambda s: None, **hooks)


def test_sync_grads_runs_after_backward_and_before_clipping(tmp_path):
    seen = []

    def zero_out(params):            # a "sync" that replaces every gradient: visible downstream
        seen.append(all(p.grad is not None for p in params))
        for p in params:
            p.grad = np.zeros_like(p.grad)

    tr = _trainer(tmp_path / "run", sync_grads=zero_out)
    before = {n: p.data.copy() for n, p in tr.model.named_parameters()}
    res = tr.fit()
    assert seen == [True] * 4                                  # once per step, with the grads of backward
    assert [r["grad_norm"] for r in res.history if "grad_norm" in r] == [0.0] * len(res.history)
    for n, p in tr.model.named_parameters():                   # SGD on zero gradients: nothing moves
        np.testing.assert_array_equal(p.data, before[n])


def test_sync_grads_that_changes_nothing_gives_the_plain_run(tmp_path):
    plain = _trainer(tmp_path / "a").fit()
    synced = _trainer(tmp_path / "b", sync_grads=lambda params: None).fit()
    assert [r["loss"] for r in plain.history] == [r["loss"] for r in synced.history]


def test_a_trainer_that_writes_no_files_leaves_no_run_directory(tmp_path):
    run = tmp_path / "rank1"
    tr = _trainer(run, writes_files=False)
    res = tr.fit()
    assert not run.exists()
    assert res.steps == tr.step and res.history                # it trained and kept its records
    assert res.stopped_early                                   # min_delta=10: the 2nd eval stops it
    writer = _trainer(tmp_path / "rank0")
    ref = writer.fit()
    assert (tmp_path / "rank0" / "metrics.jsonl").is_file()
    assert (tmp_path / "rank0" / "checkpoints" / "latest").is_file()
    assert [r["loss"] for r in ref.history] == [r["loss"] for r in res.history]
    for (n, a), (_, b) in zip(tr.model.named_parameters(), writer.model.named_parameters()):
        np.testing.assert_array_equal(a.data, b.data)          # same best weights restored, from memory
