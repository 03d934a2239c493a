"""The chat page at / in a real headless browser (Debian's chromium driven by Playwright).

Screenshots land in test-artifacts/ (or $SCRATCHGPT_TEST_ARTIFACTS) for a person to look at.
"""
import json
import os
import shutil
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")
sync_api = pytest.importorskip("playwright.sync_api")

from serve_support import REPLY, live_server, make_app, train_tiny_chat_model  # noqa: E402

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run"]
ARTIFACTS = Path(os.environ.get("SCRATCHGPT_TEST_ARTIFACTS", Path(__file__).resolve().parents[1] / "test-artifacts"))

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM),
                                reason="needs Debian's chromium (.ci/run installs it with apt-get)")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return train_tiny_chat_model(tmp_path_factory.mktemp("tiny_chat"))


def assistant_texts(page):
    return page.eval_on_selector_all(".msg.assistant", "els => els.map(e => e.textContent)")


def test_chat_page_streams_stops_and_starts_over(model_dir):
    app = make_app(model_dir, max_batch_size=2)
    engine = app.state.engine_loop.engine
    real_step = engine.step

    def slow_step():                      # ~25 tokens/s: slow enough to watch and to stop
        time.sleep(0.04)
        return real_step()
    engine.step = slow_step
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    bodies = []
    with live_server(app) as url, sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 960, "height": 640})
            page.on("request", lambda req: bodies.append(json.loads(req.post_data))
                    if req.url.endswith("/v1/chat/completions") else None)
            page.goto(url + "/")
            page.wait_for_function("document.getElementById('model-name').textContent.includes('tiny')")
            page.fill("#system", "")          # the tiny model learned its reply without one
            page.eval_on_selector("#temperature", "e => { e.value = '0'; e.dispatchEvent(new Event('input')); }")

            # 1. type a message; tokens stream into the reply bubble; press stop half-way
            page.fill("#input", "hi")
            page.press("#input", "Enter")
            page.wait_for_function("(document.querySelector('.msg.assistant.streaming') || {textContent: ''})"
                                   ".textContent.length >= 2")
            early = assistant_texts(page)[0]
            page.wait_for_function(f"document.querySelector('.msg.assistant.streaming').textContent.length > {len(early)}")
            page.click("#stop")
            page.wait_for_selector(".msg.note >> text=(stopped)")
            stopped = assistant_texts(page)[0]
            assert 0 < len(stopped) < len(REPLY) and REPLY.startswith(stopped), stopped
            assert page.is_visible("#send") and not page.is_visible("#stop")
            deadline = time.monotonic() + 5          # the aborted fetch freed the server's slot
            while httpx.get(url + "/health").json()["running"] and time.monotonic() < deadline:
                time.sleep(0.02)
            assert httpx.get(url + "/health").json()["running"] == 0

            # 2. new chat: the conversation is gone from the page and from what is sent next
            page.click("#new-chat")
            assert page.eval_on_selector_all(".msg", "els => els.length") == 0
            page.fill("#input", "hi")
            page.press("#input", "Enter")
            page.wait_for_selector(".msg.assistant:not(.streaming)", timeout=30000)
            assert assistant_texts(page) == [REPLY]                     # 你好 🙂 intact
            assert [m["role"] for m in bodies[-1]["messages"]] == ["user"]
            assert bodies[-1]["temperature"] == 0 and bodies[-1]["stream"] is True

            # 3. multi-turn: the follow-up carries the whole conversation
            page.fill("#input", "谢谢 thanks")
            page.press("#input", "Enter")
            page.wait_for_function("document.querySelectorAll('.msg.assistant').length == 2"
                                   " && !document.querySelector('.streaming') && !document.getElementById('send').hidden",
                                   timeout=30000)
            roles = [m["role"] for m in bodies[-1]["messages"]]
            assert roles == ["user", "assistant", "user"]
            assert bodies[-1]["messages"][1]["content"] == REPLY
            page.screenshot(path=str(ARTIFACTS / "serve_chat_page.png"))

            # 4. a phone-sized screen: settings fold away, nothing scrolls sideways
            page.set_viewport_size({"width": 380, "height": 720})
            assert not page.is_visible("#settings") and page.is_visible("#toggle-settings")
            assert page.evaluate("document.documentElement.scrollWidth") <= 380
            page.screenshot(path=str(ARTIFACTS / "serve_chat_page_narrow.png"))
        finally:
            browser.close()
    assert (ARTIFACTS / "serve_chat_page.png").stat().st_size > 5000
