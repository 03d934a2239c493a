"""OpenAI's response objects and the server-sent-event framing its clients parse.

A streamed chat completion is, byte for byte in shape (one event per ``data:`` line + blank line):

    data: {"id":"chatcmpl-…","object":"chat.completion.chunk","created":…,"model":…,
           "choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}
    data: {… "choices":[{"index":0,"delta":{"content":"Hel"},"finish_reason":null}]}
    data: {… "choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}
    data: {… "choices":[],"usage":{"prompt_tokens":…,"completion_tokens":…,"total_tokens":…}}   # if asked
    data: [DONE]

Same ``id`` and ``created`` on every chunk. An error after the stream started cannot change the
HTTP status any more, so it is sent as ``data: {"error": {…}}`` followed by ``[DONE]``.
"""
from __future__ import annotations

import json


def event(obj) -> bytes:
    return b"data: " + json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n\n"


DONE = b"data: [DONE]\n\n"
_MARK = "\x00text\x00"                                # stands for the text; cannot occur in an id
_MARK_JSON = json.dumps(_MARK)                          # how it appears inside the encoded chunk


def usage(prompt_tokens: int, completion_tokens: int) -> dict:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


class ChunkMaker:
    """Builds the objects of one response; ``chat`` picks chat.completion vs text_completion."""

    def __init__(self, rid: str, created: int, model: str, chat: bool, include_usage: bool = False):
        self.rid, self.created, self.model, self.chat = rid, created, model, chat
        self.include_usage = include_usage
        self._around = None

    def _base(self, obj: str) -> dict:
        return {"id": self.rid, "object": obj, "created": self.created, "model": self.model,
                "system_fingerprint": None}

    def chunk(self, text: str | None = None, finish_reason: str | None = None, role: bool = False) -> dict:
        if self.chat:
            delta = {}
            if role:
                delta["role"] = "assistant"
            if text is not None:
                delta["content"] = text
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            out = self._base("chat.completion.chunk")
        else:
            choice = {"index": 0, "text": text or "", "logprobs": None, "finish_reason": finish_reason}
            out = self._base("text_completion")
        out["choices"] = [choice]
        if self.include_usage:
            out["usage"] = None
        return out

    def content_event(self, text: str) -> bytes:
        """``event(self.chunk(text))`` without building and encoding the whole dict per token: the
        part around the text is encoded once per response (32 streams x every token adds up)."""
        if self._around is None:
            encoded = event(self.chunk(_MARK)).decode("utf-8")
            head, tail = encoded.split(_MARK_JSON)
            self._around = (head.encode("utf-8"), tail.encode("utf-8"))
        head, tail = self._around
        return head + json.dumps(text, ensure_ascii=False).encode("utf-8") + tail

    def usage_chunk(self, prompt_tokens: int, completion_tokens: int) -> dict:
        out = self._base("chat.completion.chunk" if self.chat else "text_completion")
        out["choices"] = []
        out["usage"] = usage(prompt_tokens, completion_tokens)
        return out

    def full(self, text: str, finish_reason: str, prompt_tokens: int, completion_tokens: int) -> dict:
        if self.chat:
            out = self._base("chat.completion")
            out["choices"] = [{"index": 0, "message": {"role": "assistant", "content": text, "refusal": None},
                               "logprobs": None, "finish_reason": finish_reason}]
        else:
            out = self._base("text_completion")
            out["choices"] = [{"index": 0, "text": text, "logprobs": None, "finish_reason": finish_reason}]
        out["usage"] = usage(prompt_tokens, completion_tokens)
        return out
