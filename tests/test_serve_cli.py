"""`scratchgpt serve` as a command, the optional extra, a GPT-2-format checkpoint, chapter 6."""
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from serve_support import serve_command, stop_with_ctrl_c, train_tiny_chat_model

ROOT = Path(__file__).resolve().parents[1]


def test_importing_scratchgpt_does_not_need_the_serve_extra():
    code = ("import sys, scratchgpt, scratchgpt.cli; scratchgpt.cli.build_parser(); "
            "print(sorted(m for m in ('fastapi', 'uvicorn', 'prometheus_client', 'starlette') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_missing_extra_is_one_line_naming_it(tmp_path, monkeypatch, capsys):
    from scratchgpt.cli import main
    monkeypatch.setitem(sys.modules, "prometheus_client", None)     # "not installed"
    assert main(["serve", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "'serve' extra" in err and "prometheus-client" in err and "pip install 'scratchgpt[serve]'" in err


@pytest.mark.parametrize("argv,needle", [
    (["serve", "/no/such/dir"], "is not a directory"),
    (["serve", ".", "--max_batch_size", "0"], "--max-batch-size must be >= 1"),
    (["serve", ".", "--port", "70000"], "--port must be <= 65535"),
    (["serve", ".", "--threads", "many"], "--threads expects a positive integer"),
])
def test_bad_arguments_exit_2_with_one_line(argv, needle, capsys):
    pytest.importorskip("fastapi")
    from scratchgpt.cli import main
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err, err


def test_serve_command_localhost_without_key_and_clean_ctrl_c(tmp_path):
    """The real command in its own process: asked for 0.0.0.0 without a key it binds 127.0.0.1
    and says so; it answers; Ctrl+C (SIGINT) shuts it down cleanly with exit code 0."""
    httpx = pytest.importorskip("httpx")
    model = train_tiny_chat_model(tmp_path / "m", steps=2)
    with serve_command(model, "--host", "0.0.0.0", "--model-name", "tiny", cwd=tmp_path) as (proc, port):
        first = proc.stdout.readline()
        assert "no API key configured: listening on 127.0.0.1 only, not 0.0.0.0" in first, first
        assert "warmed up" in proc.stdout.readline()
        assert "serving" in proc.stdout.readline()
        deadline = time.monotonic() + 60
        while True:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).json()
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline and proc.poll() is None, "server did not come up"
                time.sleep(0.1)
        assert health["model"] == "tiny" and health["auth_required"] is False
        r = httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", timeout=30,
                       json={"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3})
        assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] <= 3
        assert "server stopped cleanly (2 HTTP requests answered)" in stop_with_ctrl_c(proc)


def test_gpt2_format_checkpoint_is_served(tmp_path):
    """A directory as Hugging Face writes a GPT-2 (no scratchgpt keys in config.json, a tokenizer
    without chat tokens) loads through GPT.from_pretrained, and the server's greedy completion is
    the same text transformers' own GPT-2 generates from that directory."""
    pytest.importorskip("fastapi")
    httpx = pytest.importorskip("httpx")
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from scratchgpt.tokenizer import BPETokenizer
    from serve_support import TRAIN_TEXT, live_server, make_app
    tok = BPETokenizer.train(TRAIN_TEXT, 300, special_tokens=["<|endoftext|>"])
    cfg = transformers.GPT2Config(vocab_size=tok.vocab_size, n_positions=64, n_embd=32, n_layer=2, n_head=2)
    torch.manual_seed(0)
    transformers.GPT2LMHeadModel(cfg).save_pretrained(tmp_path, safe_serialization=True)
    tok.to_huggingface(tmp_path / "tokenizer.json")
    meta = json.loads((tmp_path / "config.json").read_text())
    assert "scratchgpt_config" not in meta and meta["model_type"] == "gpt2"

    prompt = tok.encode("Hello there, how")
    hf = transformers.GPT2LMHeadModel.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        ref = hf.generate(torch.tensor([prompt]), max_new_tokens=8, do_sample=False,
                          pad_token_id=0)[0, len(prompt):].tolist()
    with live_server(make_app(tmp_path, max_batch_size=2, model_name="gpt2-tiny")) as url:
        r = httpx.post(url + "/v1/completions", timeout=30, json={
            "model": "gpt2-tiny", "prompt": prompt, "max_tokens": 8, "temperature": 0, "ignore_eos": True})
        assert r.status_code == 200, r.text
        assert r.json()["choices"][0]["text"] == tok.decode(ref)
        r = httpx.post(url + "/v1/chat/completions", timeout=30, json={
            "model": "gpt2-tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5})
        assert r.status_code == 200 and r.json()["object"] == "chat.completion"     # plain-text template


def test_chapter6_quick(capsys):
    pytest.importorskip("fastapi")
    from scratchgpt.chapters import ch6
    assert ch6.main(["--quick"]) == 0
    out = capsys.readouterr().out
    for needle in ("§6.1", "§6.2", "§6.3", "§9 Q5", "POST without the API key -> 401",
                   "scratchgpt_generation_tokens_total", "server shut down"):
        assert needle in out, needle
