"""train/evaluate: greedy replies through the engine == the full-recompute reference."""
from scratchgpt.train.evaluate import greedy_replies, greedy_reply, greedy_reply_recompute
from tests.infer_helpers import tiny_gpt
from tests.test_infer_text import TOK


def test_engine_replies_equal_recompute_replies_incl_long_prompts():
    model = tiny_gpt(seed=9, vocab=TOK.vocab_size, block=32, n_embd=16, scale=3.0)
    convs = []
    for k, text in enumerate(["hi", "你好！请问", "order 12345 shipped? " * 2, "Great 👍 " * 6, "x " * 40]):
        convs.append([{"role": "user", "content": text}])
        if k == 2:
            convs[-1] = [{"role": "system", "content": "Be brief."}] + convs[-1]
    lens = [len(TOK.encode(c[-1]["content"])) for c in convs]
    assert max(lens) > 32                      # one prompt longer than the context: sliding window path
    want = [greedy_reply_recompute(model, TOK, c, 20) for c in convs]
    assert greedy_replies(model, TOK, convs, 20, batch_size=3) == want
    assert greedy_reply(model, TOK, convs[1], 20) == want[1]


def test_greedy_replies_restore_training_mode():
    model = tiny_gpt(seed=9, vocab=TOK.vocab_size, block=32, n_embd=16)
    model.train()
    greedy_replies(model, TOK, [[{"role": "user", "content": "hi"}]], 3)
    assert model.training
