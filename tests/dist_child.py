"""Helper program for tests/test_dist.py, run as one process or as ranks of ``mpiexec -n N``.

usage: python dist_child.py MODE OUT_DIR [options]
  train     tiny training run (masked targets, grad accumulation, clipping); rank 0 writes
            OUT_DIR/result.json (losses) and the run's checkpoints; every rank writes
            OUT_DIR/weights_rank{r}.npz-free digest in result_rank{r}.json
  allreduce random gradients through GradBuckets and through the per-tensor twin
  shards    the rows each rank receives for a few steps (OUT_DIR/rows_rank{r}.json)
Options: --steps N, --dist (use MPI even on one rank), --fail-rank R --fail-step S (raise there),
--print-steps (print "step N" per step, flushed), --resume, --checkpoint-every N.
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np

V, T = 61, 16


def corpus():
    rng = np.random.default_rng(0)
    tokens = (np.arange(4000) * 7 % V).astype(np.uint16)
    noise = rng.random(4000) < 0.1
    tokens[noise] = rng.integers(0, V, size=int(noise.sum()))
    return tokens


class MaskedBatches:
    """PretrainBatches with ~30 % of the targets ignored (seeded by step): ranks then count
    different numbers of tokens, which is what makes the loss weighting necessary."""

    def __init__(self, inner):
        self.inner = inner
        self.batch_size = inner.batch_size

    def next_batch(self):
        step = self.inner.step
        b = self.inner.next_batch()
        drop = np.random.default_rng([99, step]).random(b.y.shape) < 0.3
        drop[0, :] = True                    # one whole row without a counted target
        y = np.where(drop, -100, b.y)
        return b.x, y, None

    def state_dict(self):
        return self.inner.state_dict()

    def load_state_dict(self, s):
        self.inner.load_state_dict(s)


def build(run_dir, args, parallel):
    from scratchgpt.data.batches import PretrainBatches
    from scratchgpt.models import GPT, GPTConfig
    from scratchgpt.train.eval_batches import fixed_windows
    from scratchgpt.train.config import TrainConfig
    from scratchgpt.train.trainer import Trainer
    tokens = corpus()
    cfg = TrainConfig(lr=3e-3, min_lr=3e-4, warmup_steps=2, max_steps=args.steps, batch_size=args.batch_size,
                      grad_accum=2, seq_len=T, dropout=0.0, eval_every=3, eval_batches=2,
                      checkpoint_every=args.checkpoint_every, log_every=1, seed=7, grad_clip=0.5, progress=False,
                      patience=args.patience, min_delta=args.min_delta, mixed_precision=args.mixed_precision,
                      loss_scale=args.loss_scale, scale_growth_interval=2)
    model = GPT(GPTConfig(vocab_size=V, block_size=T, n_layer=args.n_layer, n_head=2, n_embd=16, dropout=0.0),
                seed=3, device=args.device)
    batches = MaskedBatches(PretrainBatches(tokens[:3500], cfg.batch_size, cfg.seq_len, seed=cfg.seed))
    if parallel is not None:
        batches = parallel.shard(batches)
    val = fixed_windows(tokens[3500:], cfg.batch_size, cfg.seq_len, cfg.eval_batches)
    tr = Trainer(model, cfg, batches, val, run_dir, resume=args.resume, log=lambda s: None,
                 **(parallel.trainer_hooks() if parallel is not None else {}))
    if parallel is not None:
        parallel.check_start(tr, {"corpus": args.corpus_tag})
    return tr


def mode_train(out, args, world):
    parallel = None
    if world is not None:
        from scratchgpt.dist.data_parallel import DataParallel
        parallel = DataParallel(world, bucket_mb=args.bucket_mb, overlap=not args.no_overlap, zero=args.zero)
    rank = world.rank if world else 0
    (out / f"pid_rank{rank}").write_text(str(__import__("os").getpid()))
    tr = build(out / "run", args, parallel)

    def on_step(trainer, info):
        if args.print_steps and rank == 0:
            print(f"step {trainer.step}", flush=True)
        if args.fail_rank == rank and trainer.step == args.fail_step:
            raise RuntimeError(f"injected failure at step {trainer.step}")
        if args.hang_rank == rank and trainer.step == args.fail_step:
            import time
            time.sleep(120)                       # alive but silent: the others' deadline must fire

    res = tr.fit(on_step=on_step)
    losses = [r["loss"] for r in res.history if "loss" in r]
    vals = [r["val_loss"] for r in res.history if "val_loss" in r]
    from scratchgpt.backend import to_host
    weights = {n: to_host(p.data).tolist() for n, p in tr.model.named_parameters()}
    (out / f"result_rank{rank}.json").write_text(json.dumps(
        {"losses": losses, "val_losses": vals, "tokens": res.tokens, "weights": weights, "steps": res.steps,
         "stopped_early": res.stopped_early, "skipped_steps": res.skipped_steps,
         "buckets": len(parallel.buckets.buckets) if parallel else 0,
         "optimizer_state_bytes": (parallel.optimizer.state_bytes if parallel and parallel.optimizer else
                                   sum(a.nbytes for a in tr.optimizer.state_dict()["arrays"].values())),
         "started_in_backward": parallel.buckets.started_in_backward if parallel else 0,
         "loss_scales": [r["loss_scale"] for r in res.history if "loss_scale" in r]}))


def mode_allreduce(out, args, world):
    from scratchgpt.dist.allreduce import GradBuckets, allreduce_per_tensor_ref
    from scratchgpt.models import GPT, GPTConfig
    model = GPT(GPTConfig(vocab_size=V, block_size=T, n_layer=2, n_head=2, n_embd=16), seed=3)
    params = model.parameters()
    rng = np.random.default_rng(100 + world.rank)
    grads = [rng.standard_normal(p.data.shape).astype(np.float32) for p in params]
    grads[3] = None                                   # a parameter without a gradient counts as zero
    for p, g in zip(params, grads):
        p.grad = None if g is None else g.copy()
    # tiny buckets (0.002 MB = 524 floats) so several parameters share a bucket and several buckets exist
    buckets = GradBuckets(params, world, bucket_mb=0.002)
    buckets.sync()
    bucketed = [p.grad.copy() for p in params]
    for p, g in zip(params, grads):
        p.grad = None if g is None else g.copy()
    allreduce_per_tensor_ref(params, world)
    ref = [p.grad.copy() for p in params]
    exact = all(np.array_equal(a, b) for a, b in zip(bucketed, ref))
    err = max(float(np.max(np.abs(a - b))) for a, b in zip(bucketed, ref))
    # the mean over ranks, from the seeds, in float64 (what both must equal up to float32 rounding)
    want = []
    for i, p in enumerate(params):
        acc = np.zeros(p.data.shape)
        for r in range(world.size):
            g = np.random.default_rng(100 + r)
            gs = [g.standard_normal(q.data.shape).astype(np.float32) for q in params]
            acc += 0 if i == 3 else gs[i]
        want.append(acc / world.size)
    err_ref = max(float(np.max(np.abs(a - w))) for a, w in zip(bucketed, want))
    (out / f"allreduce_rank{world.rank}.json").write_text(json.dumps(
        {"exact": exact, "max_err": err, "max_err_vs_float64": err_ref, "n_buckets": len(buckets.buckets)}))


def mode_shards(out, args, world):
    from scratchgpt.data.batches import PretrainBatches
    from scratchgpt.dist.sharding import ShardedBatches
    inner = PretrainBatches(corpus(), args.batch_size, T, seed=7)
    sb = ShardedBatches(inner, world.rank, world.size)
    rows = []
    for _ in range(args.steps):
        b = sb.next_batch()
        rows.append(b.x.tolist())
    (out / f"rows_rank{world.rank}.json").write_text(json.dumps(rows))


def mode_tp(out, args, world):
    """Greedy generation on one process and tensor-parallel over the ranks, same random GPT."""
    from scratchgpt.dist.tensor_parallel import block_weight_bytes, tensor_parallel_weights
    from scratchgpt.infer import Engine, SamplingParams
    from scratchgpt.infer.weights import decoder_weights
    from scratchgpt.models import GPT, GPTConfig
    model = GPT(GPTConfig(vocab_size=V, block_size=32, n_layer=2, n_head=4, n_embd=32), seed=5)
    for name, p in model.named_parameters():   # blocks louder than the (tied) embedding: varied greedy tokens
        if ".h." in name and p.data.ndim == 2:
            p.data *= np.float32(6.0)
    full = decoder_weights(model)
    share = tensor_parallel_weights(full, world)
    params = SamplingParams(temperature=0.0, max_new_tokens=12, ignore_eos=True)
    prompt = [3, 14, 15, 9, 26, 5, 35]
    runs = {}
    for name, w in (("one", full), ("tp", share)):
        eng = Engine(w, None, max_batch_size=2, return_logits=True)
        outs = list(eng.outputs(prompt, params))
        runs[name] = {"tokens": [o.token_id for o in outs], "logits": np.stack([o.logits for o in outs])}
    (out / f"tp_rank{world.rank}.json").write_text(json.dumps({
        "tokens_one": runs["one"]["tokens"], "tokens_tp": runs["tp"]["tokens"],
        "max_logit_diff": float(np.max(np.abs(runs["one"]["logits"] - runs["tp"]["logits"]))),
        "max_logit": float(np.max(np.abs(runs["one"]["logits"]))),
        "block_bytes_full": block_weight_bytes(full), "block_bytes_rank": block_weight_bytes(share),
        "cache_bytes_full": Engine(full, None, max_batch_size=2).cache.nbytes,
        "cache_bytes_rank": Engine(share, None, max_batch_size=2).cache.nbytes}))


def mode_zero(out, args, world):
    """3 AdamW steps two ways on this rank's rows: allreduce + AdamW (moments everywhere) and ZeRO-1."""
    from scratchgpt.data.batches import PretrainBatches
    from scratchgpt.dist.allreduce import GradBuckets
    from scratchgpt.dist.sharding import ShardedBatches
    from scratchgpt.dist.zero import Zero1AdamW
    from scratchgpt.models import GPT, GPTConfig
    from scratchgpt.optim import AdamW, decay_groups
    results = {}
    for kind in ("allreduce", "zero1"):
        model = GPT(GPTConfig(vocab_size=V, block_size=T, n_layer=2, n_head=2, n_embd=16), seed=3)
        groups = [g for g in decay_groups(model, 0.1) if g["params"]]
        if kind == "zero1":
            opt = Zero1AdamW(groups, world, lr=3e-3)
            state = opt.state_bytes
        else:
            opt = AdamW(groups, lr=3e-3, weight_decay=0.1)
            sync = GradBuckets(model.parameters(), world)
        batches = ShardedBatches(PretrainBatches(corpus()[:3500], 4, T, seed=7), world.rank, world.size)
        for _ in range(3):
            for p in model.parameters():
                p.grad = None
            b = batches.next_batch()
            _, loss = model(b.x, b.y)
            loss.backward()
            if kind == "allreduce":
                sync.sync()
            opt.step()
        if kind == "allreduce":
            state = sum(s["exp_avg"].nbytes + s["exp_avg_sq"].nbytes for s in opt.state.values()) \
                if isinstance(opt.state, dict) else None
        results[kind] = ({n: p.data.copy() for n, p in model.named_parameters()}, state)
    a, b = results["allreduce"][0], results["zero1"][0]
    (out / f"zero_rank{world.rank}.json").write_text(json.dumps({
        "max_diff": max(float(np.max(np.abs(a[k] - b[k]))) for k in a),
        "state_bytes_zero1": results["zero1"][1], "state_bytes_full": results["allreduce"][1],
        "n_params": int(sum(v.size for v in a.values()))}))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode")
    ap.add_argument("out")
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--bucket-mb", type=float, default=0.004)
    ap.add_argument("--checkpoint-every", type=int, default=2)
    ap.add_argument("--dist", action="store_true")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--print-steps", action="store_true")
    ap.add_argument("--fail-rank", type=int, default=-1)
    ap.add_argument("--fail-step", type=int, default=-1)
    ap.add_argument("--hang-rank", type=int, default=-1)
    ap.add_argument("--timeout", type=float, default=60)
    ap.add_argument("--corpus-tag", default="same")
    ap.add_argument("--patience", type=int, default=0)
    ap.add_argument("--min-delta", type=float, default=0.0)
    ap.add_argument("--mixed-precision", action="store_true")
    ap.add_argument("--no-overlap", action="store_true")
    ap.add_argument("--zero", type=int, default=0)
    ap.add_argument("--device", default="cpu")      # cuda: the simulator unless NUMBA_ENABLE_CUDASIM=0
    ap.add_argument("--n-layer", type=int, default=2)
    ap.add_argument("--loss-scale", type=float, default=1024.0)
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    world = None
    if args.dist:
        from scratchgpt.dist.comm import World, guard_ranks
        world = World(timeout=args.timeout)
        guard_ranks(world, {"train": mode_train, "allreduce": mode_allreduce, "shards": mode_shards, "tp": mode_tp, "zero": mode_zero}[args.mode],
                    out, args, world)
    else:
        mode_train(out, args, None)


if __name__ == "__main__":
    sys.exit(main())
