"""The commands with ``--device cuda`` end to end on the (simulated) GPU, each against the same
command on the CPU: eval, chat (piped stdin), serve (the real command in its own process, one HTTP request), pretrain and sft
(checkpoints written on one device load bit-identically on the other), and the demo on a tiny
setting. Sizes are microscopic: the simulator runs every CUDA thread as a Python thread."""
import io
import json

import numpy as np
import pytest

from cuda_sim import host  # noqa: F401  (skips the module when there is neither GPU nor simulator)
from scratchgpt.cli import main
from tests.infer_helpers import tiny_gpt

SIM = ["--device", "cuda", "--sim"]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """A prepared dialogue directory with a handful of conversations and a 300-token BPE."""
    from scratchgpt.data.pipeline import prepare, preset, read_jsonl, record_text, write_shards
    from scratchgpt.tokenizer import BPETokenizer
    from scratchgpt.tokenizer.special import CHAT_SPECIAL_TOKENS
    d = tmp_path_factory.mktemp("cs")
    prepare(preset("customer_service"), d, progress=False)
    for split, n in (("train", 12), ("val", 2), ("test", 2)):       # the shortest ones: short prompts
        lines = sorted((d / f"{split}.jsonl").read_text(encoding="utf-8").splitlines(), key=len)[:n]
        (d / f"{split}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    tok = BPETokenizer.train([record_text(r) for r in read_jsonl(d / "train.jsonl")], 300,
                             special_tokens=CHAT_SPECIAL_TOKENS)
    tok.save(d / "tokenizer.json")
    write_shards(d, tok)
    return d


@pytest.fixture(scope="module")
def model_dir(data_dir, tmp_path_factory):
    from scratchgpt.tokenizer import load_tokenizer
    tok = load_tokenizer(data_dir / "tokenizer.json")
    d = tmp_path_factory.mktemp("model")
    tiny_gpt(seed=7, vocab=tok.vocab_size, block=48, n_layer=1, n_embd=16, scale=4.0).save(d)
    tok.save(d / "tokenizer.json")
    return d


def _eval(model, data, out, extra=()):
    assert main(["eval", str(model), "--data", str(data), "--limit", "2", "--max-new-tokens", "3",
                 "--no-paraphrase", "--no-progress", "--out", str(out), *extra]) == 0
    return json.loads(out.read_text(encoding="utf-8"))


def _same_eval(gpu: dict, cpu: dict):
    # numbers from the loss within float32 rounding; everything from the greedy replies identical
    assert gpu["val_loss"] == pytest.approx(cpu["val_loss"], rel=1e-5)
    assert gpu["perplexity"] == pytest.approx(cpu["perplexity"], rel=1e-5)
    drop = {"val_loss", "perplexity", "seconds", "timings_s", "setup", "eval_seconds", "loss_seconds",
            "reply_seconds"}
    a = {k: v for k, v in gpu.items() if k not in drop}
    b = {k: v for k, v in cpu.items() if k not in drop}
    assert a == b


def test_eval_on_the_gpu_equals_the_cpu(model_dir, data_dir, tmp_path, capsys):
    cpu = _eval(model_dir, data_dir, tmp_path / "cpu.json")
    gpu = _eval(model_dir, data_dir, tmp_path / "gpu.json", SIM)
    capsys.readouterr()
    assert cpu["n_conversations"] == 2 and cpu["examples_ok"] + cpu["examples_failed"]
    _same_eval(gpu, cpu)


def test_chat_on_the_gpu_prints_the_cpu_replies(model_dir, monkeypatch, capsys):
    outs = []
    for extra in ([], SIM):
        monkeypatch.setattr("sys.stdin", io.StringIO("hello there\nwhere is my order?\n/exit\n"))
        assert main(["chat", str(model_dir), "--temperature", "0", "--max-new-tokens", "4", *extra]) == 0
        outs.append(capsys.readouterr().out)
    assert outs[0].strip() and outs[1] == outs[0]


