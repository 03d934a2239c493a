"""The generation engine on the (simulated) GPU: weights, activations and the KV cache on the
device (infer/cuda_forward.py), the same tokens and logits as the CPU engine; its row kernels
against their references in both launch geometries (the GPU's and the simulator's)."""
import numpy as np
import pytest

from cuda_sim import assert_close, dev, host
from scratchgpt.infer import Engine, GenerationRequest, SamplingParams
from scratchgpt.ops import decode_layernorm as dln
from scratchgpt.ops import quantized_matmul as qm
from scratchgpt.ops import smear_op
from scratchgpt.ops.decode_layernorm_cuda import add_layernorm_rows_cuda, layernorm_rows_cuda
from scratchgpt.ops.decode_matmul import small_matmul_ref
from scratchgpt.ops.decode_matmul_cuda import GPU_GEOMETRY, SIM_GEOMETRY, dense_rows_cuda
from scratchgpt.ops.quantized_matmul_cuda import int4_linear_cuda, int8_linear_cuda
from scratchgpt.ops.smear_cuda import smear_backward_cuda, smear_forward_cuda
from scratchgpt.ops.views_cuda import take_rows_cuda
from tests.infer_helpers import tiny_gpt

GREEDY = SamplingParams(max_new_tokens=3, ignore_eos=True)


def _run(engine, prompts, params=GREEDY):
    """Tokens and per-step logits of each prompt, all requests in the engine at once."""
    ids = [engine.add(GenerationRequest(p, params)) for p in prompts]
    toks = {i: [] for i in ids}
    logits = {i: [] for i in ids}
    while engine.has_work():
        for out in engine.step():
            toks[out.id].append(out.token_id)
            logits[out.id].append(out.logits)
    return [toks[i] for i in ids], [np.stack(logits[i]) for i in ids]


# ----------------------------------------------------------------------------- kernels
@pytest.mark.parametrize("geometry", [GPU_GEOMETRY, SIM_GEOMETRY])
def test_row_products_in_both_geometries(geometry):
    rng = np.random.default_rng(0)
    M, K, N = 2, 40, 5                                     # K not a multiple of 32 lanes; N of 4 outputs
    x = rng.standard_normal((M, K)).astype(np.float32)
    wt = rng.standard_normal((N, K)).astype(np.float32)
    b = rng.standard_normal(N).astype(np.float32)
    assert_close(dense_rows_cuda(dev(x), dev(wt), dev(b), geometry=geometry), small_matmul_ref(x, wt, b),
                 atol=1e-5, rtol=1e-5)
    w = wt.T.copy()
    q, s = qm.quantize_int8(w, 32)
    assert_close(int8_linear_cuda(dev(x), dev(q), dev(s), dev(b), geometry=geometry), qm.int8_linear_ref(x, q, s, b),
                 atol=1e-5, rtol=1e-5)
    p, s4 = qm.quantize_int4(w, 32)
    assert_close(int4_linear_cuda(dev(x), dev(p), dev(s4), None, geometry=geometry), qm.int4_linear_ref(x, p, s4),
                 atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("threads", [4, 1])
def test_layernorm_rows_fused_add(threads):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 10)).astype(np.float32)
    d = rng.standard_normal((3, 10)).astype(np.float32)
    w, b = rng.standard_normal(10).astype(np.float32), rng.standard_normal(10).astype(np.float32)
    assert_close(layernorm_rows_cuda(dev(x), dev(w), dev(b), threads=threads), dln.layernorm_rows_ref(x, w, b),
                 atol=2e-5, rtol=1e-4)
    dx, dd = dev(x), dev(d)
    add_layernorm_rows_cuda(dx, dd, dev(w), dev(b), out=dd, threads=threads)       # out over its input
    rs, rh = dln.add_layernorm_rows_ref(x, d, w, b)
    assert_close(dx, rs, atol=1e-6, rtol=1e-6)
    assert_close(dd, rh, atol=2e-5, rtol=1e-4)


