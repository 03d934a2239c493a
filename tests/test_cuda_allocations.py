"""A decode step on the (simulated) GPU allocates no device memory (issue 11: "preallocated
buffers where repeated allocation would dominate"; the CPU twin is tests/test_infer_allocations.py).

``record_allocations`` (scratchgpt/cuda_simulator.py) logs every device array the simulator
allocates — ``cuda.device_array`` (every op's fresh output), ``to_device`` without ``to=`` —
with its call site. After a warm-up, engine steps that decode (greedy picks on the device,
sampled rows whose logits come to the host, a smear model, int8 weights, an adapter) must
allocate nothing: the runner (infer/cuda_forward.py) keeps every buffer a step needs, including
the step's row indices and the split attention kernel's partial results. The split kernel is
driven at late cache positions across a 32-position chunk boundary (the buffers it needs grow
with the cache length). Negative checks: the counter sees the row indices uploaded the old way
(a fresh ``to_device`` per step) and the split kernel without the runner's scratch.
"""
import numpy as np
import pytest

from cuda_sim import dev, host
from scratchgpt.cuda_simulator import record_allocations
from scratchgpt.infer import Engine, GenerationRequest, SamplingParams
from scratchgpt.ops import decode_attention_cuda as dac
from tests.infer_helpers import tiny_gpt

GREEDY = SamplingParams(max_new_tokens=20, ignore_eos=True)
SAMPLED = SamplingParams(max_new_tokens=20, ignore_eos=True, temperature=0.8, top_k=5, seed=1)


def _model(kind):
    m = tiny_gpt(seed=7, vocab=23, block=300, n_layer=1, n_embd=32 if kind == "int8" else 16, smear=kind == "smear")
    if kind == "int8":
        from scratchgpt.infer.quantize import QuantConfig, quantize_gpt
        m = quantize_gpt(m, QuantConfig(bits=8, group_size=32, act_quant=False))
    elif kind == "adapter":
        from scratchgpt.nn.peft import apply_peft
        apply_peft(m, "adapter", adapter_size=4, seed=0)
    return m


def _engine(kind, params, return_logits=False):
    eng = Engine(_model(kind), None, max_batch_size=2, device="cuda", return_logits=return_logits)
    for p in ([1, 5, 7], [2, 9]):
        eng.add(GenerationRequest(p, params))
    for _ in range(2):                # prefill, then a first decode step
        eng.step()
    return eng


def _decode_allocations(eng, steps=2):
    logs = []
    for _ in range(steps):
        with record_allocations() as log:
            out = eng.step()
        assert len(out) == 2 and not any(o.finished for o in out)
        logs.append(list(log))
    return logs


@pytest.mark.parametrize("kind,params,return_logits", [
    ("float32", GREEDY, False),           # greedy: only the picks cross
    ("smear", SAMPLED, False),            # sampled: the logits cross; smear bookkeeping rows
    ("int8", GREEDY, True),               # quantized rows; logits asked for
    ("adapter", GREEDY, False),
])
def test_decode_steps_allocate_no_device_memory(kind, params, return_logits):
    eng = _engine(kind, params, return_logits)
    assert _decode_allocations(eng) == [[], []]


def _late_decode(runner, positions):
    """A decode step of both slots at ``positions`` (the cache before them is whatever it holds:
    the split kernel reads it all the same), straight through the runner."""
    pos = np.asarray(positions, np.int64)
    return runner.forward_greedy(np.array([3, 4], np.int64), pos, np.array([0, 1], np.int64),
                                 np.array([0, 1], np.int64))


def test_split_attention_at_a_chunk_boundary_allocates_nothing():
    eng = _engine("float32", GREEDY)
    runner = eng.runner
    assert dac.choose_split(2, eng.weights.n_head, 288)          # the chunked kernel runs below
    _late_decode(runner, [286, 270])                              # warm-up: the split kernel's first launch
    for positions in ([287, 271], [288, 272], [289, 273]):        # caches of 288 -> 289: nine chunks -> ten
        with record_allocations() as log:
            ids = _late_decode(runner, positions)
        assert log == [], positions
        assert ids.shape == (2,) and (ids >= 0).all()