def _post(url, body):
    import urllib.request
    req = urllib.request.Request(f"{url}/v1/chat/completions", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as r:
        assert r.status == 200
        out = json.loads(r.read())
    return out["choices"][0]["message"]["content"], out["usage"]


def test_serve_command_on_the_gpu_answers_like_the_cpu(model_dir, tmp_path):
    """`scratchgpt serve MODEL --device cuda --sim` as a real process: it warms up on the simulated
    GPU, answers one /v1/chat/completions request exactly as the CPU server does, and stops cleanly
    on Ctrl+C (SIGINT)."""
    import time
    import urllib.error
    pytest.importorskip("fastapi")
    from scratchgpt.serve.app import ServeSettings, create_app
    from scratchgpt.serve.server import background_server, build_engine
    from tests.serve_support import serve_command, stop_with_ctrl_c
    body = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3, "temperature": 0}
    engine, tok = build_engine(model_dir, 1, "cpu")
    with background_server(create_app(engine, tok, ServeSettings(model_name="tiny"))) as url:
        cpu = _post(url, body)
    with serve_command(model_dir, *SIM, "--model-name", "tiny", "--max-batch-size", "1", cwd=tmp_path,
                       env={"NUMBA_ENABLE_CUDASIM": "1"}) as (proc, port):
        lines = [proc.stdout.readline() for _ in range(2)]
        assert "warmed up" in lines[0] and "serving" in lines[1], lines
        deadline = time.monotonic() + 30
        while True:                                  # uvicorn binds the port just after "serving"
            try:
                gpu = _post(f"http://127.0.0.1:{port}", body)
                break
            except urllib.error.URLError as e:
                if not isinstance(e.reason, ConnectionRefusedError) or time.monotonic() > deadline \
                        or proc.poll() is not None:
                    raise
                time.sleep(0.1)
        assert "server stopped cleanly (1 HTTP requests answered)" in stop_with_ctrl_c(proc)
    assert cpu[0] and gpu == cpu


# ----------------------------------------------------------------------------- training commands
TINY = ["--n_layer", "1", "--n_head", "2", "--n_embd", "16", "--block_size", "16", "--seq_len", "16",
        "--batch_size", "2", "--warmup_steps", "1", "--eval_every", "100", "--eval_batches", "1",
        "--log_every", "1", "--dropout", "0", "--no-progress"]


def _train_losses(run) -> dict:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in rows if "loss" in r and "step" in r}


def _assert_trained_alike(wg: dict, wc: dict, lr: float, steps: int):
    """Weights after a few AdamW steps on the two devices, to float32 tolerance — except the key
    bias: its gradient is exactly 0 in exact arithmetic (softmax ignores a shift of all scores),
    so each device gets rounding noise there, and Adam scales any gradient, noise included, to
    steps of about lr (tests/test_cuda_train.py says the same); those entries must stay within
    that bound of each other."""
    assert wg.keys() == wc.keys()
    for name in wc:
        g, c = wg[name].copy(), wc[name].copy()
        if name.endswith("attn.c_attn.bias"):
            C = g.shape[0] // 3
            assert np.abs(g[C:2 * C] - c[C:2 * C]).max() <= 2 * lr * steps, name
            g[C:2 * C] = c[C:2 * C]
        np.testing.assert_allclose(g, c, atol=2e-5, rtol=1e-4, err_msg=name)


def _weights(model_dir) -> dict:
    from safetensors.numpy import load_file
    return load_file(str(model_dir / "model.safetensors"))


def test_pretrain_on_the_gpu_and_checkpoints_across_devices(data_dir, tmp_path, capsys, monkeypatch):
    base = ["pretrain", "--data", str(data_dir), "--tokenizer", str(data_dir / "tokenizer.json"), *TINY]
    runs = {}
    for device, extra in (("cpu", []), ("cuda", SIM)):
        out = tmp_path / device
        assert main(base + ["--out", str(out), "--max_steps", "2", *extra]) == 0
        runs[device] = out
    capsys.readouterr()
    cpu, gpu = _train_losses(runs["cpu"]), _train_losses(runs["cuda"])
    assert sorted(gpu) == sorted(cpu) == [1, 2]
    for step in cpu:
        assert gpu[step] == pytest.approx(cpu[step], rel=1e-5)
    _assert_trained_alike(_weights(runs["cuda"] / "model"), _weights(runs["cpu"] / "model"), 3e-3, 2)
    # the checkpoint written on the GPU resumes on the CPU and vice versa (weights and AdamW
    # moments), each run then training on the device it was asked for
    from scratchgpt.backend import array_device
    from scratchgpt.train.trainer import Trainer
    seen, fit = [], Trainer.fit

    def fit_noting_devices(self, *a, **k):
        seen.append({array_device(p.data) for p in self.model.parameters()}
                    | {array_device(v) for st in self.optimizer.state.values() for v in st.values()
                       if array_device(v) is not None})
        return fit(self, *a, **k)
    monkeypatch.setattr(Trainer, "fit", fit_noting_devices)
    for device, other in (("cpu", SIM), ("cuda", [])):
        assert main(base + ["--out", str(runs[device]), "--max_steps", "3", "--resume", *other]) == 0
    capsys.readouterr()
    assert seen == [{"cuda"}, {"cpu"}]
    c3, g3 = _train_losses(runs["cpu"])[3], _train_losses(runs["cuda"])[3]
    assert g3 == pytest.approx(c3, rel=1e-5)
    # a model written from GPU memory holds the bits the GPU had; loaded on the GPU and saved
    # again, the CPU file's bits come back
    from scratchgpt.models import GPT
    m = GPT.load(runs["cuda"] / "model")
    m.to("cuda")
    m.save(tmp_path / "again")
    again, first = _weights(tmp_path / "again"), _weights(runs["cuda"] / "model")
    assert again.keys() == first.keys() and all(np.array_equal(again[k], first[k]) for k in first)


