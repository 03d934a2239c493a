"""Measurements of data and tensor parallelism on this machine, run as MPI ranks.

    mpiexec -n 2 python -m scratchgpt.dist.measure --out RESULT.json [--quick] [--shape S|M]

What chapter 9 (``ch9 --dist``) and benchmarks/dist.py launch. On every rank, in order:

1. one process: rank 0 trains the model alone on the full global batch (the others wait,
   asleep in a barrier) — the reference, and the 1-rank throughput;
2. data parallel: all ranks train the same model from the same start on their rows of the same
   batches; rank 0 compares losses and weights with (1) and times the steps and the allreduce
   (overlapped with backward on even steps, after it on odd ones); then the same with ZeRO-1
   (optimizer state per rank, equality with plain data parallel);
3. allreduce sweep: in-place allreduce times for messages from 4 KiB up, for the alpha-beta fit;
4. tensor parallel: greedy decoding of the same model with each rank holding 1/N of every block;
   tokens and logits against one process, bytes of weights and KV cache per rank.

Rank 0 writes everything as one JSON object. Data are synthetic (a noisy repeating token
pattern): throughput and communication depend on shapes, not on what the tokens say.
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time

import numpy as np

SHAPES = {
    "quick": dict(n_layer=2, n_head=2, n_embd=32, vocab_size=97, seq_len=32, batch_size=4, steps=3, warmup=1),
    "S": dict(n_layer=4, n_head=4, n_embd=128, vocab_size=512, seq_len=64, batch_size=16, steps=8, warmup=2),
    "M": dict(n_layer=6, n_head=6, n_embd=384, vocab_size=4096, seq_len=128, batch_size=8, steps=5, warmup=1),
}


def corpus(vocab: int, n: int = 60_000) -> np.ndarray:
    rng = np.random.default_rng(0)
    tokens = (np.arange(n) * 7 % vocab).astype(np.uint16)
    noise = rng.random(n) < 0.1
    tokens[noise] = rng.integers(0, vocab, size=int(noise.sum()))
    return tokens


def _trainer(shape, run_dir, parallel=None):
    from ..data.batches import PretrainBatches
    from ..models import GPT, GPTConfig
    from ..train.config import TrainConfig
    from ..train.eval_batches import fixed_windows
    from ..train.trainer import Trainer
    steps = shape["steps"] + shape["warmup"]
    cfg = TrainConfig(lr=1e-3, warmup_steps=1, max_steps=steps, batch_size=shape["batch_size"],
                      seq_len=shape["seq_len"], eval_every=steps, eval_batches=1, checkpoint_every=0,
                      grad_clip=1.0, seed=3, progress=False)
    model = GPT(GPTConfig(vocab_size=shape["vocab_size"], block_size=shape["seq_len"], n_layer=shape["n_layer"],
                          n_head=shape["n_head"], n_embd=shape["n_embd"]), seed=1)
    tokens = corpus(shape["vocab_size"])
    batches = PretrainBatches(tokens[:50_000], cfg.batch_size, cfg.seq_len, seed=cfg.seed)
    if parallel is not None:
        batches = parallel.shard(batches)
    val = fixed_windows(tokens[50_000:], cfg.batch_size, cfg.seq_len, 1)
    hooks = parallel.trainer_hooks() if parallel is not None else {}
    return Trainer(model, cfg, batches, val, run_dir, log=lambda s: None, **hooks)


def timed_training(shape, run_dir, parallel=None) -> dict:
    """Median step time after warm-up. Data parallel: steps alternate between the allreduce
    overlapped with backward (even steps) and started after it (odd steps) — the same numbers
    either way, so one run times both under the same load."""
    tr = _trainer(shape, run_dir, parallel)
    hook = tr.before_last_backward
    losses, times, comm = [], {True: [], False: []}, {True: [], False: []}
    for i in range(shape["steps"] + shape["warmup"]):
        overlap = hook is not None and i % 2 == 0
        tr.before_last_backward = hook if overlap else None
        c0 = parallel.comm_seconds if parallel else 0.0
        t0 = time.perf_counter()
        info = tr.train_step()
        dt = time.perf_counter() - t0
        losses.append(info["loss"])
        if i >= shape["warmup"]:                    # the first steps compile kernels
            times[overlap].append(dt)
            comm[overlap].append((parallel.comm_seconds - c0) if parallel else 0.0)
    every = times[True] + times[False]
    step = statistics.median(every)
    tokens = shape["batch_size"] * shape["seq_len"]
    out = {"losses": losses, "step_s": step, "tokens_per_s": tokens / step,
           "allreduce_s_per_step": statistics.median(comm[False] or comm[True]),
           "allreduce_bytes_per_step": parallel.buckets.nbytes if parallel else 0,
           "n_buckets": len(parallel.buckets.buckets) if parallel else 0,
           "params": tr.model.num_parameters(),
           "weights": {n: p.data for n, p in tr.model.named_parameters()}}
    if times[True] and times[False]:
        out["overlap"] = {"steps_each": min(len(times[True]), len(times[False])),
                          "step_s_overlap": statistics.median(times[True]),
                          "step_s_after": statistics.median(times[False]),
                          "wait_s_overlap": statistics.median(comm[True]),
                          "wait_s_after": statistics.median(comm[False])}
    return out


def allreduce_sweep(world, sizes, repeats: int) -> list:
    out = []
    for nbytes in sizes:
        buf = np.ones(nbytes // 4, dtype=np.float32)
        world.barrier()
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            world.allreduce_(buf)
            times.append(time.perf_counter() - t0)
        out.append({"bytes": int(buf.nbytes), "seconds": statistics.median(times)})
    return out


def tensor_parallel_check(shape, world) -> dict:
    from ..infer import Engine, SamplingParams
    from ..infer.weights import decoder_weights
    from ..models import GPT, GPTConfig
    from .tensor_parallel import block_weight_bytes, tensor_parallel_weights
    model = GPT(GPTConfig(vocab_size=shape["vocab_size"], block_size=shape["seq_len"], n_layer=shape["n_layer"],
                          n_head=shape["n_head"], n_embd=shape["n_embd"]), seed=5)
    for name, p in model.named_parameters():   # louder blocks than at init: a varied greedy sequence
        if ".h." in name and p.data.ndim == 2:
            p.data *= np.float32(6.0)
    full = decoder_weights(model)
    share = tensor_parallel_weights(full, world)
    prompt = [int(t) for t in corpus(shape["vocab_size"])[:8]]
    params = SamplingParams(temperature=0.0, max_new_tokens=min(16, shape["seq_len"] - 8), ignore_eos=True)
    runs = {}
    for name, w in (("one", full), ("tp", share)):
        eng = Engine(w, None, max_batch_size=1, return_logits=True)
        list(eng.outputs(prompt, SamplingParams(temperature=0.0, max_new_tokens=2, ignore_eos=True)))  # compile
        world.barrier()
        t0 = time.perf_counter()
        outs = list(eng.outputs(prompt, params))
        runs[name] = {"tokens": [o.token_id for o in outs], "logits": np.stack([o.logits for o in outs]),
                      "seconds": time.perf_counter() - t0, "cache_bytes": eng.cache.nbytes}
    return {"tokens_one": runs["one"]["tokens"], "tokens_tp": runs["tp"]["tokens"],
            "same_tokens": runs["one"]["tokens"] == runs["tp"]["tokens"],
            "max_logit_diff": float(np.max(np.abs(runs["one"]["logits"] - runs["tp"]["logits"]))),
            "block_bytes_full": block_weight_bytes(full), "block_bytes_rank": block_weight_bytes(share),
            "replicated_bytes": int(full.wte.nbytes + full.wpe.nbytes),
            "cache_bytes_full": runs["one"]["cache_bytes"], "cache_bytes_rank": runs["tp"]["cache_bytes"],
            "seconds_one": runs["one"]["seconds"], "seconds_tp": runs["tp"]["seconds"],
            "new_tokens": len(runs["one"]["tokens"])}


def measure(world, shape_name: str, sizes, repeats: int, bucket_mb: float = 1.0, steps: int = 0) -> dict | None:
    from .data_parallel import DataParallel
    shape = dict(SHAPES[shape_name], **({"steps": steps} if steps else {}))
    with tempfile.TemporaryDirectory() as tmp:
        one = None
        if world.is_root:
            one = timed_training(shape, f"{tmp}/one")             # the others wait in the barrier
        world.barrier("one-process reference")
        dp = DataParallel(world, bucket_mb=bucket_mb)
        par = timed_training(shape, f"{tmp}/dp", dp)
        zdp = DataParallel(world, bucket_mb=bucket_mb, zero=1)
        zero = timed_training(shape, f"{tmp}/zero", zdp)
        zero["optimizer_state_bytes_rank"] = zdp.optimizer.state_bytes
        zero["optimizer_state_bytes_full"] = zdp.optimizer.full_state_bytes
        zero["max_weight_diff_vs_dp"] = max(float(np.max(np.abs(zero["weights"][k] - par["weights"][k])))
                                            for k in par["weights"])
        zero.pop("weights")
    sweep = allreduce_sweep(world, sizes, repeats)
    tp = tensor_parallel_check(shape, world) if shape["n_head"] % world.size == 0 else None
    if not world.is_root:
        return None
    diff = max(float(np.max(np.abs(one["weights"][k] - par["weights"][k]))) for k in one["weights"])
    scale = max(float(np.max(np.abs(w))) for w in one["weights"].values())
    for r in (one, par):
        r.pop("weights")
    return {"ranks": world.size, "shape": shape_name, **{k: v for k, v in shape.items()},
            "one": one, "dp": par, "zero1": zero, "max_weight_diff": diff, "max_weight": scale,
            "max_loss_diff": max(abs(a - b) for a, b in zip(one["losses"], par["losses"])),
            "allreduce_sweep": sweep, "tp": tp}


def main(argv=None) -> int:
    from .comm import World, guard_ranks
    ap = argparse.ArgumentParser(prog="python -m scratchgpt.dist.measure")
    ap.add_argument("--out", required=True)
    ap.add_argument("--shape", choices=sorted(SHAPES), default="S")
    ap.add_argument("--max-kib", type=int, default=16384, help="largest allreduce message in the sweep")
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--bucket-mb", type=float, default=1.0, help="gradient bucket size (MB)")
    ap.add_argument("--steps", type=int, default=0, help="timed training steps (default: the shape's)")
    args = ap.parse_args(argv)
    world = World()
    sizes, k = [], 4
    while k <= args.max_kib:
        sizes.append(k * 1024)
        k *= 4

    def run():
        res = measure(world, args.shape, sizes, args.repeats, args.bucket_mb, args.steps)
        if res is not None:
            with open(args.out, "w", encoding="utf-8") as f:
                json.dump(res, f, indent=1)
        return 0
    return guard_ranks(world, run)


if __name__ == "__main__":
    raise SystemExit(main())


# ------------------------------------------------------------------ what the numbers say
ACCELERATOR_FLOPS = 50e12     # stated: a GPU sustaining 50 TFLOP/s on the training step
GLOBAL_BATCH = (512, 1024)    # GPT-2's batch: 512 sequences of 1024 tokens = 0.5 M tokens per step
PROJECT_RANKS = (1, 8, 64, 512)


def summary(res: dict) -> dict:
    """Derived numbers: measured throughput ratio, alpha-beta fit, the GPT-2 124M projection."""
    from .cost_model import (GPT2_124M, NETWORK, break_even_ranks, fit_alpha_beta, gpt2_parameters, project,
                             train_flops_per_token)
    p = res["ranks"]
    sweep = res["allreduce_sweep"]
    alpha, beta = fit_alpha_beta([s["bytes"] for s in sweep], [s["seconds"] for s in sweep], p)
    local_flops = train_flops_per_token(res["one"]["params"], res["n_layer"], res["seq_len"], res["n_embd"]) \
        * res["one"]["tokens_per_s"]
    n = gpt2_parameters(**GPT2_124M)
    fpt = train_flops_per_token(n, GPT2_124M["n_layer"], GPT2_124M["block_size"], GPT2_124M["n_embd"])
    tokens = GLOBAL_BATCH[0] * GLOBAL_BATCH[1]
    net = (NETWORK["alpha"], NETWORK["beta"])
    return {
        "speedup_measured": res["dp"]["tokens_per_s"] / res["one"]["tokens_per_s"],
        "allreduce_fraction": res["dp"]["allreduce_s_per_step"] / res["dp"]["step_s"],
        "alpha_here": alpha, "beta_here": beta,
        "local_flops_per_s": local_flops,
        "gpt2_params": n,
        "projection": project(PROJECT_RANKS, n, tokens, fpt, ACCELERATOR_FLOPS, *net),
        "projection_overlap": project(PROJECT_RANKS, n, tokens, fpt, ACCELERATOR_FLOPS, *net, overlap=2 / 3),
        "break_even_ranks": break_even_ranks(n, tokens, fpt, ACCELERATOR_FLOPS, *net),
        "one_rank_step_here_s": tokens * fpt / local_flops,
    }


def report_lines(res: dict, s: dict) -> list:
    from .cost_model import NETWORK, projection_table
    one, dp, tp = res["one"], res["dp"], res["tp"]
    P = res["ranks"]
    lines = [
        f"model: {res['n_layer']} layers x {res['n_embd']} wide, {one['params']:,} parameters; global batch "
        f"{res['batch_size']} x {res['seq_len']} tokens; one thread per rank",
        f"equivalence: {P} ranks x {res['batch_size'] // P} rows vs 1 process x {res['batch_size']} rows, "
        f"{len(one['losses'])} steps: max |loss diff| {res['max_loss_diff']:.2e}, max |weight diff| "
        f"{res['max_weight_diff']:.2e} (largest weight {res['max_weight']:.2f})",
        f"throughput: 1 process {one['tokens_per_s']:,.0f} tokens/s, {P} ranks {dp['tokens_per_s']:,.0f} tokens/s "
        f"({s['speedup_measured']:.2f}x)",
        f"allreduce per step: {dp['allreduce_bytes_per_step'] / 1e6:.2f} MB of gradients in {dp['n_buckets']} "
        f"bucket(s), {dp['allreduce_s_per_step'] * 1e3:.2f} ms = {100 * s['allreduce_fraction']:.0f} % of the step",
    ]
    if dp.get("overlap"):
        o = dp["overlap"]
        lines.append(
            f"allreduce overlapped with backward vs started after it (alternate steps, {o['steps_each']} each): "
            f"step {o['step_s_overlap'] * 1e3:.1f} vs {o['step_s_after'] * 1e3:.1f} ms "
            f"({o['step_s_after'] / o['step_s_overlap']:.2f}x), waiting for the allreduce after backward "
            f"{o['wait_s_overlap'] * 1e3:.2f} vs {o['wait_s_after'] * 1e3:.2f} ms")
    z = res.get("zero1")
    if z:
        lines.append(
            f"ZeRO-1 (--zero 1): optimizer state {z['optimizer_state_bytes_rank'] / 1e6:.2f} MB per rank instead of "
            f"{z['optimizer_state_bytes_full'] / 1e6:.2f} MB on every rank; step {z['step_s'] * 1e3:.1f} ms vs "
            f"{dp['step_s'] * 1e3:.1f} ms plain; max |weight diff| vs plain data parallel {z['max_weight_diff_vs_dp']:.1e}")
    lines += [
        f"alpha-beta fit on this machine ({P} ranks, shared memory): alpha {s['alpha_here'] * 1e6:.1f} us, "
        f"beta {s['beta_here'] * 1e9:.3f} ns/byte ({1 / max(s['beta_here'], 1e-15) / 1e9:.2f} GB/s)",
    ]
    if tp is not None:
        lines.append(
            f"tensor parallel ({P} ranks): same greedy tokens as one process: {tp['same_tokens']} "
            f"({tp['new_tokens']} tokens), max |logit diff| {tp['max_logit_diff']:.1e}; block weights per rank "
            f"{tp['block_bytes_rank'] / 1e3:.1f} of {tp['block_bytes_full'] / 1e3:.1f} kB, KV cache "
            f"{tp['cache_bytes_rank'] / 1e3:.1f} of {tp['cache_bytes_full'] / 1e3:.1f} kB, replicated embeddings "
            f"{tp['replicated_bytes'] / 1e3:.1f} kB; decode {tp['seconds_one'] / tp['new_tokens'] * 1e3:.2f} ms/token "
            f"alone vs {tp['seconds_tp'] / tp['new_tokens'] * 1e3:.2f} ms/token split")
    lines += ["", projection_table(
        s["projection"], f"GPT-2 124M ({s['gpt2_params']:,} parameters, {4 * s['gpt2_params'] / 1e6:.0f} MB of float32 "
        f"gradients), global batch {GLOBAL_BATCH[0]} x {GLOBAL_BATCH[1]} tokens, {ACCELERATOR_FLOPS / 1e12:.0f} TFLOP/s "
        f"per rank, network {NETWORK['name']}, no overlap:"), "",
        projection_table(s["projection_overlap"], "the same, allreduce overlapped with backward (2/3 of the compute):"),
        "", f"data parallelism stops paying (allreduce as long as a rank's compute, no overlap) at about "
            f"{s['break_even_ranks']} ranks; at this CPU's measured {s['local_flops_per_s'] / 1e9:.1f} GFLOP/s per rank "
            f"one such step would take {s['one_rank_step_here_s'] / 3600:.0f} h, so here it would pay up to the "
            f"batch's {GLOBAL_BATCH[0]} sequences (one per rank)"]
    return lines
