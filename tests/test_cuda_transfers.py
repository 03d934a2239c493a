"""No hidden host<->device copy inside a training step or an engine decode step on the
(simulated) GPU.

``record_transfers`` (scratchgpt/cuda_simulator.py) logs every copy numba's simulator makes
between host and device — ``to_device``, ``copy_to_host``/``copy_to_device``, NumPy arguments of a
launch, scalar indexing, ``np.asarray`` and operators on a device array — with its call site.
Whole Trainer steps (grad_accum 2: forward, backward, global-norm clip, AdamW; SGD with momentum
once) of a tiny GPT, a LoRA and a prefix-tuned model must make exactly the planned copies, per step:
  - per micro-batch, host -> device: the token ids and the targets (GPT._on_device: batch in);
  - per micro-batch, device -> host: the loss scalar (Tensor.item: the trainer checks it is finite
    before backward, and logs it);
  - once, device -> host: the per-block partial sums of Σ grad² for all parameters together
    (cuda_arrays.sums_of_squares: the clip needs the global norm on the host to pick its scale,
    and the trainer reports it). It was one copy per parameter before this test existed.
The first step is a warm-up: kernel metadata (view strides and offsets) is uploaded once per
distinct shape and cached (cuda_arrays.int_constants) — before, it was uploaded per op per step.
The inference engine's decode step (bottom of this file) copies the step's row indices in and
the greedy picks or the logits out, nothing else.
The negative cases inject one copy into a step and check the test catches it.
"""
from collections import Counter

import numpy as np
import pytest

from cuda_sim import host  # noqa: F401  (skips the module when there is neither GPU nor simulator)
from scratchgpt.cuda_simulator import record_transfers
from scratchgpt.data.batches import PretrainBatches
from scratchgpt.models import GPT, GPTConfig
from scratchgpt.train.config import TrainConfig
from scratchgpt.train.eval_batches import fixed_windows
from scratchgpt.train.trainer import Trainer

V, T, B, ACCUM = 13, 6, 2, 2

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")   # dropout's uint64 hash wraps on purpose


def _trainer(tmp_path, peft=None, optimizer="adamw"):
    tokens = (np.arange(300) * 7 % V).astype(np.uint16)
    cfg = TrainConfig(lr=1e-2, warmup_steps=1, max_steps=10, batch_size=B, grad_accum=ACCUM, seq_len=T,
                      eval_every=50, eval_batches=1, log_every=1, seed=1, progress=False, grad_clip=0.5,
                      dropout=0.1, optimizer=optimizer, momentum=0.9)
    model = GPT(GPTConfig(vocab_size=V, block_size=T, n_layer=1, n_head=2, n_embd=8), seed=0)
    if peft:
        from scratchgpt.nn.peft import apply_peft
        apply_peft(model, peft, rank=2, prefix_len=2, dropout=0.1)
    model.to("cuda")
    return Trainer(model, cfg, PretrainBatches(tokens, B, T, seed=1), fixed_windows(tokens, B, T, 1),
                   tmp_path, log=lambda s: None, writes_files=False)


def _kind(t):
    """(direction, function that made the copy, shape): what the plan is written in."""
    return t.direction, t.site.rsplit(" ", 1)[-1], t.shape


PLANNED = Counter({
    ("h2d", "_on_device", (B, T)): 2 * ACCUM,     # batch in: ids and targets of each micro-batch
    ("d2h", "item", ()): ACCUM,                   # loss out: one scalar per micro-batch
    ("d2h", "sums_of_squares", None): 1,          # grad norm: all partial sums in one copy
})


def _key(t):
    d, f, shape = _kind(t)
    return d, f, None if f == "sums_of_squares" else shape   # its size depends on the parameter count


def unplanned(log) -> list:
    """The copies of one step beyond PLANNED (as Transfers, with their call sites), then the
    planned ones that did not happen (as keys)."""
    left = Counter(PLANNED)
    extra = []
    for t in log:
        if left[_key(t)] > 0:
            left[_key(t)] -= 1
        else:
            extra.append(t)
    return extra + [k for k, n in left.items() if n > 0]


@pytest.mark.parametrize("peft,optimizer", [(None, "adamw"), ("lora", "adamw"), ("prefix", "adamw"),
                                            ("lora", "sgd")])
def test_training_steps_copy_only_batch_in_loss_and_grad_norm_out(tmp_path, peft, optimizer):
    tr = _trainer(tmp_path, peft, optimizer)
    tr.train_step()                                   # warm-up: kernel metadata uploads are cached here
    for _ in range(2 if peft is None else 1):
        with record_transfers() as log:
            info = tr.train_step()
        assert np.isfinite(info["loss"]) and info["grad_norm"] > 0
        assert unplanned(log) == [], f"hidden transfers in a training step: {unplanned(log)}"
        # the grad-norm copy is the per-block partial sums, a handful of float64s, not a gradient
        (norm,) = [t for t in log if _kind(t)[1] == "sums_of_squares"]
        assert len(norm.shape) == 1 and norm.shape[0] <= 32


