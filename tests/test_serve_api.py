"""The HTTP contract around generation: bad input, auth, rate limit, body size, full queue.

Every case asserts the status and OpenAI's error shape ({"error": {message, type, param,
code}}) — 400 for invalid requests, never FastAPI's 422 and never a 500 or a hung connection.
"""
import json
import threading
import time

import pytest

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")

from serve_support import error_of, live_server, make_app, train_tiny_chat_model  # noqa: E402

CHAT = "/v1/chat/completions"
HI = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return train_tiny_chat_model(tmp_path_factory.mktemp("tiny_chat"), steps=5)


@pytest.fixture(scope="module")
def server(model_dir):
    app = make_app(model_dir, max_batch_size=2, max_body_bytes=4096)
    with live_server(app) as url:
        yield url


def chat(**fields):
    return json.dumps({"model": "tiny", "messages": HI, "max_tokens": 2, **fields}).encode()


def raw(obj):
    return json.dumps(obj).encode()


BAD_CHAT = [  # (id, body bytes, status, param expected in error (None: not checked), code)
    ("malformed-json", b'{"model": "tiny", "messages": [', 400, None, None),
    ("not-utf8", b'{"model": "tiny", "messages": [{"role": "user", "content": "\xff\xfe"}]}', 400, None, None),
    ("empty-body", b"", 400, None, None),
    ("array-body", b"[1, 2]", 400, None, None),
    ("nan", b'{"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "temperature": NaN}', 400, None, None),
    ("infinity", b'{"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "top_p": Infinity}', 400, None, None),
    ("missing-model", raw({"messages": HI}), 400, "model", None),
    ("model-not-string", raw({"model": 3, "messages": HI}), 400, "model", None),
    ("missing-messages", raw({"model": "tiny"}), 400, "messages", None),
    ("messages-not-list", raw({"model": "tiny", "messages": "hi"}), 400, "messages", None),
    ("empty-messages", raw({"model": "tiny", "messages": []}), 400, "messages", None),
    ("message-not-object", raw({"model": "tiny", "messages": ["hi"]}), 400, "messages[0]", None),
    ("unknown-role", raw({"model": "tiny", "messages": [{"role": "wizard", "content": "x"}]}), 400,
     "messages[0].role", None),
    ("missing-role", raw({"model": "tiny", "messages": [{"content": "x"}]}), 400, "messages[0].role", None),
    ("missing-content", raw({"model": "tiny", "messages": [{"role": "user"}]}), 400, "messages[0].content", None),
    ("content-wrong-type", raw({"model": "tiny", "messages": [{"role": "user", "content": 5}]}), 400,
     "messages[0].content", None),
    ("image-part", raw({"model": "tiny", "messages": [{"role": "user", "content": [{"type": "image_url"}]}]}),
     400, "messages[0].content", None),
    ("system-not-first", raw({"model": "tiny", "messages": HI + [{"role": "system", "content": "x"}]}), 400,
     "messages[1].role", None),
    ("extra-field", chat(foo=1), 400, "foo", None),
    ("extra-message-field", raw({"model": "tiny", "messages": [{"role": "user", "content": "x", "tool": 1}]}),
     400, "messages[0].tool", None),
    ("temperature-string", chat(temperature="hot"), 400, "temperature", None),
    ("temperature-negative", chat(temperature=-0.5), 400, "temperature", None),
    ("temperature-huge", chat(temperature=1e300), 400, "temperature", None),
    ("top-p-above-1", chat(top_p=1.5), 400, "top_p", None),
    ("max-tokens-negative", chat(max_tokens=-1), 400, "max_tokens", None),
    ("max-tokens-zero", chat(max_tokens=0), 400, "max_tokens", None),
    ("max-tokens-bool", chat(max_tokens=True), 400, "max_tokens", None),
    ("max-tokens-float", chat(max_tokens=2.5), 400, "max_tokens", None),
    ("max-tokens-astronomic", chat(max_tokens=10**30), 400, "max_tokens", None),
    ("seed-negative", chat(seed=-1), 400, "seed", None),
    ("seed-string", chat(seed="7"), 400, "seed", None),
    ("n-2", chat(n=2), 400, "n", None),
    ("stop-too-many", chat(stop=["a", "b", "c", "d", "e"]), 400, "stop", None),
    ("stop-not-strings", chat(stop=[1]), 400, "stop", None),
    ("stop-empty-string", chat(stop=[""]), 400, "stop", None),
    ("stop-too-long", chat(stop=["x" * 300]), 400, "stop", None),
    ("stream-not-bool", chat(stream="yes"), 400, "stream", None),
    ("stream-options-without-stream", chat(stream_options={"include_usage": True}), 400, "stream_options", None),
    ("penalty-out-of-range", chat(presence_penalty=5), 400, "presence_penalty", None),
    ("logprobs", chat(logprobs=True), 400, "logprobs", None),
    ("tools", chat(tools=[{"type": "function"}]), 400, "tools", None),
    ("unknown-model", chat(model="gpt-9"), 404, "model", "model_not_found"),
]


