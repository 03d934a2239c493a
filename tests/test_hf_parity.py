"""HF parity: our GPT loads a Hugging Face GPT-2 directory and HF loads ours; logits agree."""
import numpy as np
import pytest

transformers = pytest.importorskip("transformers", reason="transformers is a test reference; "
                                   "install it (pip install -e '.[dev]') to run HF parity")
torch = pytest.importorskip("torch", reason="transformers' GPT-2 needs torch")

from scratchgpt.autograd import no_grad  # noqa: E402
from scratchgpt.errors import CheckpointError, ConfigError  # noqa: E402
from scratchgpt.models import GPT, GPTConfig  # noqa: E402

TOL = 1e-4


def hf_model(seed=0):
    """A tiny GPT-2 with EVERY weight random (biases and LayerNorms too, not their 0/1 init)."""
    torch.manual_seed(seed)
    cfg = transformers.GPT2Config(n_layer=2, n_head=2, n_embd=32, vocab_size=101, n_positions=64,
                                  bos_token_id=0, eos_token_id=0)
    model = transformers.GPT2LMHeadModel(cfg).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ".ln_" in name and name.endswith("weight"):
                p.copy_(1 + 0.1 * torch.randn_like(p))
            else:
                p.copy_(0.1 * torch.randn_like(p))
    return model


def hf_logits(model, idx):
    with torch.no_grad():
        return model(torch.from_numpy(idx)).logits.numpy()


def ids(seed=0, shape=(3, 40)):
    return np.random.default_rng(seed).integers(0, 101, shape)


def test_from_pretrained_matches_hf_logits(tmp_path):
    hf = hf_model()
    hf.save_pretrained(tmp_path, safe_serialization=True)
    ours = GPT.from_pretrained(tmp_path)
    assert ours.config == GPTConfig(vocab_size=101, block_size=64, n_layer=2, n_head=2, n_embd=32)
    for name, p in hf.named_parameters():
        if name != "lm_head.weight":
            assert np.array_equal(dict(ours.named_parameters())[name].data, p.detach().numpy()), name
    idx = ids()
    with no_grad():
        logits, _ = ours(idx)
    ref = hf_logits(hf, idx)
    err = float(np.abs(logits.data - ref).max())
    print(f"\nmax |ours - HF| logits: {err:.2e} (scale {np.abs(ref).max():.2f})")
    assert err < TOL
    # the same loss as HF's (HF shifts labels internally; we pass the shifted targets)
    with torch.no_grad():
        hf_loss = hf(torch.from_numpy(idx), labels=torch.from_numpy(idx)).loss.item()
    _, loss = ours(idx[:, :-1], idx[:, 1:])
    assert abs(float(loss.data) - hf_loss) < TOL


def test_hf_loads_our_directory(tmp_path):
    ours = GPT(GPTConfig(vocab_size=101, block_size=64, n_layer=2, n_head=2, n_embd=32), seed=5)
    r = np.random.default_rng(1)
    for name, p in ours.named_parameters():   # make biases and LayerNorms non-trivial too
        p.data[...] += 0.05 * r.standard_normal(p.shape).astype(np.float32)
    ours.save(tmp_path)
    hf = transformers.GPT2LMHeadModel.from_pretrained(tmp_path).eval()
    assert torch.equal(hf.lm_head.weight, hf.transformer.wte.weight)   # tied on load
    idx = ids(1)
    with no_grad():
        logits, _ = ours(idx)
    err = float(np.abs(logits.data - hf_logits(hf, idx)).max())
    print(f"\nmax |ours - HF(our dir)| logits: {err:.2e}")
    assert err < TOL


def test_untied_or_unsupported_hf_checkpoints_are_refused(tmp_path):
    hf = hf_model()
    hf.config.activation_function = "relu"
    hf.save_pretrained(tmp_path, safe_serialization=True)
    with pytest.raises(ConfigError, match="activation_function 'relu'"):
        GPT.from_pretrained(tmp_path)
    # an lm_head that differs from wte cannot be represented by a tied model
    from scratchgpt.models.checkpoint import load_safetensors, save_safetensors
    hf.config.activation_function = "gelu_new"
    hf.save_pretrained(tmp_path, safe_serialization=True)
    tensors = load_safetensors(tmp_path / "model.safetensors")
    tensors["lm_head.weight"] = tensors["transformer.wte.weight"] + 1
    save_safetensors(tmp_path / "model.safetensors", tensors)
    with pytest.raises(CheckpointError, match="lm_head.weight"):
        GPT.from_pretrained(tmp_path)