def _inject(kind, monkeypatch, tr):
    """Add one hidden copy to AdamW's step (what the test must catch)."""
    from scratchgpt.backend import to_device
    opt = tr.optimizer
    step = opt.step

    def with_copy():
        p = tr.params[0]
        if kind == "copy_to_host":
            p.grad.copy_to_host()                     # e.g. a debug print of a gradient
        elif kind == "np.asarray":
            np.asarray(p.data)                        # NumPy reading a device array
        elif kind == "scalar read":
            float(p.data[0, 0])                       # a host scalar from a device array
        elif kind == "host temp":
            to_device(np.zeros(3, np.float32), "cuda")   # a host buffer uploaded every step
        step()

    monkeypatch.setattr(opt, "step", with_copy)


def test_an_injected_transfer_is_caught(tmp_path, monkeypatch):
    tr = _trainer(tmp_path)
    tr.train_step()
    plain = tr.optimizer.step
    for kind in ("copy_to_host", "np.asarray", "scalar read", "host temp"):
        monkeypatch.setattr(tr.optimizer, "step", plain)
        _inject(kind, monkeypatch, tr)
        with record_transfers() as log:
            tr.train_step()
        extra = unplanned(log)
        assert len(extra) == 1, (kind, extra)
        assert "test_cuda_transfers.py" in extra[0].site and "with_copy" in extra[0].site, (kind, extra)


def test_the_recorder_restores_the_simulator():
    from numba.cuda.simulator.cudadrv import devicearray as fake
    before = dict(vars(fake.FakeCUDAArray)), fake.to_device
    with record_transfers():
        pass
    assert dict(vars(fake.FakeCUDAArray)) == before[0] and fake.to_device is before[1]


def test_sums_of_squares_of_many_arrays_in_one_copy():
    from cuda_sim import dev
    from scratchgpt.cuda_arrays import sums_of_squares
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(n).astype(np.float32) for n in (0, 1, 130, 7)]
    devs = [dev(a) for a in arrays]
    with record_transfers() as log:
        got = sums_of_squares(devs)
    ref = [float(np.dot(a.astype(np.float64), a.astype(np.float64))) for a in arrays]
    np.testing.assert_allclose(got, ref, rtol=1e-12)
    assert [t.direction for t in log] == ["d2h"]


# ----------------------------------------------------------------------------- the engine's decode step
# Per decode step of Engine(device="cuda") (infer/cuda_forward.py): host -> device, ONE copy of
# the step's row indices (tokens, positions, cache positions, slots, last rows: 4R + B int64)
# into the runner's preallocated buffer; device -> host, the greedy picks (B int64) when every
# row decodes greedily and no logits are asked for, else the logits (B, V) for the sampler.
DV, DB = 17, 2
GREEDY = dict(max_new_tokens=8, ignore_eos=True)


def _decode_engine(params, return_logits=False):
    from scratchgpt.infer import Engine, GenerationRequest, SamplingParams
    from tests.infer_helpers import tiny_gpt
    eng = Engine(tiny_gpt(seed=2, vocab=DV, block=16, n_layer=1, n_embd=8), None, max_batch_size=DB,
                 device="cuda", return_logits=return_logits)
    for p, seed in (([1, 5, 7], 0), ([2, 9], 1)):
        eng.add(GenerationRequest(p, SamplingParams(**params, seed=seed)))
    eng.step()                                        # prefill (and the kernels' first launches)
    eng.step()
    return eng


def _decode_step_copies(eng):
    with record_transfers() as log:
        out = eng.step()
    assert len(out) == DB and not any(o.finished for o in out)
    return [_kind(t) for t in log], log


@pytest.mark.parametrize("params,return_logits,out", [
    (GREEDY, False, ("forward_greedy", (DB,))),                               # only the picks
    (dict(GREEDY, temperature=0.7, top_k=4), False, ("forward", (DB, DV))),   # logits for the sampler
    (GREEDY, True, ("forward", (DB, DV))),                                    # logits asked for
])
def test_decode_steps_copy_only_row_indices_in_and_picks_or_logits_out(params, return_logits, out):
    eng = _decode_engine(params, return_logits)
    for _ in range(2):
        kinds, log = _decode_step_copies(eng)
        assert kinds == [("h2d", "_forward_device", (4 * DB + DB,)), ("d2h",) + out], log


@pytest.mark.parametrize("kind", ["copy_to_host", "np.asarray", "host temp"])
def test_an_injected_decode_transfer_is_caught(kind, monkeypatch):
    from scratchgpt.backend import to_device
    eng = _decode_engine(GREEDY)
    runner = eng.runner
    step = runner._forward_device

    def with_copy(*args):
        logits = step(*args)
        if kind == "copy_to_host":
            runner.x.copy_to_host()                   # e.g. a debug look at the residual stream
        elif kind == "np.asarray":
            np.asarray(logits)                        # NumPy reading the logits on the device
        else:
            to_device(np.zeros(3, np.int64), "cuda")  # a host buffer uploaded every step
        return logits

    monkeypatch.setattr(runner, "_forward_device", with_copy)
    kinds, log = _decode_step_copies(eng)
    assert len(kinds) == 3, log
    extra = [t for t in log if "with_copy" in t.site]
    assert len(extra) == 1 and "test_cuda_transfers.py" in extra[0].site, log
