"""Chat template: a conversation -> token ids + the loss mask SFT trains with.

Format. Every message is one turn ``<|role|> content <|end|>``, turns are concatenated with
nothing in between, and ``add_generation_prompt=True`` appends ``<|assistant|>`` so the model
writes the next reply. The role tokens and ``<|end|>`` are special tokens (single ids); the
content is encoded as ordinary text, so a user who types "<|end|>" gets the characters
"<", "|", "end", ... and can never close a turn or impersonate the assistant.

    messages = [{"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Hi!"},
                {"role": "assistant", "content": "Hello."}]

renders to the ids of ``<|system|>Be brief.<|end|><|user|>Hi!<|end|><|assistant|>Hello.<|end|>``
(no separators; spaced out below for alignment: each <|...|> is one id, and "Be brief." etc.
are however many ordinary tokens the tokenizer makes of them) ::

    ids : <|system|> Be brief. <|end|> <|user|> Hi! <|end|> <|assistant|> Hello. <|end|>
    mask:     0        0 .. 0     0       0     0 .. 0   0        0         1 .. 1     1

The loss mask is 1 exactly on the assistant's content tokens and on the ``<|end|>`` that
closes an assistant turn — the model must learn both what to say and when to stop — and 0 on
everything else: the system prompt, the user's words, and every role token (the model never
has to predict ``<|assistant|>``; the serving code writes it). With ``mask[i] == 1`` meaning
"ids[i] is a target", SFT takes inputs ``ids[:-1]`` and targets ``ids[1:]`` masked by ``mask[1:]``.

Rules checked (a ``DataError`` names the message and the problem): a non-empty list of dicts;
``role`` in system/user/assistant; ``content`` a str; a system message only as the first one.
Extra keys (e.g. "name") are ignored.
"""
from __future__ import annotations

from ..errors import ConfigError, DataError
from .special import END, ENDOFTEXT, ROLE_TOKENS


def _special_id(tok, name: str) -> int:
    specials = getattr(tok, "special_tokens", {})
    if name not in specials:
        raise ConfigError(f"tokenizer has no special token {name}; the chat template needs "
                          f"{sorted(ROLE_TOKENS.values()) + [END]} (train it with "
                          "special_tokens=CHAT_SPECIAL_TOKENS)")
    return specials[name]


def check_messages(messages) -> None:
    """Raise DataError naming the first bad message, if any."""
    if not isinstance(messages, (list, tuple)) or not messages:
        raise DataError(f"messages: expected a non-empty list of {{'role', 'content'}} dicts, got {messages!r:.80}")
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict):
            raise DataError(f"messages[{i}]: expected a dict with 'role' and 'content', got {type(msg).__name__}")
        if "role" not in msg or "content" not in msg:
            raise DataError(f"messages[{i}]: needs both 'role' and 'content', got keys {sorted(msg)}")
        role, content = msg["role"], msg["content"]
        if role not in ROLE_TOKENS:
            raise DataError(f"messages[{i}]: role must be one of {sorted(ROLE_TOKENS)}, got {role!r}")
        if not isinstance(content, str):
            raise DataError(f"messages[{i}] ({role}): content must be a str, got {type(content).__name__}")
        if role == "system" and i != 0:
            raise DataError(f"messages[{i}]: a system message may only be the first message")


def render_chat(tok, messages, add_generation_prompt: bool = False) -> tuple[list[int], list[int]]:
    """Render ``messages`` to ``(ids, loss_mask)``, two lists of equal length (see module docstring)."""
    check_messages(messages)
    end_id = _special_id(tok, END)
    role_ids = {role: _special_id(tok, name) for role, name in ROLE_TOKENS.items()}
    ids: list[int] = []
    mask: list[int] = []
    for msg in messages:
        body = tok.encode(msg["content"])  # allowed_special=(): specials in content are plain text
        target = 1 if msg["role"] == "assistant" else 0
        ids.append(role_ids[msg["role"]])
        mask.append(0)
        ids.extend(body)
        mask.extend([target] * len(body))
        ids.append(end_id)
        mask.append(target)
    if add_generation_prompt:
        ids.append(role_ids["assistant"])
        mask.append(0)
    return ids, mask


def stop_token_ids(tok) -> set[int]:
    """Ids that end a generated reply: <|end|>, <|endoftext|> and any role token (a model that
    starts a new turn without closing its own has finished its reply too)."""
    names = [END, ENDOFTEXT, *ROLE_TOKENS.values()]
    return {tok.special_tokens[n] for n in names if n in tok.special_tokens}


def cut_at_stop(tok, ids) -> tuple[list[int], bool]:
    """``(reply_ids, stopped)``: ids before the first stop token, and whether one was found."""
    stops = stop_token_ids(tok)
    ids = [int(i) for i in ids]
    for k, i in enumerate(ids):
        if i in stops:
            return ids[:k], True
    return ids, False


def parse_assistant_reply(tok, ids) -> str:
    """Text of a generated assistant reply: ``ids`` decoded up to the first stop token.

    ``ids`` are the tokens generated after ``<|assistant|>`` (as rendered with
    ``add_generation_prompt=True``); the stop token itself is not part of the reply.
    """
    reply, _ = cut_at_stop(tok, ids)
    return tok.decode(reply)