@pytest.mark.parametrize("peft", ["none", "prefix"])
def test_sft_on_the_gpu_equals_the_cpu(model_dir, data_dir, tmp_path, capsys, peft):
    # a 48-position base; prefix-tuning's key/value slots go through the GPU's fused attention
    base = ["sft", "--data", str(data_dir), "--base", str(model_dir), "--peft", peft, "--prefix_len", "2",
            "--max_steps", "2", *TINY[8:], "--seq_len", "16", "--batch_size", "2"]
    outs = {}
    for device, extra in (("cpu", []), ("cuda", SIM)):
        outs[device] = tmp_path / device
        assert main(base + ["--out", str(outs[device]), *extra]) == 0
    capsys.readouterr()
    cpu, gpu = _train_losses(outs["cpu"]), _train_losses(outs["cuda"])
    assert sorted(gpu) == sorted(cpu) == [1, 2]
    for step in cpu:
        assert gpu[step] == pytest.approx(cpu[step], rel=1e-5)
    sub = "model" if peft == "none" else "peft"
    from safetensors.numpy import load_file
    name = "model.safetensors" if peft == "none" else "peft.safetensors"
    wc, wg = load_file(str(outs["cpu"] / sub / name)), load_file(str(outs["cuda"] / sub / name))
    assert peft == "none" or all("prefix" in k for k in wc)
    _assert_trained_alike(wg, wc, 1e-3, 2)


# ----------------------------------------------------------------------------- the demo
def test_demo_on_the_gpu_equals_the_cpu(tmp_path, monkeypatch, capsys):
    # `scratchgpt demo --quick` with its config shrunk further (the simulator is slow): every
    # stage on each device; the numbers within float32 rounding, the greedy replies identical
    from dataclasses import replace

    from scratchgpt.train import demo
    from scratchgpt.train.config import ModelConfig
    step = replace(demo.QUICK.pretrain, max_steps=1, warmup_steps=1, batch_size=2, seq_len=16, eval_every=100,
                   eval_batches=1, log_every=1)
    tiny = replace(demo.QUICK, vocab_size=300, model=ModelConfig(n_layer=1, n_head=2, n_embd=16, block_size=16),
                   pretrain=step, sft=replace(step, lr=demo.QUICK.sft.lr), slot_copies=0, pretrain_slot_copies=0,
                   copy_drills=0, varied_sft=0, varied_pretrain=0, eval_limit=1, max_new_tokens=2)
    monkeypatch.setattr(demo, "QUICK", tiny)
    prepare = demo.prepare_data

    def few_dialogues(out, progress=True):         # the bundled data, with 3 val and 2 test conversations
        dirs = prepare(out, progress)
        for split, n in (("val", 3), ("test", 2)):
            f = dirs["sft_dir"] / f"{split}.jsonl"
            f.write_text("\n".join(f.read_text(encoding="utf-8").splitlines()[:n]) + "\n", encoding="utf-8")
        return dirs
    monkeypatch.setattr(demo, "prepare_data", few_dialogues)
    from scratchgpt.train import runs
    where, sft = [], runs.sft

    def sft_noting_the_device(*a, **k):            # where the fine-tuned model (then evaluated) lives
        res = sft(*a, **k)
        where.append(res.model.device)
        return res
    monkeypatch.setattr(runs, "sft", sft_noting_the_device)
    ev = {}
    for device, extra in (("cpu", []), ("cuda", SIM)):
        assert main(["demo", "--quick", "--out", str(tmp_path / device), "--no-progress", *extra]) == 0
        ev[device] = json.loads((tmp_path / device / "eval.json").read_text(encoding="utf-8"))
    capsys.readouterr()
    assert where == ["cpu", "cuda"]
    cpu, gpu = ev["cpu"], ev["cuda"]
    assert cpu["config"]["model"]["n_embd"] == 16 and cpu["n_conversations"] == 1
    for key in ("val_loss", "perplexity"):
        assert gpu[key] == pytest.approx(cpu[key], rel=1e-5)
    for stage in ("pretrain", "sft"):
        for key in ("final_loss", "val_loss"):
            assert gpu[stage][key] == pytest.approx(cpu[stage][key], rel=1e-5), (stage, key)
    assert gpu["showcase"] == cpu["showcase"]
    for key in ("task_accuracy", "rouge_l", "bleu", "distinct_1", "distinct_2", "examples_ok", "examples_failed",
                "paraphrase", "paraphrase_blind"):
        assert gpu[key] == cpu[key], key