def test_take_rows_and_smear_against_references():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((4, 3)).astype(np.float32)
    assert_close(take_rows_cuda(dev(x), dev(np.array([3, 0, 3]))), x[[3, 0, 3]], atol=0, rtol=0)
    # smear forward + backward in float64 against the float64 reference
    xs = rng.standard_normal((2, 3, 4))
    w, b = rng.standard_normal(4), rng.standard_normal(1)
    g = rng.standard_normal((2, 3, 4))
    y, cache = smear_forward_cuda(dev(xs), dev(w), dev(b))
    ry, rcache = smear_op.smear_forward_ref(xs, w, b)
    assert_close(y, ry, atol=1e-12, rtol=1e-10)
    for got, want in zip(smear_backward_cuda(dev(g), cache), smear_op.smear_backward_ref(g, rcache)):
        assert_close(got, want, atol=1e-12, rtol=1e-10)


# ----------------------------------------------------------------------------- the engine
def test_engine_on_the_gpu_equals_the_cpu_engine_batched():
    # smear model (the demo's kind): two prompts decoded together; greedy tokens equal, logits to float32
    model = tiny_gpt(seed=0, vocab=29, block=12, n_layer=2, n_embd=16, smear=True)
    prompts = [[1, 5, 7], [2, 9, 4, 11, 3]]
    cpu_t, cpu_l = _run(Engine(model, None, max_batch_size=2, return_logits=True), prompts)
    gpu = Engine(model, None, max_batch_size=2, return_logits=True, device="cuda")
    assert gpu.device == "cuda" and not isinstance(gpu.cache.k, np.ndarray)   # the cache lives on the device
    gpu_t, gpu_l = _run(gpu, prompts)
    assert gpu_t == cpu_t
    for a, b in zip(gpu_l, cpu_l):
        np.testing.assert_allclose(a, b, atol=1e-4, rtol=1e-4)
    # alone == batched on the GPU as well (row-independent kernels)
    alone_t, alone_l = _run(Engine(model, None, max_batch_size=1, return_logits=True, device="cuda"), prompts[1:])
    assert alone_t[0] == gpu_t[1]
    np.testing.assert_array_equal(alone_l[0], gpu_l[1])


