"""Chat prompts that fit the context window without ever cutting the system prompt.

``build_chat_prompt(tok, messages, max_prompt_tokens) -> (ids, dropped_turns)`` renders
``messages`` with the chat template (tokenizer/chat_template.py) plus the ``<|assistant|>``
generation prompt. When that is longer than ``max_prompt_tokens``, the oldest whole turns go
first — a turn is a user message with the assistant replies that follow it — never the system
prompt and never the last turn; ``dropped_turns`` tells the caller how many went. If the system
prompt and the last turn alone do not fit, ContextLengthError says so (nothing is cut inside a
message: a half message would change its meaning silently).
"""
from __future__ import annotations

from ..tokenizer.chat_template import check_messages, render_chat
from .params import ContextLengthError


def _turns(messages):
    """(system messages, [turn, ...]) where a turn is a list of consecutive messages starting at
    a user message (leading assistant messages form a turn of their own)."""
    system = [m for m in messages[:1] if m["role"] == "system"]
    turns: list[list] = []
    for m in messages[len(system):]:
        if m["role"] == "user" or not turns:
            turns.append([m])
        else:
            turns[-1].append(m)
    return system, turns


def build_chat_prompt(tok, messages, max_prompt_tokens: int):
    """Token ids of the prompt for the next assistant reply, and how many old turns were dropped."""
    check_messages(messages)
    msgs = [{"role": m["role"], "content": m["content"]} for m in messages]
    system, turns = _turns(msgs)
    # the template is a concatenation of per-message pieces, so lengths add up
    sys_len = len(render_chat(tok, system)[0]) if system else 0
    turn_lens = [len(render_chat(tok, t)[0]) for t in turns]
    gen_prompt = 1                                            # the <|assistant|> token
    total = sys_len + sum(turn_lens) + gen_prompt
    dropped = 0
    while total > max_prompt_tokens and dropped < len(turns) - 1:
        total -= turn_lens[dropped]
        dropped += 1
    if total > max_prompt_tokens:
        raise ContextLengthError(total, None, max_prompt_tokens)
    kept = system + [m for t in turns[dropped:] for m in t]
    ids, _ = render_chat(tok, kept, add_generation_prompt=True)
    return ids, dropped