@pytest.mark.parametrize("name,body,status,param,code", BAD_CHAT, ids=[c[0] for c in BAD_CHAT])
def test_bad_chat_requests(server, name, body, status, param, code):
    r = httpx.post(server + CHAT, content=body, headers={"Content-Type": "application/json"}, timeout=10)
    assert r.status_code == status, (name, r.status_code, r.text)
    err = error_of(r)
    assert err["type"] == ("invalid_request_error" if status == 400 else "not_found_error")
    if param is not None:
        assert err["param"] == param, err
    if code is not None:
        assert err["code"] == code, err


def test_context_length_exceeded_names_both_numbers(server):
    r = httpx.post(server + CHAT, content=chat(max_tokens=500), timeout=10)
    err = error_of(r)
    assert r.status_code == 400 and err["code"] == "context_length_exceeded"
    assert "128 tokens" in err["message"] and "500 in the completion" in err["message"], err
    long_msg = [{"role": "user", "content": "order " * 200}]          # the prompt alone overflows
    r = httpx.post(server + CHAT, content=raw({"model": "tiny", "messages": long_msg}), timeout=10)
    err = error_of(r)
    assert r.status_code == 400 and err["code"] == "context_length_exceeded" and "128 tokens" in err["message"]


BAD_COMPLETION = [
    ("missing-prompt", {"model": "tiny"}, "prompt"),
    ("prompt-number", {"model": "tiny", "prompt": 5}, "prompt"),
    ("token-out-of-vocab", {"model": "tiny", "prompt": [1, 2, 10**6]}, "prompt"),
    ("batch-of-two", {"model": "tiny", "prompt": ["a", "b"]}, "prompt"),
    ("echo", {"model": "tiny", "prompt": "a", "echo": True}, "echo"),
    ("best-of", {"model": "tiny", "prompt": "a", "best_of": 3}, "best_of"),
]


@pytest.mark.parametrize("name,body,param", BAD_COMPLETION, ids=[c[0] for c in BAD_COMPLETION])
def test_bad_completion_requests(server, name, body, param):
    r = httpx.post(server + "/v1/completions", json=body, timeout=10)
    assert r.status_code == 400, (name, r.text)
    assert error_of(r)["param"] == param


def test_unknown_url_and_method(server):
    r = httpx.get(server + "/v1/nothing", timeout=10)
    assert r.status_code == 404 and error_of(r)["code"] == "unknown_url"
    r = httpx.get(server + CHAT, timeout=10)
    assert r.status_code == 405 and "not allowed" in error_of(r)["message"]
    r = httpx.get(server + "/v1/models/gpt-9", timeout=10)
    assert r.status_code == 404 and error_of(r)["code"] == "model_not_found"


def test_body_size_limit(server):
    big = chat(user="x" * 5000)
    r = httpx.post(server + CHAT, content=big, timeout=10)
    assert r.status_code == 413 and "4096 bytes" in error_of(r)["message"]

    def chunked():                      # no Content-Length: the limit must hold while reading
        for _ in range(10):
            yield b" " * 1000
    r = httpx.post(server + CHAT, content=chunked(), timeout=10)
    assert r.status_code == 413
    assert httpx.get(server + "/health", timeout=10).status_code == 200    # and the server is fine


