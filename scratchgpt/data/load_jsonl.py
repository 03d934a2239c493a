"""JSON Lines: one record per line.

- a conversation in the OpenAI chat format: ``{"messages": [{"role": ..., "content": ...}, ...]}``
  (optional ``id``, ``topic``, ``language``, ``meta``); ShareGPT's
  ``{"conversations": [{"from": "human"|"gpt", "value": ...}]}`` is accepted too;
- or a document: ``{"text": ...}``.

Invalid JSON and wrong shapes are reported with file:line and skipped.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

from .records import Conversation, Document, Message
from .report import Report

ROLE_ALIASES = {"system": "system", "user": "user", "assistant": "assistant", "human": "user",
                "gpt": "assistant", "bot": "assistant", "model": "assistant"}


def _messages(obj):
    """list[Message] or an error string."""
    if "messages" in obj:
        raw, rkey, ckey = obj["messages"], "role", "content"
    else:
        raw, rkey, ckey = obj["conversations"], "from", "value"
    if not isinstance(raw, list):
        return f"'messages' must be a list, got {type(raw).__name__}"
    out = []
    for i, m in enumerate(raw):
        if not isinstance(m, dict) or rkey not in m or ckey not in m:
            return f"message {i} must be an object with {rkey!r} and {ckey!r}"
        role = ROLE_ALIASES.get(str(m[rkey]).strip().lower())
        if role is None:
            return f"message {i} has unknown role {m[rkey]!r} (expected system, user or assistant)"
        content = m[ckey]
        if content is not None and not isinstance(content, str):
            return f"message {i} content must be a string, got {type(content).__name__}"
        out.append(Message(role, content or ""))
    return out


def load_jsonl(path, report: Report) -> Iterator[Conversation | Document]:
    path = Path(path)
    with open(path, encoding="utf-8-sig", errors="replace") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                report.malformed(path, lineno, f"invalid JSON: {e.msg} (column {e.colno})")
                continue
            if not isinstance(obj, dict):
                report.malformed(path, lineno, f"expected a JSON object, got {type(obj).__name__}")
                continue
            rid = str(obj.get("id", f"{path.name}:{lineno}"))
            if "messages" in obj or "conversations" in obj:
                msgs = _messages(obj)
                if isinstance(msgs, str):
                    report.malformed(path, lineno, msgs)
                    continue
                meta = obj.get("meta") if isinstance(obj.get("meta"), dict) else {}
                yield Conversation(msgs, topic=obj.get("topic"), language=obj.get("language"),
                                   source=f"{path}:{lineno}", id=rid,
                                   augmented_from=obj.get("augmented_from"), meta=dict(meta))
            elif isinstance(obj.get("text"), str):
                yield Document(obj["text"], source=f"{path}:{lineno}", id=rid, language=obj.get("language"))
            else:
                report.malformed(path, lineno, "expected a 'messages' list (chat format) or a 'text' string")
