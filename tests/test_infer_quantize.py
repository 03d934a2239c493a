"""Quantized GPT: logits vs float32 within the error model's bound, checkpoints that round-trip
and refuse corrupted / mismatched files."""
import json
import math

import numpy as np
import pytest

from scratchgpt.autograd import no_grad
from scratchgpt.errors import CheckpointError, ConfigError
from scratchgpt.infer.quantize import (BLOCK_KINDS, Int4Linear, Int8Linear, QuantConfig, is_quantized_dir,
                                       param_shapes, quantize_gpt, read_quantized, save_quantized)
from scratchgpt.models import GPT, GPTConfig

CFG = GPTConfig(vocab_size=96, block_size=16, n_layer=3, n_head=4, n_embd=64)


@pytest.fixture(scope="module")
def model():
    return GPT(CFG, seed=3)


def logits(m, idx):
    with no_grad():
        return m(idx)[0].data.astype(np.float64)


def rel_rms(a, b):
    return math.sqrt(np.mean((a - b) ** 2) / np.mean(b ** 2))


@pytest.mark.parametrize("bits,qmax", [(8, 127), (4, 7)])
def test_quantized_logits_close_to_float32(model, bits, qmax):
    """Error model: a weight's rounding error is uniform in ±d/2 with d = amax/QMAX, so its RMS
    is amax/(QMAX·√12); for Gaussian-like weights a group of 32 has amax ≤ 3σ (P > 0.99), so one
    matmul's output moves by at most 3/(QMAX·√12) of its RMS (0.68 % int8, 12 % int4). The
    2L+1 quantized matmuls on the path err independently: RMS(Δlogits) ≤ √(2L+1) times that."""
    idx = np.random.default_rng(0).integers(0, CFG.vocab_size, (3, CFG.block_size))
    ref = logits(model, idx)
    q = quantize_gpt(model, QuantConfig(bits=bits))
    got = logits(q.simulated_gpt(), idx)
    bound = math.sqrt(2 * CFG.n_layer + 1) * 3 / (qmax * math.sqrt(12))
    err = rel_rms(got, ref)
    assert 0 < err <= bound, (err, bound)
    if bits == 8:          # a 0.7 % change in the logits leaves the greedy token alone almost everywhere
        assert np.mean(got.argmax(-1) == ref.argmax(-1)) >= 0.95


def test_which_tensors_are_quantized(model):
    q = quantize_gpt(model, QuantConfig(bits=8))
    names = set(q.qlinears)
    assert names == {f"transformer.h.{i}.{k}" for i in range(CFG.n_layer) for k in BLOCK_KINDS} | {"lm_head"}
    assert all(isinstance(v, Int8Linear) for v in q.qlinears.values())
    # LayerNorm, wpe and the embedding table stay float32
    assert "transformer.wte.weight" in q.floats and "transformer.h.0.ln_1.weight" in q.floats
    assert all(a.dtype == np.float32 for a in q.floats.values())
    only_mlp = quantize_gpt(model, QuantConfig(bits=4, kinds=("mlp.c_fc", "mlp.c_proj"), lm_head=False))
    assert set(only_mlp.qlinears) == {f"transformer.h.{i}.mlp.{k}" for i in range(CFG.n_layer)
                                      for k in ("c_fc", "c_proj")}
    assert all(isinstance(v, Int4Linear) for v in only_mlp.qlinears.values())
    assert "transformer.h.1.attn.c_attn.weight" in only_mlp.floats
    emb = quantize_gpt(model, QuantConfig(bits=8, embeddings=True))
    assert "transformer.wte.weight" not in emb.floats
    np.testing.assert_array_equal(emb.wte(), q.qlinears["lm_head"].dequantized().T)
    with pytest.raises(ConfigError):
        QuantConfig(embeddings=True, lm_head=False)
    with pytest.raises(ConfigError):
        QuantConfig(bits=3)
    with pytest.raises(ConfigError):
        QuantConfig(kinds=("attn.c_q",))