def test_auth(model_dir, monkeypatch):
    app = make_app(model_dir, max_batch_size=1, api_keys=["key-one", "key-two"])
    with live_server(app) as url:
        r = httpx.get(url + "/v1/models", timeout=10)
        assert r.status_code == 401 and error_of(r)["type"] == "authentication_error"
        for header in ("Bearer wrong", "Bearer key-one2", "Basic key-one", "Bearer", "key-one"):
            r = httpx.post(url + CHAT, content=chat(), headers={"Authorization": header}, timeout=10)
            assert r.status_code == 401, header
            assert error_of(r)["code"] == "invalid_api_key"
        for key in ("key-one", "key-two"):
            r = httpx.get(url + "/v1/models", headers={"Authorization": f"Bearer {key}"}, timeout=10)
            assert r.status_code == 200 and r.json()["data"][0]["id"] == "tiny"
        r = httpx.post(url + CHAT, content=chat(), headers={"Authorization": "Bearer key-two"}, timeout=30)
        assert r.status_code == 200 and r.json()["object"] == "chat.completion"
        health = httpx.get(url + "/health", timeout=10)              # no key needed
        assert health.status_code == 200 and health.json()["auth_required"] is True
        assert httpx.get(url + "/metrics", timeout=10).status_code == 200
        assert "scratchgpt chat" in httpx.get(url + "/", timeout=10).text


def test_keys_from_flags_and_environment():
    from scratchgpt.serve.access import keys_from
    assert keys_from(["a"], {"SCRATCHGPT_API_KEYS": " b, a ,,c"}) == ["a", "b", "c"]
    assert keys_from([], {}) == []


def test_rate_limit(model_dir):
    app = make_app(model_dir, max_batch_size=1, api_keys=["k1", "k2"], rate_limit=60, rate_burst=2)
    with live_server(app) as url:
        h1 = {"Authorization": "Bearer k1"}
        bad = chat(model="other")                 # answered 404 after the limiter: cheap to send
        assert [httpx.post(url + CHAT, content=bad, headers=h1, timeout=10).status_code
                for _ in range(2)] == [404, 404]
        r = httpx.post(url + CHAT, content=bad, headers=h1, timeout=10)
        assert r.status_code == 429 and error_of(r)["code"] == "rate_limit_exceeded"
        assert int(r.headers["Retry-After"]) >= 1
        r = httpx.post(url + CHAT, content=bad, headers={"Authorization": "Bearer k2"}, timeout=10)
        assert r.status_code == 404               # another key has its own bucket


def test_rate_limiter_refills():
    from scratchgpt.serve.access import RateLimiter
    from scratchgpt.serve.errors import APIError
    now = [0.0]
    lim = RateLimiter(60, burst=1, clock=lambda: now[0])
    lim.acquire("a")
    with pytest.raises(APIError) as e:
        lim.acquire("a")
    assert e.value.status == 429 and e.value.headers["Retry-After"] == "1"
    now[0] = 1.0                                   # one request per second comes back
    lim.acquire("a")


def test_full_queue_answers_503(model_dir):
    app = make_app(model_dir, max_batch_size=1, max_queue=1)
    engine_loop = app.state.engine_loop
    gate = threading.Event()
    real_step = engine_loop.engine.step

    def gated_step():                              # hold the engine so the queue fills up
        gate.wait(20)
        return real_step()
    engine_loop.engine.step = gated_step
    results = {}

    def post(name):
        results[name] = httpx.post(url + CHAT, content=chat(max_tokens=3), timeout=30)

    def wait_for(running, waiting):
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            h = httpx.get(url + "/health", timeout=10).json()
            if (h["running"], h["waiting"]) == (running, waiting):
                return
            time.sleep(0.02)
        raise AssertionError(f"never reached running={running} waiting={waiting}: {h}")

    with live_server(app) as url:
        threads = []
        for name, load in (("first", (1, 0)), ("second", (1, 1))):
            threads.append(threading.Thread(target=post, args=(name,)))
            threads[-1].start()
            wait_for(*load)
        r = httpx.post(url + CHAT, content=chat(), timeout=10)
        assert r.status_code == 503 and error_of(r)["code"] == "server_overloaded"
        gate.set()
        for t in threads:
            t.join(30)
        assert results["first"].status_code == 200 and results["second"].status_code == 200
        wait_for(0, 0)
        metrics = httpx.get(url + "/metrics", timeout=10).text
        assert 'scratchgpt_requests_total{endpoint="/v1/chat/completions",status="503"} 1.0' in metrics


@pytest.mark.parametrize("chat", [True, False])
@pytest.mark.parametrize("usage", [True, False])
def test_fast_content_event_equals_the_reference_encoding(chat, usage):
    from scratchgpt.serve.sse import ChunkMaker, event
    maker = ChunkMaker("chatcmpl-x", 123, 'model "q"', chat, include_usage=usage)
    for text in ["Hello", 'quote " and \\ backslash', "新\n行", "🙂", " ", "\t\u2028"]:
        assert maker.content_event(text) == event(maker.chunk(text))
