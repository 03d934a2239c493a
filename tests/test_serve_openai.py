"""The official ``openai`` client against a live server: what real programs will do."""
import json

import pytest

pytest.importorskip("fastapi")
openai = pytest.importorskip("openai")
httpx = pytest.importorskip("httpx")

from serve_support import REPLY, live_server, make_app, train_tiny_chat_model  # noqa: E402

HI = [{"role": "user", "content": "hi"}]
STOP = "END OF STORY"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return train_tiny_chat_model(tmp_path_factory.mktemp("tiny_chat"))


@pytest.fixture(scope="module")
def server(model_dir):
    with live_server(make_app(model_dir, max_batch_size=4)) as url:
        yield url


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server + "/v1", api_key="unused", max_retries=0, timeout=30)


@pytest.fixture(scope="module")
def tok(model_dir):
    from scratchgpt.tokenizer import BPETokenizer
    return BPETokenizer.load(model_dir / "tokenizer.json")


def stream_chat(client, **kw):
    pieces, finish, usage, ids = [], None, None, set()
    for chunk in client.chat.completions.create(model="tiny", messages=HI, stream=True,
                                                stream_options={"include_usage": True}, **kw):
        ids.add(chunk.id)
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            if choice.delta.content:
                pieces.append(choice.delta.content)
            if choice.finish_reason:
                finish = choice.finish_reason
    assert len(ids) == 1
    return pieces, finish, usage


def test_models_list(client):
    assert [m.id for m in client.models.list().data] == ["tiny"]
    assert client.models.retrieve("tiny").id == "tiny"


def test_chat_greedy_reproduces_the_memorized_reply(client):
    r = client.chat.completions.create(model="tiny", messages=HI, temperature=0, max_tokens=60)
    assert r.object == "chat.completion"
    assert r.choices[0].message.role == "assistant"
    assert r.choices[0].message.content == REPLY
    assert r.choices[0].finish_reason == "stop"                   # stopped at <|end|>, not by length
    assert r.usage.completion_tokens > 0 and r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


@pytest.mark.parametrize("settings", [dict(temperature=0), dict(temperature=1.0, top_p=0.9, seed=7)])
def test_streamed_equals_non_streamed(client, settings):
    full = client.chat.completions.create(model="tiny", messages=HI, max_tokens=40, **settings)
    pieces, finish, usage = stream_chat(client, max_tokens=40, **settings)
    assert "".join(pieces) == full.choices[0].message.content
    assert finish == full.choices[0].finish_reason
    assert (usage.prompt_tokens, usage.completion_tokens) == (full.usage.prompt_tokens, full.usage.completion_tokens)
    again = client.chat.completions.create(model="tiny", messages=HI, max_tokens=40, **settings)
    assert again.choices[0].message.content == full.choices[0].message.content      # same seed, same text


def test_chinese_and_emoji_split_across_tokens_never_show_replacement_chars(client, tok):
    # the check means something only if these characters really take several tokens each
    assert len(tok.encode("你")) > 1 and len(tok.encode("🙂")) > 1
    pieces, _, _ = stream_chat(client, temperature=0, max_tokens=60)
    assert "".join(pieces) == REPLY
    assert all("\ufffd" not in p for p in pieces), pieces
    assert len(pieces) > 5                                       # streamed in pieces, not in one go


def test_multi_token_stop_string_is_never_partly_sent(client, tok):
    assert len(tok.encode(STOP)) > 1
    expected = REPLY[:REPLY.index(STOP)]
    pieces, finish, usage = stream_chat(client, temperature=0, max_tokens=60, stop=[STOP])
    assert "".join(pieces) == expected and finish == "stop"      # not even "E" or "END" got out
    full = client.chat.completions.create(model="tiny", messages=HI, temperature=0, max_tokens=60, stop=STOP)
    assert full.choices[0].message.content == expected


def test_length_finish_reason(client):
    r = client.chat.completions.create(model="tiny", messages=HI, temperature=0, max_tokens=3)
    assert r.choices[0].finish_reason == "length" and r.usage.completion_tokens == 3


def test_completions_streamed_and_not(client, tok):
    from scratchgpt.tokenizer.chat_template import render_chat
    prompt_ids, _ = render_chat(tok, HI, add_generation_prompt=True)
    r = client.completions.create(model="tiny", prompt=prompt_ids, temperature=0, max_tokens=60)
    assert r.object == "text_completion" and r.choices[0].text == REPLY
    text = "".join(c.choices[0].text for c in client.completions.create(
        model="tiny", prompt=prompt_ids, temperature=0, max_tokens=60, stream=True) if c.choices)
    assert text == REPLY
    r = client.completions.create(model="tiny", prompt="Hello there", max_tokens=4, temperature=0)
    assert r.usage.prompt_tokens == len(tok.encode("Hello there")) and r.usage.completion_tokens <= 4


def test_stream_wire_format(server):
    """The bytes themselves: one id and created, role first, finish chunk, usage chunk, [DONE] last."""
    body = {"model": "tiny", "messages": HI, "max_tokens": 8, "temperature": 0, "stream": True,
            "stream_options": {"include_usage": True}}
    with httpx.stream("POST", server + "/v1/chat/completions", json=body, timeout=30) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        raw = r.read().decode("utf-8")
    events = raw.split("\n\n")
    assert events[-1] == "" and events[-2] == "data: [DONE]"
    chunks = [json.loads(e[len("data: "):]) for e in events[:-2]]
    assert all(e.startswith("data: ") for e in events[:-1])
    assert {c["id"] for c in chunks} == {chunks[0]["id"]} and {c["created"] for c in chunks} == {chunks[0]["created"]}
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    *content, finish, usage = chunks
    assert finish["choices"][0]["finish_reason"] == "length" and finish["choices"][0]["delta"] == {}
    assert all(c["choices"][0]["finish_reason"] is None for c in content)
    assert usage["choices"] == [] and usage["usage"]["completion_tokens"] == 8
