"""Continuous batching behind the HTTP API: same greedy text with batching on and off (requests
joining and leaving mid-decode), disconnects free their slot at once, and a load test."""
import asyncio
import json
import time

import pytest

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")

from serve_support import live_server, make_app, train_tiny_chat_model  # noqa: E402

PROMPTS = ["hi", "Where is my order?", "hello there", "你好", "Can I return shoes?", "ok", "refund please",
           "The order ships tomorrow?"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return train_tiny_chat_model(tmp_path_factory.mktemp("tiny_chat"), steps=30)


def slow_down(app, seconds):
    """Make each engine step take at least ``seconds`` (so timing-dependent checks are not races)."""
    engine = app.state.engine_loop.engine
    real = engine.step

    def step():
        time.sleep(seconds)
        return real()
    engine.step = step


def body(prompt, max_tokens, stream=True, **kw):
    return {"model": "tiny", "messages": [{"role": "user", "content": prompt}], "max_tokens": max_tokens,
            "temperature": 0, "stream": stream, **({"stream_options": {"include_usage": True}} if stream else {}),
            **kw}


async def read_stream(client, url, payload, started=None):
    """One streaming request -> (text, finish_reason, usage); asserts the stream is well-formed."""
    async with client.stream("POST", url + "/v1/chat/completions", json=payload) as r:
        assert r.status_code == 200, await r.aread()
        events, buf = [], ""
        async for text in r.aiter_text():
            buf += text
            while "\n\n" in buf:
                event, buf = buf.split("\n\n", 1)
                assert event.startswith("data: "), event
                events.append(event[6:])
                if started is not None and len(events) == 2:
                    started.set()
    assert buf == "" and events[-1] == "[DONE]", events[-3:]
    chunks = [json.loads(e) for e in events[:-1]]
    assert "error" not in chunks[-1], chunks[-1]
    assert len({c["id"] for c in chunks}) == 1 and len({c["created"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"].get("role") == "assistant"
    usage = chunks[-1]["usage"]
    assert chunks[-1]["choices"] == [] and usage is not None
    finish = chunks[-2]["choices"][0]["finish_reason"]
    assert finish in ("stop", "length")
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks[:-2])
    if finish == "length":
        assert usage["completion_tokens"] == payload["max_tokens"]
    return text, finish, usage


async def run_mixed(url):
    """Requests of different lengths; later ones start while earlier ones are mid-decode."""
    async with httpx.AsyncClient(timeout=60) as client:
        tasks = []
        for i, prompt in enumerate(PROMPTS):
            started = asyncio.Event()
            # ignore_eos: every request runs to its own length, so they leave at different steps
            payload = body(prompt, 6 + 5 * i, ignore_eos=True)
            tasks.append(asyncio.create_task(read_stream(client, url, payload, started)))
            if i % 3 == 0:
                await asyncio.wait_for(started.wait(), 30)     # join only once the others are decoding
        return await asyncio.gather(*tasks)


def test_greedy_outputs_identical_with_batching_on_and_off(model_dir):
    results = {}
    for batch in (1, 8):
        app = make_app(model_dir, max_batch_size=batch)
        slow_down(app, 0.002)
        with live_server(app) as url:
            results[batch] = asyncio.run(run_mixed(url))
            steps = app.state.engine_loop.steps
        generated = sum(u["completion_tokens"] for _, _, u in results[batch])
        assert generated == sum(6 + 5 * i for i in range(len(PROMPTS)))
        if batch == 1:
            assert steps >= generated                 # one sequence per step
        else:
            assert steps < generated * 0.6, (steps, generated)   # sequences really shared steps
    assert results[1] == results[8]


def metric(text, name):
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


def wait_until(pred, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.01)
    return False


def test_disconnect_cancels_and_frees_the_slot(model_dir):
    app = make_app(model_dir, max_batch_size=2)
    slow_down(app, 0.02)
    loop = app.state.engine_loop
    with live_server(app) as url:
        running = lambda: metric(httpx.get(url + "/metrics").text, "scratchgpt_requests_running")  # noqa: E731
        # streaming: read a few chunks, hang up
        with httpx.stream("POST", url + "/v1/chat/completions", json=body("hi", 100), timeout=30) as r:
            lines = r.iter_lines()
            for _ in range(4):
                next(lines)
            assert running() == 1
            steps_at_hangup = loop.steps
        assert wait_until(lambda: running() == 0, 5)
        assert loop.steps - steps_at_hangup <= 3             # cancelled within a step or two, not 100
        assert loop.engine.num_free_slots == 2
        # non-streaming: the client gives up waiting
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(url + "/v1/chat/completions", json=body("hi", 100, stream=False), timeout=0.3)
        assert wait_until(lambda: running() == 0, 5)
        assert loop.engine.num_free_slots == 2 and not loop.engine.has_work()
        r = httpx.post(url + "/v1/chat/completions", json=body("hi", 3, stream=False), timeout=30)
        assert r.status_code == 200


def test_graceful_shutdown_finishes_inflight_stream(model_dir):
    app = make_app(model_dir, max_batch_size=2)
    slow_down(app, 0.01)
    with live_server(app) as url:
        server = app.state.test_server
        with httpx.stream("POST", url + "/v1/chat/completions", json=body("hi", 30),
                          timeout=30) as r:
            lines = r.iter_lines()
            next(lines)
            server.should_exit = True                         # Ctrl+C while a reply streams
            rest = [line for line in lines if line]
        assert rest[-1] == "data: [DONE]"
        finish = json.loads(rest[-3][6:])["choices"][0]["finish_reason"]
        assert finish in ("stop", "length")


def test_load_32_concurrent_streaming_clients(model_dir):
    """32 clients x 3 requests each on one server: no errors, every stream complete, and /health
    keeps answering quickly while they run (the model never blocks the event loop)."""
    app = make_app(model_dir, max_batch_size=32, max_queue=64)
    slow_down(app, 0.002)

    async def client_loop(client, url, i):
        return [await read_stream(client, url, body(PROMPTS[(i + k) % len(PROMPTS)], 12 + (i + k) % 9,
                                                    ignore_eos=True)) for k in range(3)]

    async def health_probe(client, url, stop):
        worst = 0.0
        while not stop.is_set():
            t = time.perf_counter()
            r = await client.get(url + "/health")
            assert r.status_code == 200
            worst = max(worst, time.perf_counter() - t)
            await asyncio.sleep(0.05)
        return worst

    async def main(url):
        limits = httpx.Limits(max_connections=40, max_keepalive_connections=40)
        async with httpx.AsyncClient(timeout=120, limits=limits) as client:
            stop = asyncio.Event()
            probe = asyncio.create_task(health_probe(client, url, stop))
            results = await asyncio.gather(*[client_loop(client, url, i) for i in range(32)])
            stop.set()
            return results, await probe

    with live_server(app) as url:
        results, worst_health = asyncio.run(main(url))
        metrics = httpx.get(url + "/metrics").text
    flat = [r for per_client in results for r in per_client]
    assert len(flat) == 96                # read_stream checked each one: well-formed, [DONE], usage
    assert sum(u["completion_tokens"] for _, _, u in flat) == sum(12 + (i + k) % 9 for i in range(32) for k in range(3))
    assert worst_health < 1.0, worst_health
    assert metric(metrics, 'scratchgpt_requests_total{endpoint="/v1/chat/completions",status="200"}') == 96
    assert metric(metrics, "scratchgpt_requests_running") == 0


def test_request_timeout(model_dir):
    """Past --timeout a plain request gets 504; a stream that already started gets an error event
    and [DONE] (its status was sent long ago). Either way the slot is freed."""
    app = make_app(model_dir, max_batch_size=2, request_timeout=0.3)
    slow_down(app, 0.02)
    with live_server(app) as url:
        r = httpx.post(url + "/v1/chat/completions", json=body("hi", 100, stream=False), timeout=30)
        assert r.status_code == 504
        assert r.json()["error"]["code"] == "timeout" and "0.3 s" in r.json()["error"]["message"]
        with httpx.stream("POST", url + "/v1/chat/completions", json=body("hi", 100), timeout=30) as s:
            events = [line[6:] for line in s.iter_lines() if line]
        assert s.status_code == 200 and events[-1] == "[DONE]"
        assert json.loads(events[-2])["error"]["code"] == "timeout"
        engine = app.state.engine_loop.engine
        assert wait_until(lambda: engine.num_free_slots == 2 and not engine.has_work(), 5)


def test_engine_failure_is_an_error_not_a_hang(model_dir):
    app = make_app(model_dir, max_batch_size=2)
    engine = app.state.engine_loop.engine
    real = engine.step
    fail = [True]

    def step():
        if fail[0]:
            fail[0] = False
            raise FloatingPointError("boom")
        return real()
    engine.step = step
    with live_server(app) as url:
        r = httpx.post(url + "/v1/chat/completions", json=body("hi", 5, stream=False), timeout=30)
        assert r.status_code == 500 and "FloatingPointError: boom" in r.json()["error"]["message"]
        assert r.json()["error"]["type"] == "server_error"
        r = httpx.post(url + "/v1/chat/completions", json=body("hi", 5, stream=False), timeout=30)
        assert r.status_code == 200                       # the loop survived


def test_engine_thread_wakes_a_busy_event_loop_once():
    """Outputs delivered while the event loop has not yet drained the last delivery join that
    delivery (one wake-up, not one per step) and still reach each queue in order."""
    from types import SimpleNamespace

    from scratchgpt.serve.engine_loop import EngineLoop, Handle

    loop = asyncio.new_event_loop()
    try:
        wakeups = []
        real = loop.call_soon_threadsafe

        def counting(cb, *args):
            wakeups.append(cb)
            return real(cb, *args)
        loop.call_soon_threadsafe = counting
        el = EngineLoop(SimpleNamespace(max_batch_size=2), max_queue=4)
        a = Handle([1], None, loop, queue=asyncio.Queue(), id="a")
        b = Handle([2], None, loop, queue=asyncio.Queue(), id="b")
        el._deliver_many([(a, 1), (b, 1)])          # step 1
        el._deliver_many([(a, 2), (b, 2)])          # step 2, before the loop ran
        el._deliver(a, 3)
        assert len(wakeups) == 1
        loop.run_until_complete(asyncio.sleep(0))   # the loop drains its mailbox
        assert [a.queue.get_nowait() for _ in range(3)] == [1, 2, 3]
        assert [b.queue.get_nowait() for _ in range(2)] == [1, 2]
        el._deliver_many([(b, 3)])                   # drained: the next delivery wakes it again
        assert len(wakeups) == 2
        loop.run_until_complete(asyncio.sleep(0))
        assert b.queue.get_nowait() == 3
    finally:
        loop.close()
