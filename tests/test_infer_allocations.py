"""The engine's steady state allocates no arrays per token (issue 8: "no per-token allocations").

How it is measured: NumPy reports every array buffer it allocates to ``tracemalloc``; after a
warm-up, the peak of traced memory during a decode step, above the memory traced when the step
began, bounds every temporary the step made. The model is made wide enough (8 rows x 512
channels, 8192-token vocabulary) that any per-step activation-sized array — a (8, 512) hidden
state is 16 KiB, a (8, 8192) logits block 256 KiB — is larger than the bound, while the Python
bookkeeping a step really does (a StepOutput per row, list appends, small index arrays in the
greedy pick) stays below it. The negative test shows the measurement sees a hidden state copy.
"""
import tracemalloc

import numpy as np
import pytest

from scratchgpt.infer import Engine, GenerationRequest, SamplingParams
from scratchgpt.infer.quantize import QuantConfig, quantize_gpt
from tests.infer_helpers import tiny_gpt

ROWS, WIDTH, VOCAB = 8, 512, 8192
BOUND = 8 * 1024          # bytes: half of one (8, 512) float32 array


def _engine(kind):
    m = tiny_gpt(seed=5, vocab=VOCAB, block=128, n_layer=1, n_head=4, n_embd=WIDTH)
    if kind != "float32":
        m = quantize_gpt(m, QuantConfig(bits=8 if kind == "int8" else 4, group_size=32))
    return Engine(m, max_batch_size=ROWS)


def _start(eng, sampled):
    p = SamplingParams(max_new_tokens=100, ignore_eos=True, seed=3,
                       temperature=0.8 if sampled else 0.0, top_k=50 if sampled else None,
                       top_p=0.9 if sampled else None)
    for i in range(ROWS):
        eng.add(GenerationRequest(prompt_ids=list(range(1 + i, 9 + i)), params=p))
    for _ in range(12):           # prefill, kernel compilation, build choice, sampler buffers
        eng.step()


def _step_transients(eng, n=8):
    """Peak bytes above the start of each of n decode steps."""
    out = []
    tracemalloc.start()
    try:
        eng.step()
        for _ in range(n):
            c0, _ = tracemalloc.get_traced_memory()
            tracemalloc.reset_peak()
            res = eng.step()
            _, peak = tracemalloc.get_traced_memory()
            assert len(res) == ROWS and not any(r.finished for r in res)
            out.append(peak - c0)
    finally:
        tracemalloc.stop()
    return out


@pytest.mark.parametrize("kind,sampled", [("float32", False), ("float32", True), ("int8", False), ("int4", True)])
def test_decode_steps_allocate_no_arrays(kind, sampled):
    eng = _engine(kind)
    _start(eng, sampled)
    transients = _step_transients(eng)
    assert max(transients) < BOUND, transients


def test_the_measurement_sees_a_hidden_copy():
    """The same measurement fails when a step copies one (8, 512) hidden state."""
    eng = _engine("float32")
    _start(eng, False)
    runner = eng.runner
    forward = runner.forward

    def leaky_forward(*args, **kw):
        keep = np.array(runner.x[:ROWS])          # the kind of temporary the engine must not make
        del keep
        return forward(*args, **kw)

    runner.forward = leaky_forward
    assert max(_step_transients(eng, n=3)) >= BOUND
