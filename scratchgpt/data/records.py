"""The two record types every loader produces and every later step consumes.

A ``Conversation`` is a list of role-labelled messages plus labels (topic, language), where it
came from (``source``, e.g. ``"data/x.csv:12"``) and a stable ``id`` that the split hashes. An
augmented copy keeps the id of the conversation it was made from in ``augmented_from`` so the
split can send it to the same side. ``meta`` holds anything else a source carries — for the
bundled customer-service data, the slot values (order number, product ...) that evaluation checks.

A ``Document`` is raw text for pretraining.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import DataError

ROLES = ("system", "user", "assistant")


@dataclass
class Message:
    role: str
    content: str

    def to_dict(self) -> dict:
        return {"role": self.role, "content": self.content}


@dataclass
class Conversation:
    messages: list[Message]
    topic: str | None = None
    language: str | None = None
    source: str = ""
    id: str = ""
    augmented_from: str | None = None
    meta: dict = field(default_factory=dict)

    @property
    def split_key(self) -> str:
        """The id the split hashes: an augmented copy goes wherever its source goes."""
        return self.augmented_from or self.id

    def text(self) -> str:
        """All turns joined by newlines: what dedup, language detection and pretraining see."""
        return "\n".join(m.content for m in self.messages)

    def to_dict(self) -> dict:
        d = {
            "id": self.id,
            "messages": [m.to_dict() for m in self.messages],
            "topic": self.topic,
            "language": self.language,
            "source": self.source,
        }
        if self.augmented_from is not None:
            d["augmented_from"] = self.augmented_from
        if self.meta:
            d["meta"] = self.meta
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Conversation":
        try:
            msgs = [Message(str(m["role"]), str(m["content"])) for m in d["messages"]]
        except (KeyError, TypeError) as e:
            raise DataError(f"conversation record {d.get('id', '?')!r}: expected "
                            f"'messages' as a list of {{role, content}} objects ({e})") from None
        return cls(msgs, topic=d.get("topic"), language=d.get("language"),
                   source=d.get("source", ""), id=str(d.get("id", "")),
                   augmented_from=d.get("augmented_from"), meta=dict(d.get("meta") or {}))


@dataclass
class Document:
    text: str
    source: str = ""
    id: str = ""
    language: str | None = None

    @property
    def split_key(self) -> str:
        return self.id

    def to_dict(self) -> dict:
        return {"id": self.id, "text": self.text, "source": self.source, "language": self.language}

    @classmethod
    def from_dict(cls, d: dict) -> "Document":
        if not isinstance(d.get("text"), str):
            raise DataError(f"document record {d.get('id', '?')!r}: expected a string 'text' field")
        return cls(d["text"], source=d.get("source", ""), id=str(d.get("id", "")),
                   language=d.get("language"))


def record_from_dict(d: dict):
    """A JSONL line written by ``pipeline.prepare`` back into a Conversation or a Document."""
    return Conversation.from_dict(d) if "messages" in d else Document.from_dict(d)