@pytest.mark.parametrize("bits", [8, 4])
def test_checkpoint_round_trip(model, tmp_path, bits):
    q = quantize_gpt(model, QuantConfig(bits=bits, group_size=64))
    save_quantized(q, tmp_path)
    assert is_quantized_dir(tmp_path)
    back = read_quantized(tmp_path)
    assert back.qconfig == q.qconfig and back.config == q.config
    for name, lin in q.qlinears.items():
        np.testing.assert_array_equal(back.qlinears[name].qweight, lin.qweight)
        np.testing.assert_array_equal(back.qlinears[name].scales, lin.scales)
        assert back.qlinears[name].in_features == lin.in_features
    idx = np.arange(12).reshape(2, 6)
    np.testing.assert_array_equal(logits(back.simulated_gpt(), idx), logits(q.simulated_gpt(), idx))
    # the file is int-sized, not float-sized
    float_bytes = sum(int(np.prod(s)) * 4 for s in param_shapes(CFG).values())
    assert (tmp_path / "model.safetensors").stat().st_size < float_bytes


def test_act_quant_is_stored_and_old_checkpoints_load_weight_only(model, tmp_path):
    for act in (True, False):
        save_quantized(quantize_gpt(model, QuantConfig(bits=8, act_quant=act)), tmp_path)
        meta = json.loads((tmp_path / "config.json").read_text())
        assert meta["quantization"]["act_quant"] is act
        back = read_quantized(tmp_path)
        assert back.qconfig.act_quant is act and all(lin.act_quant is act for lin in back.qlinears.values())
    # a checkpoint written before the option existed ran weight-only, and still does
    del meta["quantization"]["act_quant"]
    (tmp_path / "config.json").write_text(json.dumps(meta))
    old = read_quantized(tmp_path)
    assert old.qconfig.act_quant is False and not any(lin.act_quant for lin in old.qlinears.values())