def test_split_attention_with_carved_scratch_equals_its_own_buffers():
    NH, Tmax, HS = 2, 70, 3                              # 2 slots, 3 chunks of 32 positions
    K, V, qkv = (np.random.default_rng(4 + i).standard_normal(s).astype(np.float32)
                 for i, s in enumerate([(2, NH, Tmax, HS)] * 2 + [(2, 3 * NH * HS)]))
    slots, positions = dev(np.array([0, 1])), dev(np.array([65, 40]))
    ys = []
    for scratch in (None, dev(np.full(dac.split_scratch_size(4, NH, Tmax, HS), np.nan, np.float32))):
        ys.append(host(dac.cached_attention_cuda(dev(qkv), dev(K), dev(V), slots, positions, NH, split=True,
                                                 max_len=66, scratch=scratch)))
    np.testing.assert_array_equal(ys[1], ys[0])
    assert np.isfinite(ys[1]).all()


# ----------------------------------------------------------------------------- negative checks
def test_the_counter_sees_row_indices_uploaded_per_step(monkeypatch):
    """The runner as it was: a fresh device array for the step's row indices every step."""
    from scratchgpt.backend import to_device
    eng = _engine("float32", GREEDY)
    runner = eng.runner
    real = runner.meta_dev

    class FreshUpload:                      # meta_dev[:n] -> a new device array each step
        def __getitem__(self, idx):
            return Uploaded(real[idx])

    class Uploaded:
        def __init__(self, view):
            self.view = view

        def copy_to_device(self, host_rows):
            self.fresh = to_device(np.array(host_rows), "cuda")

        def __getitem__(self, idx):
            return self.fresh[idx]

    monkeypatch.setattr(runner, "meta_dev", FreshUpload())
    logs = _decode_allocations(eng)
    assert [[(a.what, a.shape) for a in log] for log in logs] == [[("to_device", (10,))]] * 2
    assert all("test_cuda_allocations.py" in log[0].site for log in logs)


def test_the_counter_sees_split_attention_without_the_runners_scratch(monkeypatch):
    eng = _engine("float32", GREEDY)
    runner = eng.runner
    _late_decode(runner, [286, 270])
    monkeypatch.setattr(dac, "_SCRATCH", {})          # the module's own per-shape buffers, empty
    monkeypatch.setattr(runner, "att_scratch", None)
    with record_allocations() as log:
        _late_decode(runner, [288, 272])
    assert sorted(a.shape for a in log) == [(2, 2, 10), (2, 2, 10), (2, 2, 10, 8)]   # m, l, acc: 10 chunks
    assert all("decode_attention_cuda.py" in a.site for a in log)


def test_the_allocation_recorder_restores_the_simulator():
    import numba.cuda as ncuda
    from numba.cuda.simulator.cudadrv import devicearray as fake
    names = ("device_array", "device_array_like", "mapped_array", "to_device")
    before = [getattr(fake, n) for n in names], [getattr(ncuda, n) for n in names]
    with record_allocations() as log:
        a = ncuda.device_array((2, 3), np.float32)
        ncuda.device_array_like(a)
        ncuda.to_device(np.zeros(4))
        ncuda.to_device(np.ones((2, 3), np.float32), to=a)          # a copy into a, not an allocation
        a[1:].reshape(3)                                             # views
    assert [(x.what, x.shape) for x in log] == [("device_array", (2, 3)), ("device_array_like", (2, 3)),
                                                ("to_device", (4,))]
    assert ([getattr(fake, n) for n in names], [getattr(ncuda, n) for n in names]) == before


def test_gpu_check_times_both_allocator_modes(monkeypatch):
    """benchmarks/gpu_check.py's allocator part runs end to end. The simulator has no pool, so a
    pool over a fake driver stands in for the GPU's: the script's switching between the pooled
    and the uncached mode, its alternation and its summary run as they will on a GPU (the counts
    are zero here: the simulator's arrays do not go through that pool)."""
    from benchmark_modules import load_benchmark
    from scratchgpt import cuda_memory
    from scratchgpt.cuda_pool import BlockPool
    gpu_check = load_benchmark("gpu_check")
    drv = iter(range(4096, 1 << 40, 1 << 20))
    pool = BlockPool(lambda n: next(drv), lambda h: None)
    monkeypatch.setattr(cuda_memory, "current_pool", lambda: pool)
    res = gpu_check.pool_check(sim=True, steps=1, rounds=1)
    assert res["modes"] == ["pool", "no_cache"] and pool.caching
    for part in ("train_step", "decode_step"):
        assert set(res[part]) == {"pool", "no_cache", "no_cache_over_pool_time"}, res
        assert res[part]["pool"]["allocs_per_step"] == 0 and res[part]["pool"]["median_ms"] > 0
