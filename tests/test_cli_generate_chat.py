"""`scratchgpt generate` and `scratchgpt chat` on a tiny saved model: output, transcript, errors."""
import io
import json

import pytest

from scratchgpt.cli import main
from scratchgpt.infer import Engine, SamplingParams, load_for_inference
from scratchgpt.infer.chat_prompt import build_chat_prompt
from tests.infer_helpers import tiny_gpt
from tests.test_infer_text import TOK


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("model")
    tiny_gpt(seed=3, vocab=TOK.vocab_size, block=64, n_embd=16, scale=4.0).save(d)
    TOK.save(d / "tokenizer.json")
    return d


def test_generate_prints_the_engine_reply(model_dir, capsys):
    assert main(["generate", str(model_dir), "--prompt", "Hello", "--max_new_tokens", "7", "--raw",
                 "--ignore-eos"]) == 0
    out = capsys.readouterr().out
    model, tok = load_for_inference(model_dir)
    want = Engine(model, tok).generate(tok.encode("Hello"), SamplingParams(max_new_tokens=7, ignore_eos=True)).text
    assert out == want + "\n"
    # streamed: the same text
    assert main(["generate", str(model_dir), "--prompt", "Hello", "--max-new-tokens", "7", "--raw",
                 "--ignore-eos", "--stream", "--verbose"]) == 0
    cap = capsys.readouterr()
    assert cap.out == want + "\n" and "decode" in cap.err and "prefill" in cap.err


@pytest.mark.parametrize("argv, msg", [
    (["--prompt", "hi", "--max-new-tokens", "500"], "context window"),
    (["--prompt", "hi", "--temperature", "-1"], "temperature"),
    (["--prompt", ""], "empty"),
])
def test_generate_errors_are_one_line_exit_2(model_dir, capsys, argv, msg):
    assert main(["generate", str(model_dir), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and msg in err


def test_generate_missing_model_dir(tmp_path, capsys):
    assert main(["generate", str(tmp_path / "nope"), "--prompt", "hi"]) == 2
    assert "no such directory" in capsys.readouterr().err


def test_chat_script_via_piped_stdin_writes_the_transcript(model_dir, tmp_path, monkeypatch, capsys):
    out = tmp_path / "t" / "chat.json"
    script = f"hello there\n/system Be brief.\n/reset\n你好 order?\n\nthanks 👍\n/save {out}\n/exit\nnever read\n"
    monkeypatch.setattr("sys.stdin", io.StringIO(script))
    assert main(["chat", str(model_dir), "--temperature", "0", "--max-new-tokens", "12"]) == 0
    cap = capsys.readouterr()
    data = json.loads(out.read_text(encoding="utf-8"))
    # expected: after /reset only the system prompt and the two later turns, replies = greedy engine
    model, tok = load_for_inference(model_dir)
    eng = Engine(model, tok)
    msgs = [{"role": "system", "content": "Be brief."}]
    replies = []
    for user in ("你好 order?", "thanks 👍"):
        msgs.append({"role": "user", "content": user})
        ids, _ = build_chat_prompt(tok, msgs, 64 + 1 - 12)
        r = eng.generate(ids, SamplingParams(max_new_tokens=12)).text.strip()
        msgs.append({"role": "assistant", "content": r})
        replies.append(r)
    assert data["messages"] == msgs
    assert data["model"] == str(model_dir) and data["sampling"]["temperature"] == 0.0
    assert "never read" not in cap.out
    assert "(conversation reset)" in cap.err and "saved 5 messages" in cap.err
    assert cap.out.splitlines()[-2:] == replies


def test_ctrl_c_stops_the_reply_and_keeps_the_conversation():
    import argparse

    from scratchgpt.commands.chat import ChatSession

    class Interrupting:
        block_size = 64
        closed = False

        def stream(self, ids, params):
            try:
                yield "Hel"
                yield "lo"
                raise KeyboardInterrupt
            finally:
                Interrupting.closed = True

    args = argparse.Namespace(system=None, max_new_tokens=None, temperature=0.0, top_k=None, top_p=None,
                              min_p=None, repetition_penalty=1.0, seed=None, stop=[], ignore_eos=False)
    out, err = io.StringIO(), io.StringIO()
    s = ChatSession(Interrupting(), TOK, args, "m", out=out, err=err)
    assert s.reply("hi", tty=False) == "Hello"
    assert Interrupting.closed and out.getvalue() == "Hello [stopped]\n"
    assert s.messages == [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Hello"}]
