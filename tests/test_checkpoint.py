"""Checkpoint IO: bit-exact roundtrips, and clear errors naming the tensor on bad files."""
import json
import struct

import numpy as np
import pytest

from scratchgpt.errors import CheckpointError
from scratchgpt.models import GPT, GPTConfig, Seq2SeqConfig, Seq2SeqTransformer
from scratchgpt.models.checkpoint import (load_safetensors, read_safetensors_header, save_safetensors)

CFG = GPTConfig(vocab_size=37, block_size=8, n_layer=2, n_head=2, n_embd=16)


@pytest.fixture
def saved(tmp_path):
    model = GPT(CFG, seed=4)
    model.save(tmp_path / "ck")
    return model, tmp_path / "ck"


def test_gpt_roundtrip_is_bit_exact(saved):
    model, d = saved
    assert sorted(p.name for p in d.iterdir()) == ["config.json", "model.safetensors"]
    loaded = GPT.load(d)
    assert loaded.config == model.config
    for (n, a), (m, b) in zip(model.named_parameters(), loaded.named_parameters()):
        assert n == m and a.dtype == b.dtype and np.array_equal(a.data, b.data), n
    idx = np.array([[1, 2, 3, 4]])
    assert np.array_equal(model(idx)[0].data, loaded(idx)[0].data)
    meta = json.loads((d / "config.json").read_text())
    assert meta["model_type"] == "gpt2" and meta["activation_function"] == "gelu_new"
    assert meta["n_positions"] == 8 and meta["tie_word_embeddings"] is True


def test_seq2seq_roundtrip_is_bit_exact(tmp_path):
    cfg = Seq2SeqConfig(vocab_size=12, block_size=6, n_encoder_layer=1, n_decoder_layer=2, n_head=2, n_embd=8)
    model = Seq2SeqTransformer(cfg, seed=2)
    model.save(tmp_path)
    loaded = Seq2SeqTransformer.load(tmp_path)
    assert loaded.config == cfg
    for (n, a), (_, b) in zip(model.named_parameters(), loaded.named_parameters()):
        assert np.array_equal(a.data, b.data), n
    with pytest.raises(CheckpointError, match="not a GPT"):
        GPT.load(tmp_path)


def _last_tensor(path):
    header, _, _ = read_safetensors_header(path)
    return max(header, key=lambda k: header[k]["data_offsets"][1])


def test_truncated_file_names_the_tensor(saved):
    _, d = saved
    path = d / "model.safetensors"
    victim = _last_tensor(path)
    data = path.read_bytes()
    path.write_bytes(data[:-10])
    with pytest.raises(CheckpointError, match=rf"tensor '{victim}' is truncated"):
        GPT.load(d)
    path.write_bytes(data[:5])
    with pytest.raises(CheckpointError, match="too short"):
        GPT.load(d)
    path.write_bytes(data[:100])                      # cut inside the JSON header
    with pytest.raises(CheckpointError, match="header length"):
        GPT.load(d)


def test_wrong_shape_names_tensor_and_both_shapes(saved):
    model, d = saved
    tensors = {n: p.data for n, p in model.named_parameters()}
    tensors["transformer.h.1.attn.c_proj.weight"] = np.zeros((16, 15), np.float32)
    save_safetensors(d / "model.safetensors", tensors)
    with pytest.raises(CheckpointError,
                       match=r"'transformer\.h\.1\.attn\.c_proj\.weight' has shape \(16, 15\), expected \(16, 16\)"):
        GPT.load(d)


def test_config_mismatch_is_reported_as_shape_error(saved, tmp_path):
    _, d = saved
    meta = json.loads((d / "config.json").read_text())
    meta["scratchgpt_config"]["n_embd"] = 32
    (d / "config.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match=r"transformer\.wte\.weight' has shape \(37, 16\), expected \(37, 32\)"):
        GPT.load(d)


def test_missing_and_unexpected_tensors(saved):
    model, d = saved
    tensors = {n: p.data for n, p in model.named_parameters()}
    del tensors["transformer.h.0.ln_2.bias"]
    save_safetensors(d / "model.safetensors", tensors)
    with pytest.raises(CheckpointError, match=r"missing tensor 'transformer\.h\.0\.ln_2\.bias' \(expected shape \(16,\)\)"):
        GPT.load(d)
    tensors = {n: p.data for n, p in model.named_parameters()}
    tensors["transformer.h.9.ln_2.bias"] = np.zeros(16, np.float32)
    save_safetensors(d / "model.safetensors", tensors)
    with pytest.raises(CheckpointError, match=r"unexpected tensor 'transformer\.h\.9\.ln_2\.bias'"):
        GPT.load(d)


def test_inconsistent_header_offsets_are_caught(tmp_path):
    path = tmp_path / "x.safetensors"
    header = json.dumps({"w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 20]}}).encode()
    path.write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 20)
    with pytest.raises(CheckpointError, match=r"tensor 'w' with shape \(2, 3\) and dtype F32 needs 24 bytes"):
        load_safetensors(path)
    with pytest.raises(CheckpointError, match="does not exist"):
        GPT.load(tmp_path / "nowhere")


def test_reader_handles_float16_and_bfloat16(tmp_path):
    from safetensors.numpy import save_file
    x = np.array([[1.5, -2.25], [3.0, 0.0]], np.float32)
    path = tmp_path / "h.safetensors"
    # bfloat16 = the top 16 bits of float32; these values are exactly representable in both
    bf16 = (x.view(np.uint32) >> 16).astype(np.uint16)
    save_file({"half": x.astype(np.float16), "i": np.arange(3, dtype=np.int64)}, str(path))
    got = load_safetensors(path)
    assert got["half"].dtype == np.float16 and np.array_equal(got["half"].astype(np.float32), x)
    assert np.array_equal(got["i"], np.arange(3))
    header = json.dumps({"b": {"dtype": "BF16", "shape": [2, 2], "data_offsets": [0, 8]}}).encode()
    path.write_bytes(struct.pack("<Q", len(header)) + header + bf16.astype("<u2").tobytes())
    got = load_safetensors(path)
    assert got["b"].dtype == np.float32 and np.array_equal(got["b"], x)


def test_load_accepts_a_bare_config_dict(saved):
    """The trainer writes config.json as GPTConfig.to_dict() alone; GPT.load reads that too."""
    model, d = saved
    (d / "config.json").write_text(json.dumps(model.config.to_dict()))
    loaded = GPT.load(d)
    assert loaded.config == model.config
    assert np.array_equal(loaded.transformer.wte.weight.data, model.transformer.wte.weight.data)
