"""The training loop shared by pretraining and SFT (full or parameter-efficient).

One optimizer step =
  1. ``grad_accum`` micro-batches: forward, loss / grad_accum (times the loss scale under mixed
     precision), backward — gradients add up in float32;
  2. a finiteness check: a NaN/inf loss or gradient never reaches the weights. Under mixed
     precision the step is skipped, the loss scale halves and the log says so; in float32 the
     run stops with a TrainingError naming the step (the last checkpoint is intact);
  3. gradient clipping to ``grad_clip`` (global norm), the schedule's lr, the optimizer update.

Every ``eval_every`` steps the validation loss is measured; with ``patience > 0`` training stops
when it has not improved for ``patience`` evaluations and the best weights are restored.

Checkpoints (``checkpoint.py``) hold the weights, the optimizer moments, the step, the data
iterator's position, every RNG (data sampling and dropout) and the loss scaler, so a run killed
at any moment and resumed with ``resume=True`` computes bit-for-bit the same weights as a run
that was never interrupted (tests/test_train_resume.py kills one with SIGKILL to check).

Hooks for data-parallel training (the MPI issue): ``sync_grads(params)`` runs after the
micro-batches' backward and before the finiteness check and clipping — the place to all-reduce
gradients; ``writes_files=False`` (every rank but 0) keeps metrics, checkpoints and the best
weights off the disk, so only one process writes a run directory. Three more make N ranks compute
what one process computes on the whole batch (``scratchgpt.dist.DataParallel.trainer_hooks()``
fills them; this module never imports dist): ``loss_weight(y, mask)`` multiplies each
micro-batch's loss before backward (ranks counting different numbers of target tokens weigh
them by that count), ``reduce_losses(losses, weights, tokens) -> (losses, tokens)`` makes the
logged loss and token count global, ``evaluate_fn(model, val_batches)`` measures validation
across the ranks. ``before_last_backward(params)`` (optional) runs right before the last
micro-batch's backward of a float32 step, so gradient allreduces can start during that backward
(``Tensor.on_grad_ready``); under mixed precision the gradients are harvested and unscaled
after backward, so it is not called and ``sync_grads`` does all the communication.
``wrap_optimizer(optimizer) -> optimizer`` (optional) replaces the built optimizer, e.g. by one
whose state is sharded over the ranks (``dist.zero.Zero1Optimizer``; its ``state_dict()`` is
collective, so ``save`` calls it on every rank).

Batch sources are objects with ``next_batch() -> (x, y, mask)`` (NumPy int arrays (B, T); mask
float (B, T) or None) and ``state_dict()/load_state_dict()``; see ``batches.py``.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..autograd import no_grad
from ..backend import to_host
from ..errors import CheckpointError, ConfigError, ScratchGPTError
from ..ops.cross_entropy_op import IGNORE_INDEX
from ..optim import SGD, Adam, AdamW, clip_grad_norm, decay_groups, lr_schedule
from .amp import HalfPrecisionWeights, LossScaler
from .eval_batches import as_triple
from .thread_tuner import ThreadTuner
from .run_checkpoints import (assign_model_arrays, check_model_arrays, latest_checkpoint, load_arrays,
                         load_checkpoint, save_arrays_atomic, save_checkpoint)
from .config import TrainConfig, to_dict
from .metrics import MetricsLog


class TrainingError(ScratchGPTError):
    """Training cannot continue (non-finite loss/gradient in float32, ...)."""


@dataclass
class TrainResult:
    steps: int
    final_loss: float
    best_val_loss: float | None
    last_val_loss: float | None
    stopped_early: bool
    skipped_steps: int
    elapsed: float
    tokens: int
    history: list = field(default_factory=list)
    # filled by train.runs.sft for its callers (demo, chapters): wall time of the whole run,
    # parameter counts, and the trained model and its tokenizer
    wall: float | None = None
    param_counts: dict | None = None
    model: object = None
    tokenizer: object = None
    # --threads auto: how many steps ran at each thread count (ThreadTuner.summary); None otherwise
    threads: dict | None = None


# ------------------------------------------------------------------ helpers
def build_optimizer(model, cfg: TrainConfig):
    """Optimizer over the model's trainable parameters; decay only on weight matrices."""
    groups = decay_groups(model, cfg.weight_decay)
    groups = [g for g in groups if g["params"]]
    if cfg.optimizer == "adamw":
        return AdamW(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), eps=cfg.eps, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adam":
        return Adam(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), eps=cfg.eps, weight_decay=cfg.weight_decay)
    return SGD(groups, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


def rng_modules(model) -> list:
    """Every distinct np.random.Generator held by a module (dropout masks), in a fixed order."""
    gens, seen = [], set()
    for _, m in model.named_modules():
        g = getattr(m, "rng", None)
        if isinstance(g, np.random.Generator) and id(g) not in seen:
            seen.add(id(g))
            gens.append(g)
    return gens


def reseed_dropout(model, seed: int) -> None:
    """Give every dropout layer a Generator derived from the run's seed (one shared stream)."""
    gen = np.random.default_rng(seed)
    for _, m in model.named_modules():
        if isinstance(getattr(m, "rng", None), np.random.Generator):
            m.rng = gen


def set_dropout(model, p: float) -> None:
    """Set every Dropout module's probability (the run's ``dropout`` overrides the model's)."""
    from ..nn import Dropout
    for _, m in model.named_modules():
        if isinstance(m, Dropout):
            m.p = float(p)


def trainable_parameters(model) -> list:
    return [p for p in model.parameters() if p.requires_grad]


def global_grad_norm(params) -> float:
    total = 0.0
    on_gpu = []
    for p in params:
        if p.grad is not None and not isinstance(p.grad, np.ndarray):
            on_gpu.append(p.grad)
        elif p.grad is not None:
            g = p.grad.reshape(-1).astype(np.float64)
            total += float(np.dot(g, g))
    if on_gpu:                       # reduced on the GPU: one copy of all partial sums, not one per parameter
        from ..cuda_arrays import sums_of_squares
        total += sum(sums_of_squares(on_gpu))
    return math.sqrt(total)


def evaluate_loss(model, batches: list) -> float:
    """Mean loss per counted target token over a fixed list of (x, y, mask) batches, in eval
    mode (no dropout). Weighted by tokens, so SFT batches with few assistant tokens do not
    count as much as full ones."""
    was_training = model.training
    model.eval()
    total, n = 0.0, 0
    with no_grad():
        for x, y, m in batches:
            _, loss = model(x, y, loss_mask=m) if m is not None else model(x, y)
            count = int((y != IGNORE_INDEX).sum()) if m is None else float(np.sum(m))
            total += float(loss.item()) * count
            n += count
    model.train(was_training)
    return total / max(n, 1)


# ------------------------------------------------------------------ trainer
class Trainer:
    """Train ``model`` on ``train_batches``; evaluate on the fixed list ``val_batches``.

    ``run_dir`` receives metrics.jsonl, checkpoints/ and (when early stopping is on) best/.
    ``resume=True`` continues from ``run_dir``'s latest checkpoint (an error if there is none).
    ``stop_after`` stops the loop after that many steps *without* marking the run finished —
    what tests and chapters use to simulate an interruption.
    ``sync_grads`` / ``writes_files``: the data-parallel hooks (module docstring).
    """

    def __init__(self, model, cfg: TrainConfig, train_batches, val_batches: list, run_dir,
                 resume: bool = False, log: Callable[[str], None] = print, extra_state: dict | None = None,
                 sync_grads: Callable[[list], None] | None = None, writes_files: bool = True,
                 loss_weight: Callable | None = None, reduce_losses: Callable | None = None,
                 evaluate_fn: Callable | None = None, before_last_backward: Callable[[list], None] | None = None,
                 wrap_optimizer: Callable | None = None):
        self.model = model
        self.cfg = cfg
        self.train_batches = train_batches
        self.val_batches = val_batches
        self.run_dir = Path(run_dir)
        self.writes_files = writes_files
        self.sync_grads = sync_grads
        self.loss_weight, self.reduce_losses, self.evaluate_fn = loss_weight, reduce_losses, evaluate_fn
        self.before_last_backward = before_last_backward
        if writes_files:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        self.log = log
        # --threads auto: 1 thread or all cores, whichever steps faster now (thread_tuner.py)
        self.thread_tuner = ThreadTuner.from_env(log) if getattr(model, "device", "cpu") == "cpu" else None
        self.extra_state = extra_state or {}
        self.params = trainable_parameters(model)
        if not self.params:
            raise TrainingError("the model has no trainable parameters")
        set_dropout(model, cfg.dropout)
        reseed_dropout(model, cfg.seed + 1)
        self.optimizer = build_optimizer(model, cfg)
        if wrap_optimizer is not None:
            self.optimizer = wrap_optimizer(self.optimizer)   # data parallel: ZeRO-1 shards its state
        if cfg.mixed_precision and getattr(model, "device", "cpu") != "cpu":
            raise ConfigError("mixed_precision (float16 weights) is CPU-only; the CUDA kernels are float32")
        self.scaler = LossScaler(cfg.loss_scale, cfg.scale_growth_interval) if cfg.mixed_precision else None
        self.step = 0
        self.tokens = 0
        self.elapsed = 0.0
        self.best_val = None
        self.bad_evals = 0
        self.last_val = None
        self.stopped_early = False
        self._best_arrays = None      # best weights in memory when this process writes no files
        resume_step = None
        if resume:
            resume_step = self._restore()
        self.metrics = MetricsLog(self.run_dir / "metrics.jsonl" if writes_files else None,
                                  resume_step=resume_step)
        if writes_files:
            with open(self.run_dir / "train_config.json", "w", encoding="utf-8") as f:
                json.dump({"train": to_dict(cfg), **self.extra_state}, f, indent=2)

    # -------------------------------------------------------------- state
    def _trainer_state(self) -> dict:
        return {
            "tokens": self.tokens,
            "elapsed": self.elapsed,
            "best_val": self.best_val,
            "bad_evals": self.bad_evals,
            "last_val": self.last_val,
            "stopped_early": self.stopped_early,
            "data": self.train_batches.state_dict(),
            "dropout_rng": [g.bit_generator.state for g in rng_modules(self.model)],
            "scaler": self.scaler.state_dict() if self.scaler else None,
            "config": to_dict(self.cfg),
            **self.extra_state,
        }

    def save(self) -> Path | None:
        """Write a checkpoint of this step (None, writing nothing, when ``writes_files`` is off)."""
        # a sharded optimizer gathers its state: every rank takes part, only the writer gets it
        opt_state = self.optimizer.state_dict() \
            if self.writes_files or getattr(self.optimizer, "collective_state", False) else None
        if not self.writes_files:
            return None
        return save_checkpoint(self.run_dir, self.step, self.model, opt_state, self._trainer_state())

    def _restore(self) -> int:
        path = latest_checkpoint(self.run_dir)
        if path is None:
            raise CheckpointError(f"--resume: {self.run_dir} has no checkpoint to resume from "
                                f"(expected {self.run_dir / 'checkpoints' / 'latest'})")
        arrays, opt_state, st = load_checkpoint(path)
        check_model_arrays(self.model, arrays, path)
        saved_cfg = st.get("config", {})
        for key in ("batch_size", "seq_len", "grad_accum", "optimizer", "mixed_precision"):
            if key in saved_cfg and saved_cfg[key] != getattr(self.cfg, key):
                raise CheckpointError(f"{path}: checkpoint was trained with {key}={saved_cfg[key]!r}, "
                                      f"this run has {key}={getattr(self.cfg, key)!r}; resume with the same value")
        assign_model_arrays(self.model, arrays)
        self.optimizer.load_state_dict(opt_state)
        self.train_batches.load_state_dict(st["data"])
        gens = rng_modules(self.model)
        if len(gens) != len(st["dropout_rng"]):
            raise CheckpointError(f"{path}: {len(st['dropout_rng'])} dropout RNG states saved, model has {len(gens)}")
        for g, s in zip(gens, st["dropout_rng"]):
            g.bit_generator.state = s
        if self.scaler and st.get("scaler"):
            self.scaler.load_state_dict(st["scaler"])
        self.step = int(st["step"])
        self.tokens = int(st["tokens"])
        self.elapsed = float(st["elapsed"])
        self.best_val = st["best_val"]
        self.bad_evals = int(st["bad_evals"])
        self.last_val = st["last_val"]
        self.stopped_early = bool(st.get("stopped_early", False))
        self.log(f"resumed from {path} at step {self.step}")
        return self.step

    # -------------------------------------------------------------- one step
    def _forward_backward(self, x, y, m, loss_mult: float) -> float:
        _, loss = self.model(x, y, loss_mask=m) if m is not None else self.model(x, y)
        value = float(loss.item())
        if math.isfinite(value):
            (loss * loss_mult).backward()
        return value

    def train_step(self) -> dict:
        """One optimizer step: lr, gradients of grad_accum micro-batches, gradient sync, clip, update."""
        lr = self._set_lr()
        self.optimizer.zero_grad()
        losses, weights, ntok = self._accumulate_gradients()
        if self.sync_grads is not None:
            self.sync_grads(self.params)           # data parallel: average the gradients over ranks
        if self.reduce_losses is not None:
            losses, ntok = self.reduce_losses(losses, weights, ntok)   # the global batch's loss and tokens
        self.tokens += ntok
        loss = float(np.mean(losses))
        finite_loss = all(math.isfinite(v) for v in losses)
        gnorm = self._clip_gradients(finite_loss)
        skipped = self._update(finite_loss, loss, gnorm, lr)
        self.optimizer.zero_grad()
        self.step += 1
        return {"loss": loss, "lr": lr, "grad_norm": gnorm, "tokens": ntok, "skipped": skipped}

    def _set_lr(self) -> float:
        cfg = self.cfg
        lr = lr_schedule(self.step, cfg.lr, cfg.warmup_steps, cfg.max_steps, cfg.min_lr) \
            if cfg.schedule == "cosine" else (cfg.lr * min(1.0, (self.step + 1) / max(cfg.warmup_steps, 1)))
        for g in self.optimizer.param_groups:
            g["lr"] = lr
        return lr

    def _accumulate_gradients(self) -> tuple[list, list, int]:
        """Forward + backward over ``grad_accum`` micro-batches; float32 gradients in p.grad
        (under mixed precision: harvested from the float16 pass and unscaled).
        (losses, loss weights (``loss_weight`` hook; 1.0 without it), tokens)."""
        cfg = self.cfg
        losses, weights = [], []
        ntok = 0
        if self.scaler is None:
            for i in range(cfg.grad_accum):
                x, y, m = as_triple(self.train_batches.next_batch())
                ntok += int(x.size)
                weights.append(self.loss_weight(y, m) if self.loss_weight is not None else 1.0)
                if self.before_last_backward is not None and i == cfg.grad_accum - 1:
                    self.before_last_backward(self.params)    # data parallel: allreduce during backward
                losses.append(self._forward_backward(x, y, m, weights[-1] / cfg.grad_accum))
            return losses, weights, ntok
        acc = [None] * len(self.params)
        with HalfPrecisionWeights(self.params) as half:
            for _ in range(cfg.grad_accum):
                x, y, m = as_triple(self.train_batches.next_batch())
                ntok += int(x.size)
                weights.append(self.loss_weight(y, m) if self.loss_weight is not None else 1.0)
                losses.append(self._forward_backward(x, y, m, weights[-1] * self.scaler.scale / cfg.grad_accum))
                half.harvest_grads(acc)
        inv = np.float32(1.0 / self.scaler.scale)
        for p, g in zip(self.params, acc):
            p.grad = None if g is None else g * inv
        return losses, weights, ntok

    def _clip_gradients(self, finite_loss: bool) -> float:
        """Clip to ``grad_clip`` (global norm) when on; the norm before clipping (NaN if the loss was not finite)."""
        if self.cfg.grad_clip > 0 and finite_loss:
            return clip_grad_norm(self.params, self.cfg.grad_clip)
        return global_grad_norm(self.params) if finite_loss else float("nan")

    def _update(self, finite_loss: bool, loss: float, gnorm: float, lr: float) -> bool:
        """The optimizer step, or — for a non-finite loss/gradient — no step: float32 stops with a
        TrainingError, mixed precision halves the loss scale. True when the step was skipped."""
        if finite_loss and math.isfinite(gnorm):
            self.optimizer.step()
            if self.scaler is not None:
                self.scaler.update(False)
            return False
        if self.scaler is None:
            self.optimizer.zero_grad()
            what = "loss" if not finite_loss else "gradient norm"
            raise TrainingError(
                f"step {self.step}: non-finite {what} ({loss if not finite_loss else gnorm}); the weights were "
                f"not updated. Lower lr (now {lr:.3g}), enable grad_clip, or resume from the last checkpoint")
        self.scaler.update(True)
        self.log(f"step {self.step}: float16 overflow (loss {loss:.4g}, grad norm {gnorm}); step skipped, "
                 f"loss scale -> {self.scaler.scale:g}")
        return True

    # -------------------------------------------------------------- evaluation / early stop
    def evaluate(self) -> float:
        if self.evaluate_fn is not None:
            return self.evaluate_fn(self.model, self.val_batches)
        return evaluate_loss(self.model, self.val_batches)

    def _after_eval(self, val: float) -> bool:
        """Update the early-stopping state; True when training should stop."""
        self.last_val = val
        improved = self.best_val is None or val < self.best_val - self.cfg.min_delta
        if improved:
            self.best_val = val
            self.bad_evals = 0
            if self.cfg.patience > 0:
                best = {n: to_host(p.data) for n, p in self.model.named_parameters()}   # host copies of GPU weights
                if self.writes_files:
                    save_arrays_atomic(self.run_dir / "best.safetensors", best)
                else:
                    self._best_arrays = {n: a.copy() for n, a in best.items()}
        else:
            self.bad_evals += 1
        return self.cfg.patience > 0 and self.bad_evals >= self.cfg.patience

    # -------------------------------------------------------------- loop
    def fit(self, stop_after: int | None = None, desc: str = "train", on_step=None) -> TrainResult:
        """Train until ``max_steps`` (or early stopping). ``on_step(trainer, info)`` is called after
        every step, once its checkpoint (if due) is on disk."""
        cfg = self.cfg
        self.model.train()
        history = []
        last_loss = float("nan")
        throughput = _Throughput()
        steps_this_call = 0
        with _ProgressBar(cfg.progress and self.writes_files, cfg.max_steps, self.step, desc) as bar:
            while self.step < cfg.max_steps and not self.stopped_early:
                info = self._timed_step()
                last_loss = info["loss"]
                steps_this_call += 1
                throughput.add(info["tokens"])
                record = self._log_record(info, throughput)        # None on steps that log nothing
                stop = False
                if self._due(cfg.eval_every):
                    record, stop = self._evaluate_into(record, info)
                if record is not None:
                    history.append(self.metrics.log(**record))
                bar.show(info, self.last_val)
                if stop:
                    self._stop_early()
                    break
                if cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0 and not self._is_last():
                    self.save()
                if on_step is not None:
                    on_step(self, info)
                if stop_after is not None and steps_this_call >= stop_after:
                    return self._result(last_loss, history)        # "interrupted": no final save
        self._finish()
        return self._result(last_loss, history)

    def _timed_step(self) -> dict:
        if self.thread_tuner is not None:
            self.thread_tuner.before_step()
        t0 = time.perf_counter()
        info = self.train_step()
        dt = time.perf_counter() - t0
        self.elapsed += dt
        if self.thread_tuner is not None:
            self.thread_tuner.after_step(dt)
        return info

    def _is_last(self) -> bool:
        return self.step >= self.cfg.max_steps

    def _due(self, every: int) -> bool:
        return self.step % every == 0 or self._is_last()

    def _log_record(self, info: dict, throughput: "_Throughput") -> dict | None:
        """The metrics record of this step: every ``log_every`` steps, the first and the last."""
        if not (self._due(self.cfg.log_every) or self.step == 1):
            return None
        rec = {"step": self.step, "loss": info["loss"], "lr": info["lr"], "grad_norm": info["grad_norm"],
               "tokens_per_s": round(throughput.rate_and_reset(), 1), "elapsed": round(self.elapsed, 3)}
        if info["skipped"]:
            rec["skipped"] = True
        if self.scaler is not None:
            rec["loss_scale"] = self.scaler.scale
        return rec

    def _evaluate_into(self, record: dict | None, info: dict) -> tuple[dict, bool]:
        """Measure the validation loss into ``record``; True when early stopping says stop."""
        val = self.evaluate()
        stop = self._after_eval(val)
        record = record or {"step": self.step, "loss": info["loss"], "lr": info["lr"],
                            "grad_norm": info["grad_norm"], "elapsed": round(self.elapsed, 3)}
        record["val_loss"] = val
        return record, stop

    def _stop_early(self) -> None:
        self.stopped_early = True
        self.log(f"early stopping at step {self.step}: val loss did not improve for "
                 f"{self.cfg.patience} evaluations (best {self.best_val:.4f})")

    def _finish(self) -> None:
        """The end of a finished run: the last checkpoint, the best weights back after early
        stopping (not the last, worse ones), the metrics file closed."""
        self.save()
        if self.stopped_early:
            best = self._best_arrays
            path = self.run_dir / "best.safetensors"
            if best is None and self.writes_files and path.is_file():
                best = load_arrays(path)
            if best is not None:
                check_model_arrays(self.model, best, path)
                assign_model_arrays(self.model, best)
        self.metrics.close()

    def _result(self, last_loss, history) -> TrainResult:
        return TrainResult(steps=self.step, final_loss=last_loss, best_val_loss=self.best_val,
                           last_val_loss=self.last_val, stopped_early=self.stopped_early,
                           skipped_steps=self.scaler.skipped if self.scaler else 0,
                           elapsed=self.elapsed, tokens=self.tokens, history=history,
                           threads=self.thread_tuner.summary() if self.thread_tuner is not None else None)


class _Throughput:
    """Tokens per second since the last logged step."""

    def __init__(self):
        self.tokens, self.t0 = 0, time.perf_counter()

    def add(self, tokens: int) -> None:
        self.tokens += tokens

    def rate_and_reset(self) -> float:
        now = time.perf_counter()
        rate = self.tokens / max(now - self.t0, 1e-9)
        self.tokens, self.t0 = 0, now
        return rate


class _ProgressBar:
    """The tqdm bar of ``fit`` (nothing when ``enabled`` is False): steps, loss, lr, val loss."""

    def __init__(self, enabled: bool, total: int, initial: int, desc: str):
        self.bar = None
        if enabled:
            from tqdm import tqdm
            self.bar = tqdm(total=total, initial=initial, desc=desc, unit="step", dynamic_ncols=True,
                            mininterval=0.5)

    def show(self, info: dict, last_val: float | None) -> None:
        if self.bar is None:
            return
        self.bar.update(1)
        post = {"loss": f"{info['loss']:.3f}", "lr": f"{info['lr']:.1e}"}
        if last_val is not None:
            post["val"] = f"{last_val:.3f}"
        self.bar.set_postfix(post, refresh=False)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.close()
