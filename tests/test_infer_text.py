"""Streaming text (valid UTF-8, no stop-string leaks, concat == non-streamed) and chat prompts."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

from scratchgpt.infer import ContextLengthError, Engine, SamplingParams
from scratchgpt.infer.chat_prompt import build_chat_prompt
from scratchgpt.infer.detok import StreamText
from scratchgpt.tokenizer import BPETokenizer
from scratchgpt.tokenizer.chat_template import render_chat
from scratchgpt.tokenizer.special import CHAT_SPECIAL_TOKENS
from tests.infer_helpers import tiny_gpt

CORPUS = ["Hello there, how can I help you today? Your order 12345 has shipped.",
          "你好！请问有什么可以帮您？您的订单已经发货了。",
          "Great 👍 thanks 🎉 see you 😀 soon"] * 8
TOK = BPETokenizer.train(CORPUS, 256 + 80 + len(CHAT_SPECIAL_TOKENS), special_tokens=CHAT_SPECIAL_TOKENS)

TEXT = st.text(alphabet=st.sampled_from(list("abc XYZ,.!12") + list("你好订单发货") + ["👍", "🎉", "😀", "é"]),
               max_size=40)


def expected_text(full: str, stops) -> str:
    """The text up to the stop string completed first, reading character by character."""
    for end in range(len(full) + 1):
        starts = [end - len(s) for s in stops if end >= len(s) and full[end - len(s):end] == s]
        if starts:
            return full[:min(starts)]
    return full


def _check_stream(ids, stops):
    st_ = StreamText(TOK, stops)
    pieces = [st_.feed(i) for i in ids]
    pieces.append(st_.finish())
    full = TOK.decode(ids)
    want = expected_text(full, stops)
    assert "".join(pieces) == want
    released = ""
    for p in pieces:
        p.encode("utf-8")                          # valid UTF-8 (no lone surrogates)
        released += p
        assert want.startswith(released)           # never more than the final text: no stop prefix leaked
    # a character split across tokens is never shown as U+FFFD unless the final text has one
    assert released.count("\ufffd") == want.count("\ufffd")


@given(text=TEXT, data=st.data())
def test_stream_pieces_on_en_zh_emoji(text, data):
    ids = TOK.encode(text)
    stops = ()
    if text and data.draw(st.booleans()):
        i = data.draw(st.integers(0, len(text) - 1))
        j = data.draw(st.integers(i + 1, min(len(text), i + 4)))
        stops = (text[i:j],)                       # a stop string that does occur
    if data.draw(st.booleans()):
        stops += (data.draw(TEXT.filter(bool)),)   # one that may or may not
    _check_stream(ids, stops)


def test_stream_holds_back_split_characters_and_stop_prefixes():
    # byte-level tokens of one emoji: nothing is released until the 4th byte
    emoji = "😀".encode("utf-8")
    ids = [TOK.byte_to_id[b] for b in emoji]
    st_ = StreamText(TOK)
    assert [st_.feed(i) for i in ids] == ["", "", "", "😀"]
    # "ab" could start the stop string "abc": held back, then released when it cannot
    st_ = StreamText(TOK, ("abc",))
    assert st_.feed(TOK.byte_to_id[ord("x")]) == "x"
    assert st_.feed(TOK.byte_to_id[ord("a")]) == ""
    assert st_.feed(TOK.byte_to_id[ord("b")]) == ""
    assert st_.feed(TOK.byte_to_id[ord("d")]) == "abd"
    assert st_.feed(TOK.byte_to_id[ord("a")]) == ""
    assert st_.feed(TOK.byte_to_id[ord("b")]) == ""
    assert st_.feed(TOK.byte_to_id[ord("c")]) == "" and st_.stopped
    assert st_.finish() == ""


@pytest.mark.parametrize("stop", [(), ("e",), ("好", "xyz")])
def test_engine_stream_concat_equals_generate(stop):
    model = tiny_gpt(seed=1, vocab=TOK.vocab_size, block=40, n_embd=16, scale=4.0)
    eng = Engine(model, TOK, max_batch_size=2)
    prompt = TOK.encode("你好 order")
    for seed in range(4):
        p = SamplingParams(max_new_tokens=30, temperature=1.0, seed=seed, stop=stop)
        pieces = list(eng.stream(prompt, p))
        c = eng.generate(prompt, p)
        assert "".join(pieces) == c.text
        full = TOK.decode(c.token_ids)
        if c.finish_reason == "stop" and stop and any(s in full for s in stop):
            assert c.text == expected_text(full, stop)
        else:
            assert c.text == full
        assert eng.num_free_slots == 2


# ----------------------------------------------------------------------------- chat prompts
CHAT = [{"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi! 你好"}, {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": "Where is order 12345?"}, {"role": "assistant", "content": "It has shipped."},
        {"role": "user", "content": "Thanks 👍"}]


def test_chat_prompt_fits_without_dropping():
    ids, dropped = build_chat_prompt(TOK, CHAT, 10_000)
    assert dropped == 0 and ids == render_chat(TOK, CHAT, add_generation_prompt=True)[0]


def test_chat_prompt_drops_oldest_whole_turns_keeps_system():
    full = len(render_chat(TOK, CHAT, add_generation_prompt=True)[0])
    one_turn = len(render_chat(TOK, CHAT[1:3])[0])
    ids, dropped = build_chat_prompt(TOK, CHAT, full - 1)
    assert dropped == 1
    assert ids == render_chat(TOK, [CHAT[0]] + CHAT[3:], add_generation_prompt=True)[0]
    assert len(ids) == full - one_turn
    # only the system prompt and the last user turn left
    last = render_chat(TOK, [CHAT[0], CHAT[-1]], add_generation_prompt=True)[0]
    ids, dropped = build_chat_prompt(TOK, CHAT, len(last))
    assert dropped == 2 and ids == last
    with pytest.raises(ContextLengthError):
        build_chat_prompt(TOK, CHAT, len(last) - 1)