def test_engine_follows_a_model_on_the_device_and_its_long_prefill():
    # parameters already on the GPU: the engine uses them in place; a 10-row prompt takes the tiled kernel
    model = tiny_gpt(seed=1, vocab=23, block=16, n_layer=1, n_embd=16)
    prompt = list(range(1, 11))
    cpu_t, cpu_l = _run(Engine(model, None, max_batch_size=1, return_logits=True), [prompt])
    model.to("cuda")
    gpu = Engine(model, None, max_batch_size=1, return_logits=True)
    assert gpu.device == "cuda"
    gpu_t, gpu_l = _run(gpu, [prompt])
    assert gpu_t == cpu_t
    np.testing.assert_allclose(gpu_l[0], cpu_l[0], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("bits", [8, 4])
def test_quantized_engine_on_the_gpu(bits):
    from scratchgpt.infer.quantize import QuantConfig, quantize_gpt
    # the GPU computes weight-only (act_quant is a CPU decode option): compare with the CPU's weight-only path
    q = quantize_gpt(tiny_gpt(seed=2, vocab=23, block=12, n_layer=1, n_embd=32), QuantConfig(bits=bits, act_quant=False))
    prompt = [3, 1, 4]
    cpu_t, cpu_l = _run(Engine(q, None, max_batch_size=1, return_logits=True), [prompt])
    gpu = Engine(q, None, max_batch_size=1, return_logits=True, device="cuda")
    assert gpu.weights.kind == f"int{bits}"
    gpu_t, gpu_l = _run(gpu, [prompt])
    assert gpu_t == cpu_t
    np.testing.assert_allclose(gpu_l[0], cpu_l[0], atol=1e-4, rtol=1e-4)


def test_peft_model_on_the_device_is_read_once_through_the_host():
    from scratchgpt.nn.peft import apply_peft
    model = tiny_gpt(seed=4, vocab=19, block=10, n_layer=1, n_embd=16)
    apply_peft(model, "adapter", adapter_size=4, seed=0)
    for name, p in model.named_parameters():
        if "adapter" in name:
            p.data[...] = np.random.default_rng(5).standard_normal(p.data.shape).astype(np.float32)
    prompt = [2, 7, 1]
    cpu_t, cpu_l = _run(Engine(model, None, max_batch_size=1, return_logits=True), [prompt])
    model.to("cuda")
    before = [p.data for p in model.parameters()]
    gpu_t, gpu_l = _run(Engine(model, None, max_batch_size=1, return_logits=True), [prompt])
    assert all(p.data is d for p, d in zip(model.parameters(), before))     # the model keeps its arrays
    assert gpu_t == cpu_t
    np.testing.assert_allclose(gpu_l[0], cpu_l[0], atol=1e-4, rtol=1e-4)


def test_generate_command_on_the_gpu(tmp_path, capsys):
    from scratchgpt.cli import main
    from tests.test_infer_text import TOK
    tiny_gpt(seed=3, vocab=TOK.vocab_size, block=16, n_layer=1, n_embd=16, scale=4.0).save(tmp_path)
    TOK.save(tmp_path / "tokenizer.json")
    argv = ["generate", str(tmp_path), "--prompt", "Hi", "--max-new-tokens", "3", "--raw", "--ignore-eos"]
    assert main(argv) == 0
    cpu = capsys.readouterr().out
    assert main(argv + ["--device", "cuda", "--sim"]) == 0
    assert capsys.readouterr().out == cpu
    assert main(argv + ["--device", "cuda", "--tp", "2"]) == 2
    assert "\n" not in capsys.readouterr().err.strip()


def test_device_cuda_without_a_gpu_is_one_line_exit_2(tmp_path, capsys, monkeypatch):
    from scratchgpt import backend
    from scratchgpt.cli import main
    monkeypatch.setattr(backend, "cuda_kind", lambda: None)
    for cmd in (["generate", str(tmp_path), "--prompt", "hi"], ["chat", str(tmp_path)],
                ["eval", str(tmp_path), "--data", str(tmp_path)], ["serve", str(tmp_path)], ["demo", "--quick"]):
        assert main(cmd + ["--device", "cuda"]) == 2, cmd
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and "no CUDA GPU" in err, (cmd, err)


@pytest.mark.gpu
def test_row_products_with_warp_shuffles_on_a_real_gpu():
    from scratchgpt.ops import decode_matmul_cuda as dm
    assert dm.WARP_SHUFFLE                     # a real GPU: the 32-lane sums go register to register
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3, 1000)).astype(np.float32)
    wt = rng.standard_normal((777, 1000)).astype(np.float32)
    assert_close(dense_rows_cuda(dev(x), dev(wt), geometry=GPU_GEOMETRY), small_matmul_ref(x, wt),
                 atol=1e-3, rtol=1e-4)


def _greedy_tokens(engine, prompts):
    ids = [engine.add(GenerationRequest(p, GREEDY)) for p in prompts]
    toks = {i: [] for i in ids}
    while engine.has_work():
        for out in engine.step():
            assert out.logits is None
            toks[out.id].append(out.token_id)
    return [toks[i] for i in ids]


def test_greedy_steps_take_the_argmax_on_the_device(monkeypatch):
    from scratchgpt.infer.cuda_forward import CudaDecoderRunner
    calls = []
    greedy = CudaDecoderRunner.forward_greedy
    monkeypatch.setattr(CudaDecoderRunner, "forward_greedy", lambda self, *a: calls.append(1) or greedy(self, *a))
    model = tiny_gpt(seed=5, vocab=29, block=12, n_layer=1, n_embd=16)
    prompts = [[1, 5, 7], [2, 9, 4, 11]]
    cpu = _greedy_tokens(Engine(model, None, max_batch_size=2), prompts)
    assert _greedy_tokens(Engine(model, None, max_batch_size=2, device="cuda"), prompts) == cpu
    assert len(calls) == 3                               # every step: only the picks crossed
    # logits without a finite maximum: the GPU hands the row to the sampler, which fails as on the CPU
    model.transformer.ln_f.weight.data[0] = np.nan
    errors = []
    for device in ("cpu", "cuda"):
        with pytest.raises(Exception) as e:
            _greedy_tokens(Engine(model, None, max_batch_size=1, device=device), prompts[:1])
        errors.append((type(e.value), str(e.value)))
    assert errors[0] == errors[1]
