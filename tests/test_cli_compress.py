"""`scratchgpt quantize | prune | export` on a tiny random model and a tiny prepared dialogue set."""
import json

import numpy as np
import pytest

from scratchgpt.autograd import no_grad
from scratchgpt.cli import main
from scratchgpt.models import GPT, GPTConfig

CONVS = [
    ("Where is my order SG-{n}?", "Order SG-{n} has shipped and arrives in 3 days."),
    ("I want a refund for order SG-{n}.", "The refund for order SG-{n} is on its way."),
    ("Can I change the address of SG-{n}?", "Yes, the address of order SG-{n} is updated."),
]


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A model directory (random tiny GPT + BPE tokenizer) and a prepared data directory."""
    from scratchgpt.data.pipeline import write_shards
    from scratchgpt.tokenizer import BPETokenizer
    from scratchgpt.tokenizer.special import CHAT_SPECIAL_TOKENS
    root = tmp_path_factory.mktemp("compress")
    data = root / "data"
    data.mkdir()
    texts = []
    for split, ns in (("train", range(100, 124)), ("val", range(200, 206)), ("test", range(300, 306))):
        with open(data / f"{split}.jsonl", "w", encoding="utf-8") as f:
            for n in ns:
                u, a = CONVS[n % 3]
                msgs = [{"role": "user", "content": u.format(n=n)}, {"role": "assistant", "content": a.format(n=n)}]
                texts += [m["content"] for m in msgs]
                f.write(json.dumps({"id": f"{split}-{n}", "messages": msgs, "topic": "orders",
                                    "language": "en"}) + "\n")
    tok = BPETokenizer.train(texts, 300, special_tokens=CHAT_SPECIAL_TOKENS)
    write_shards(data, tok)
    model_dir = root / "model"
    GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=64, n_layer=2, n_head=4, n_embd=64), seed=0).save(model_dir)
    tok.save(str(model_dir / "tokenizer.json"))
    return model_dir, data, tok


def run(*argv):
    return main([str(a) for a in argv])


def logits(m, idx):
    with no_grad():
        return m(idx)[0].data


def test_quantize_writes_a_model_the_engine_loads(base, tmp_path, capsys):
    from scratchgpt.infer import Engine, SamplingParams, load_for_inference
    model_dir, _, tok = base
    for bits, extra in ((8, ()), (4, ("--weight-only",))):
        out = tmp_path / f"q{bits}"
        assert run("quantize", model_dir, "--bits", bits, "--group_size", "64", "--out", out, "--no-progress",
                   *extra) == 0
        model, tok2 = load_for_inference(out)
        assert model.qconfig.bits == bits and model.qconfig.group_size == 64
        assert model.qconfig.act_quant == (not extra)                  # stored in config.json, read back
        assert all(lin.act_quant == (not extra) for lin in model.qlinears.values())
        c = Engine(model, tok2).generate(tok.encode("Where is"), SamplingParams(max_new_tokens=5, ignore_eos=True))
        assert len(c.token_ids) == 5
    assert "written to" in capsys.readouterr().out


def test_quantize_report_prints_the_table(base, tmp_path, capsys):
    model_dir, data, _ = base
    out = tmp_path / "q"
    assert run("quantize", model_dir, "--bits", "8", "--out", out, "--report", "--data", data, "--no-progress") == 0
    text = capsys.readouterr().out
    assert "| float32 |" in text and "| int8 g32 |" in text
    rows = json.loads((out / "report.json").read_text())["rows"]
    assert [r["method"] for r in rows] == ["float32", "int8 g32"]
    f32, q = rows
    assert q["file_mb"] < 0.5 * f32["file_mb"] and q["weights_mb"] < 0.5 * f32["weights_mb"]
    assert q["decode_tok_s"] > 0 and 0 <= q["task_accuracy"] <= 1 and q["n_conversations"] == 6
    # int8 changes the loss of a random model by well under 1 % (its logits move by ~0.5 %)
    assert abs(q["val_loss"] - f32["val_loss"]) < 0.01 * f32["val_loss"]
    # the float32 row's decode-path loss is the training-side loss up to float32 summation order;
    # the int8 row's differs from its float twin's (int8 activations), and again by well under 1 %
    assert abs(f32["decode_val_loss"] - f32["val_loss"]) < 1e-4 * f32["val_loss"]
    assert q["decode_val_loss"] != q["val_loss"]
    assert abs(q["decode_val_loss"] - f32["val_loss"]) < 0.01 * f32["val_loss"]
    assert "decode ppl" in text


def test_decode_path_loss_equals_the_training_side_loss(base):
    """decode_val_loss feeds every position as a decode row (conversations of different lengths
    sharing the cache, groups of 4 so slots are reused); for a float32 model it is val_loss."""
    from scratchgpt.infer.report import decode_val_loss, val_loss
    model_dir, data, tok = base
    model = GPT.load(model_dir)
    ref = val_loss(model, tok, data)
    for bs in (1, 4):
        assert abs(decode_val_loss(model, tok, data, batch_size=bs) - ref) < 1e-5 * ref


@pytest.mark.parametrize("argv,needle", [
    (["--bits", "8", "--group-size", "48"], "multiple of 32"),
    (["--bits", "4", "--embeddings", "--keep-lm-head"], "needs lm_head"),
])
def test_quantize_errors_are_one_line(base, tmp_path, capsys, argv, needle):
    model_dir, _, _ = base
    assert run("quantize", model_dir, *argv, "--out", tmp_path / "x") == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1


def test_quantize_refuses_a_non_empty_out(base, tmp_path, capsys):
    model_dir, _, _ = base
    (tmp_path / "keep.txt").write_text("mine")
    assert run("quantize", model_dir, "--bits", "8", "--out", tmp_path) == 2
    assert "not empty" in capsys.readouterr().err and (tmp_path / "keep.txt").read_text() == "mine"


def test_prune_commands(base, tmp_path, capsys):
    from scratchgpt.infer.prune import sparsity_of
    model_dir, data, _ = base
    assert run("prune", model_dir, "--method", "magnitude", "--sparsity", "0.3", "--scope", "layer",
               "--out", tmp_path / "m", "--no-progress") == 0
    m = GPT.load(tmp_path / "m")
    assert abs(sparsity_of(m) - 0.3) < 1e-3
    assert run("prune", model_dir, "--method", "heads", "--sparsity", "0.5", "--data", data,
               "--out", tmp_path / "h", "--no-progress") == 0
    h = GPT.load(tmp_path / "h")
    assert h.config.n_head == 2 and h.config.head_dim == 16
    assert run("prune", model_dir, "--method", "neurons", "--sparsity", "0.25", "--importance", "weight",
               "--out", tmp_path / "n", "--no-progress") == 0
    assert GPT.load(tmp_path / "n").config.n_inner == 192
    assert "activation importance" in capsys.readouterr().out


def test_prune_recovery_keeps_magnitude_zeros(base, tmp_path, capsys):
    from scratchgpt.infer.prune import sparsity_of
    model_dir, data, _ = base
    assert run("prune", model_dir, "--method", "magnitude", "--sparsity", "0.5", "--recover-steps", "3",
               "--data", data, "--out", tmp_path / "r", "--no-progress") == 0
    r = GPT.load(tmp_path / "r")
    assert sparsity_of(r) == pytest.approx(0.5, abs=1e-6)
    base_m = GPT.load(model_dir)
    # recovery trained: the surviving weights moved
    moved = [np.abs(p.data - q.data).max() for (_, p), (_, q) in zip(r.named_parameters(), base_m.named_parameters())
             if p.data.ndim == 2 and p.data.shape[0] != r.config.vocab_size]
    assert max(moved) > 1e-4
    assert "3 recovery steps" in capsys.readouterr().out


def test_prune_errors(base, tmp_path, capsys):
    model_dir, _, _ = base
    assert run("prune", model_dir, "--method", "heads", "--sparsity", "1.0", "--out", tmp_path / "a") == 2
    assert "sparsity" in capsys.readouterr().err
    assert run("prune", model_dir, "--method", "heads", "--sparsity", "0.5", "--importance", "activation",
               "--out", tmp_path / "b") == 2
    assert "needs --data" in capsys.readouterr().err


transformers = pytest.importorskip("transformers", reason="export is checked against transformers (test extra)")
torch = pytest.importorskip("torch")


def test_export_hf_loads_in_transformers_with_equal_logits_and_ids(base, tmp_path):
    import tokenizers
    model_dir, _, tok = base
    ours = GPT.load(model_dir)
    rng = np.random.default_rng(0)
    for p in ours.parameters():        # every weight non-trivial (biases, LayerNorms), so a slip shows
        p.data += rng.standard_normal(p.data.shape).astype(np.float32) * 0.05
    ours.save(tmp_path / "src")
    tok.save(str(tmp_path / "src" / "tokenizer.json"))
    out = tmp_path / "hf"
    assert run("export", tmp_path / "src", "--format", "hf", "--out", out) == 0
    hf = transformers.GPT2LMHeadModel.from_pretrained(out).eval()
    text = "<|user|>Where is my order SG-123? 你好 😀<|end|><|assistant|>"
    ids = tok.encode(text, allowed_special="all")      # HF's tokenizer.json parses special tokens in text
    assert tokenizers.Tokenizer.from_file(str(out / "tokenizer.json")).encode(text).ids == ids
    assert transformers.AutoTokenizer.from_pretrained(out)(text)["input_ids"] == ids
    idx = np.array([ids])
    with torch.no_grad():
        theirs = hf(torch.from_numpy(idx)).logits.numpy()
    np.testing.assert_allclose(theirs, logits(ours, idx), atol=1e-4, rtol=1e-4)


def test_export_refuses_what_hf_cannot_hold(base, tmp_path, capsys):
    from scratchgpt.infer.prune import prune_heads
    model_dir, _, tok = base
    small, _ = prune_heads(GPT.load(model_dir), 0.5)
    small.save(tmp_path / "pruned")
    tok.save(str(tmp_path / "pruned" / "tokenizer.json"))
    nobias = GPT(GPT.load(model_dir).config.replace(bias=False))
    nobias.save(tmp_path / "nobias")
    tok.save(str(tmp_path / "nobias" / "tokenizer.json"))
    smear = GPT(GPT.load(model_dir).config.replace(smear=True))
    smear.save(tmp_path / "smear")
    tok.save(str(tmp_path / "smear" / "tokenizer.json"))
    assert run("quantize", model_dir, "--bits", "8", "--out", tmp_path / "q", "--no-progress") == 0
    capsys.readouterr()
    for src, needle in (("pruned", "n_head * head_dim"), ("nobias", "bias=False"), ("q", "quantized"),
                        ("smear", "smear")):
        assert run("export", tmp_path / src, "--format", "hf", "--out", tmp_path / f"out_{src}") == 2
        err = capsys.readouterr().err.strip()
        assert needle in err and len(err.splitlines()) == 1
        assert not (tmp_path / f"out_{src}" / "model.safetensors").exists()