def test_checkpoint_refuses_corrupted_and_mismatched(model, tmp_path):
    q = quantize_gpt(model, QuantConfig(bits=8))
    save_quantized(q, tmp_path)
    w = tmp_path / "model.safetensors"
    raw = bytearray(w.read_bytes())
    # one flipped bit in the data: the hash catches it
    raw[-100] ^= 1
    w.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="corrupted"):
        read_quantized(tmp_path)
    # another config's weights under this config.json: refused by name and shape
    save_quantized(q, tmp_path)
    meta = json.loads((tmp_path / "config.json").read_text())
    meta["scratchgpt_config"]["n_layer"] = 2
    (tmp_path / "config.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="unexpected tensor 'transformer.h.2"):
        read_quantized(tmp_path)
    meta["scratchgpt_config"]["n_layer"] = 3
    meta["quantization"]["bits"] = 4
    (tmp_path / "config.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="shape|dtype"):
        read_quantized(tmp_path)
    # a plain GPT loader refuses the directory by name rather than misreading int8 as floats
    meta["quantization"]["bits"] = 8
    (tmp_path / "config.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="gpt-quantized"):
        GPT.load(tmp_path)
    # a truncated file
    save_quantized(q, tmp_path)
    w.write_bytes(w.read_bytes()[:-50])
    with pytest.raises(CheckpointError):
        read_quantized(tmp_path)
    assert not is_quantized_dir(tmp_path / "nowhere")


def test_param_shapes_match_the_model():
    for cfg in (CFG, CFG.replace(bias=False), CFG.replace(n_inner=48, head_dim=8, n_head=3), CFG.replace(smear=True)):
        assert param_shapes(cfg) == {n: p.data.shape for n, p in GPT(cfg).named_parameters()}


# ----------------------------------------------------------------------------- through the engine
def engine_greedy(model, prompt, n):
    from scratchgpt.infer import Engine, GenerationRequest, SamplingParams
    eng = Engine(model, None, max_batch_size=1, return_logits=True)
    eng.add(GenerationRequest(prompt, SamplingParams(max_new_tokens=n, ignore_eos=True)))
    toks, lg = [], []
    while eng.has_work():
        for o in eng.step():
            toks.append(o.token_id)
            lg.append(o.logits)
    return toks, np.array(lg)


@pytest.mark.parametrize("bits,group,prompt_len", [(8, 32, 3), (8, 64, 11), (4, 32, 11), (4, 64, 2)])
def test_engine_runs_the_packed_kernels_like_the_simulated_model(bits, group, prompt_len):
    """The engine multiplies by the packed weights (decode kernels; prefill of >= 8 rows via
    dequantized tiles + BLAS); the simulated GPT by the same dequantized weights through the
    training-side ops. Same function, different float32 summation orders."""
    from tests.infer_helpers import recompute_greedy, tiny_gpt
    m = tiny_gpt(seed=4, vocab=70, block=16, n_layer=2, n_head=2, n_embd=64, scale=4.0)
    q = quantize_gpt(m, QuantConfig(bits=bits, group_size=group, act_quant=False))
    prompt = list(range(1, prompt_len + 1))
    n = 16 - prompt_len
    toks, lg = engine_greedy(q, prompt, n)
    ref_toks, ref_lg = recompute_greedy(q.simulated_gpt(), prompt, n)
    assert toks == ref_toks
    np.testing.assert_allclose(lg, ref_lg, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("bits,group", [(8, 32), (4, 32), (8, 64)])
def test_act_quant_engine_stays_close_to_the_weight_only_model(bits, group):
    """With act_quant the engine's decode rows also round each linear's input to int8 per block
    of 32: an element moves by at most dx/2, dx = amax/127, and amax <= √32 · the block's RMS, so
    (rounding uniform in ±dx/2) one linear's input moves by at most √32/(127·√12) = 1.3 % of its
    RMS. The 4L+1 linears err independently: RMS(Δlogits) <= √(4L+1) times that, compared on the
    engine's own tokens against the weight-only simulated model (teacher forced)."""
    from tests.infer_helpers import tiny_gpt
    L = 2
    m = tiny_gpt(seed=4, vocab=70, block=16, n_layer=L, n_head=2, n_embd=64, scale=4.0)
    q = quantize_gpt(m, QuantConfig(bits=bits, group_size=group))
    assert q.qconfig.act_quant and all(lin.act_quant for lin in q.qlinears.values())
    prompt = [1, 2, 3]
    toks, lg = engine_greedy(q, prompt, 16 - len(prompt))              # lg (13, V): every row <= 8 rows
    seq = np.array([prompt + toks[:-1]])
    ref = logits(q.simulated_gpt(), seq)[0, len(prompt) - 1:]           # the same positions, float activations
    err = rel_rms(lg.astype(np.float64), ref)
    bound = math.sqrt(4 * L + 1) * math.sqrt(32) / (127 * math.sqrt(12))
    assert 0 < err <= bound, (err, bound)


def test_load_for_inference_reads_a_quantized_dir(tmp_path):
    from scratchgpt.infer import load_for_inference
    from scratchgpt.infer.quantize import QuantizedGPT
    from scratchgpt.tokenizer import BPETokenizer
    tok = BPETokenizer.train(["hello world, hello quantized model"] * 4, 270)
    m = GPT(CFG.replace(vocab_size=tok.vocab_size), seed=1)
    save_quantized(quantize_gpt(m, QuantConfig(bits=4)), tmp_path, tokenizer=tok)
    model, tok2 = load_for_inference(tmp_path)
    assert isinstance(model, QuantizedGPT) and model.qconfig.bits == 4
    assert tok2.encode("hello world") == tok.encode("hello world")
    w = model.decoder_weights()
    assert w.kind == "int4" and type(w.linear("lm_head")).__name__ == "Int4Linear"


def test_smear_model_quantizes_round_trips_and_runs_in_the_engine(tmp_path):
    from scratchgpt.infer import Engine, SamplingParams
    from tests.infer_helpers import recompute_greedy, tiny_gpt
    m = tiny_gpt(seed=5, smear=True)
    q = quantize_gpt(m, QuantConfig(bits=8))
    assert "transformer.smear.weight" in q.floats          # the gate stays float32
    save_quantized(q, tmp_path)
    q2 = read_quantized(tmp_path)
    got = Engine(q2, None, max_batch_size=1).generate([4, 9, 2, 7], SamplingParams(max_new_tokens=6,
                                                                                    ignore_eos=True)).token_ids
    assert got == recompute_greedy(q.simulated_gpt(), [4, 9, 2, 7], 6)[0]
