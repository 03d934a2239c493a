"""Shared pieces of the server tests: a tiny chat model that memorized one reply, and a live
uvicorn server on a free loopback port in a background thread (stops by itself on exit)."""
from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np

# What the tiny model learns to answer to "hi": Chinese and an emoji (several byte-level tokens
# per character, so the stream must hold back partial UTF-8) and a multi-token stop candidate.
REPLY = "Hello 你好 🙂! Your order ships tomorrow. END OF STORY and more."
TRAIN_TEXT = ["Hello there, how can I help you today? The order ships tomorrow."] * 5


def train_tiny_chat_model(out_dir, steps: int = 80) -> Path:
    """A 1-layer GPT over-fitted on one conversation, saved like `scratchgpt sft` saves models."""
    from scratchgpt.models import GPT, GPTConfig
    from scratchgpt.optim import AdamW
    from scratchgpt.tokenizer import BPETokenizer
    from scratchgpt.tokenizer.chat_template import render_chat
    from scratchgpt.tokenizer.special import CHAT_SPECIAL_TOKENS
    out_dir = Path(out_dir)
    tok = BPETokenizer.train(TRAIN_TEXT, 300, special_tokens=CHAT_SPECIAL_TOKENS)
    ids, _ = render_chat(tok, [{"role": "user", "content": "hi"}, {"role": "assistant", "content": REPLY}])
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=128, n_layer=1, n_head=2, n_embd=32), seed=0)
    opt = AdamW(model.parameters(), lr=1e-2, weight_decay=0.0)
    x, y = np.array([ids[:-1]]), np.array([ids[1:]])                 # (1, T)
    for _ in range(steps):
        _, loss = model(x, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.save(out_dir)
    tok.save(out_dir / "tokenizer.json")
    return out_dir


def make_app(model_dir, max_batch_size: int = 8, **settings):
    from scratchgpt.infer import Engine, load_for_inference
    from scratchgpt.serve.app import ServeSettings, create_app
    model, tok = load_for_inference(model_dir)
    engine = Engine(model, tok, max_batch_size=max_batch_size)
    settings.setdefault("model_name", "tiny")
    return create_app(engine, tok, ServeSettings(**settings))


@contextlib.contextmanager
def live_server(app):
    """Run ``app`` on 127.0.0.1:<free port>; yields the base URL, shuts the server down after."""
    from scratchgpt.serve.server import background_server
    with background_server(app) as url:
        app.state.test_server = app.state.uvicorn_server   # tests that stop the server themselves use it
        yield url


def error_of(resp) -> dict:
    """The OpenAI-shaped error body, asserting its shape."""
    body = resp.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"message", "type", "param", "code"}, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body["error"]


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve_command(model_dir, *args, cwd, env=None):
    """`python -m scratchgpt serve MODEL_DIR --port P *args` as a real process (stdout+stderr as
    text on ``proc.stdout``); yields (proc, port) and kills it on exit if it still runs."""
    import os
    import subprocess
    import sys
    root = Path(__file__).resolve().parents[1]
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(root), "SCRATCHGPT_API_KEYS": "", **(env or {})}
    proc = subprocess.Popen([sys.executable, "-m", "scratchgpt", "serve", str(model_dir), "--port", str(port), *args],
                            cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        yield proc, port
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def stop_with_ctrl_c(proc) -> str:
    """SIGINT, a clean exit 0 within 30 s; the rest of its output."""
    import signal
    proc.send_signal(signal.SIGINT)
    assert proc.wait(30) == 0
    return proc.stdout.read()
