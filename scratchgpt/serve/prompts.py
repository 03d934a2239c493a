"""Requests -> prompt token ids.

A tokenizer trained with the chat special tokens (every scratchgpt chat model) renders messages
with the chat template the model was fine-tuned on (``<|system|>…<|end|><|user|>…<|end|>
<|assistant|>``); the engine ends a reply at the tokenizer's end tokens (``<|end|>``,
``<|endoftext|>``) unless the request asks for ``ignore_eos``. A tokenizer without them —
a plain GPT-2 checkpoint — gets a plain-text transcript ("User: …\\nAssistant:") and the stop
string "\\nUser:", which is the best a base model can do; the reply says nothing more clever
than the model is.
"""
from __future__ import annotations

from ..tokenizer.special import END, ROLE_TOKENS
from .errors import invalid

PLAIN_ROLES = {"system": "System", "user": "User", "assistant": "Assistant"}
PLAIN_STOP = ("\nUser:",)


def has_chat_tokens(tok) -> bool:
    specials = getattr(tok, "special_tokens", {}) or {}
    return all(t in specials for t in list(ROLE_TOKENS.values()) + [END])


def chat_prompt(tok, messages) -> tuple[list[int], tuple[str, ...]]:
    """-> (prompt ids, extra stop strings the template needs)."""
    if has_chat_tokens(tok):
        from ..tokenizer.chat_template import render_chat
        ids, _ = render_chat(tok, messages, add_generation_prompt=True)
        return list(ids), ()
    text = "".join(f"{PLAIN_ROLES[m['role']]}: {m['content']}\n" for m in messages) + "Assistant:"
    return list(tok.encode(text)), PLAIN_STOP


def completion_prompt(tok, prompt, vocab_size: int) -> list[int]:
    if isinstance(prompt, str):
        ids = list(tok.encode(prompt))
        if not ids:
            raise invalid("'prompt' encodes to zero tokens; send at least one character", param="prompt")
        return ids
    bad = [t for t in prompt if not 0 <= t < vocab_size]
    if bad:
        raise invalid(f"'prompt' token id {bad[0]} is outside the vocabulary [0, {vocab_size})", param="prompt")
    return list(prompt)
