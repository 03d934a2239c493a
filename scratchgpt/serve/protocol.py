"""Request bodies -> validated dataclasses, with OpenAI-shaped 400s naming the bad field.

Bodies are parsed by hand (not pydantic) so that every problem — bytes that are not UTF-8,
malformed JSON, NaN, a string where a number belongs, a missing or unknown field, an empty
``messages`` list, an unknown role, a number out of range, too many stop strings — becomes a
400 ``invalid_request_error`` with ``param`` set, never FastAPI's 422 and never a 500.
Ranges follow OpenAI's API reference; the few extensions vLLM also accepts (top_k, min_p,
repetition_penalty, ignore_eos) are allowed. Fields OpenAI knows but this server cannot honour (n > 1,
logprobs, tools, echo ...) are refused with a message that says so rather than ignored.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

from .errors import invalid

MAX_STOP = 4                 # OpenAI's limit on stop sequences
MAX_STOP_CHARS = 256
ROLES = ("system", "developer", "user", "assistant")   # "developer" is OpenAI's newer name for system


@dataclass
class Sampling:
    max_tokens: int | None = None        # None: whatever the context leaves
    temperature: float = 1.0
    top_p: float | None = None
    top_k: int | None = None
    min_p: float | None = None
    repetition_penalty: float = 1.0
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    ignore_eos: bool = False             # vLLM's extension: generate exactly max_tokens (benchmarks)


@dataclass
class ChatRequest:
    model: str
    messages: list[dict]                 # [{"role": "system"|"user"|"assistant", "content": str}]
    sampling: Sampling = field(default_factory=Sampling)
    stream: bool = False
    include_usage: bool = False


@dataclass
class CompletionRequest:
    model: str
    prompt: str | list[int]
    sampling: Sampling = field(default_factory=Sampling)
    stream: bool = False
    include_usage: bool = False


def _reject_constant(name):
    raise ValueError(f"{name} is not valid JSON")


def parse_json_body(raw: bytes) -> dict:
    """bytes -> the JSON object, or a 400 that says which of UTF-8 / JSON / shape is wrong."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise invalid(f"request body is not valid UTF-8 (byte {e.start})") from None
    if not text.strip():
        raise invalid("request body is empty; expected a JSON object")
    try:
        body = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as e:
        raise invalid(f"request body is not valid JSON: {e}") from None
    if not isinstance(body, dict):
        raise invalid(f"request body must be a JSON object, got {type(body).__name__}")
    return body


class _Fields:
    """Takes fields out of a body one by one; whatever is left at the end is unknown."""

    def __init__(self, body: dict):
        self.body = dict(body)

    def take(self, name, default=None):
        value = self.body.pop(name, None)
        return default if value is None else value

    def string(self, name, required=False, default=None):
        v = self.take(name)
        if v is None:
            if required:
                raise invalid(f"'{name}' is a required property", param=name)
            return default
        if not isinstance(v, str):
            raise invalid(f"'{name}' must be a string, got {_kind(v)}", param=name)
        return v

    def boolean(self, name, default=False):
        v = self.take(name)
        if v is None:
            return default
        if not isinstance(v, bool):
            raise invalid(f"'{name}' must be a boolean, got {_kind(v)}", param=name)
        return v

    def number(self, name, lo, hi, default=None, lo_open=False):
        v = self.take(name)
        if v is None:
            return default
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise invalid(f"'{name}' must be a number, got {_kind(v)}", param=name)
        v = float(v)
        if not math.isfinite(v) or v < lo or v > hi or (lo_open and v == lo):
            low = f"> {lo}" if lo_open else f">= {lo}"
            raise invalid(f"'{name}' must be {low} and <= {hi}, got {v!r}", param=name)
        return v

    def integer(self, name, lo, hi, default=None):
        v = self.take(name)
        if v is None:
            return default
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        if isinstance(v, bool) or not isinstance(v, int):
            raise invalid(f"'{name}' must be an integer, got {_kind(v)}", param=name)
        if v < lo or v > hi:
            raise invalid(f"'{name}' must be between {lo} and {hi}, got {v}", param=name)
        return v

    def only(self, name, allowed, why):
        """A field OpenAI knows but we support only at its default value(s)."""
        v = self.take(name)
        if v is not None and v not in allowed:
            raise invalid(f"'{name}'={json.dumps(v)[:40]} is not supported: {why}", param=name)

    def finish(self):
        if self.body:
            name = sorted(self.body)[0]
            raise invalid(f"Unrecognized request argument supplied: {name}", param=name)


def _kind(v) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", int: "integer",
            float: "number", type(None): "null"}.get(type(v), type(v).__name__)


def _sampling(f: _Fields, default_max_tokens=None) -> Sampling:
    s = Sampling()
    mct = f.integer("max_completion_tokens", 1, 2**31 - 1)
    mt = f.integer("max_tokens", 1, 2**31 - 1)
    s.max_tokens = mct if mct is not None else (mt if mt is not None else default_max_tokens)
    s.temperature = f.number("temperature", 0.0, 2.0, default=1.0)
    top_p = f.number("top_p", 0.0, 1.0)
    if top_p == 0.0:                       # OpenAI accepts 0: only the most likely token survives
        s.temperature, top_p = 0.0, None
    s.top_p = None if top_p == 1.0 else top_p
    s.top_k = f.integer("top_k", -1, 2**31 - 1)
    if s.top_k is not None and s.top_k <= 0:   # vLLM's convention: -1 or 0 means off
        s.top_k = None
    s.min_p = f.number("min_p", 0.0, 1.0)
    s.repetition_penalty = f.number("repetition_penalty", 0.0, 10.0, default=1.0, lo_open=True)
    s.frequency_penalty = f.number("frequency_penalty", -2.0, 2.0, default=0.0)
    s.presence_penalty = f.number("presence_penalty", -2.0, 2.0, default=0.0)
    s.seed = f.integer("seed", 0, 2**63 - 1)
    s.stop = _stop(f.take("stop"))
    s.ignore_eos = f.boolean("ignore_eos")
    f.integer("n", 1, 1)
    f.take("user")                          # an end-user id for abuse tracking: accepted, unused
    f.only("logit_bias", ({},), "logit_bias is not implemented")
    return s


def _stop(v) -> tuple[str, ...]:
    if v is None:
        return ()
    if isinstance(v, str):
        v = [v]
    if not isinstance(v, list) or not all(isinstance(s, str) for s in v):
        raise invalid("'stop' must be a string or an array of strings", param="stop")
    if len(v) > MAX_STOP:
        raise invalid(f"'stop' may hold at most {MAX_STOP} sequences, got {len(v)}", param="stop")
    for s in v:
        if not s:
            raise invalid("'stop' sequences must not be empty", param="stop")
        if len(s) > MAX_STOP_CHARS:
            raise invalid(f"'stop' sequences must be at most {MAX_STOP_CHARS} characters, got {len(s)}",
                          param="stop")
    return tuple(dict.fromkeys(v))


def _stream(f: _Fields) -> tuple[bool, bool]:
    stream = f.boolean("stream")
    opts = f.take("stream_options")
    include_usage = False
    if opts is not None:
        if not stream:
            raise invalid("'stream_options' is only allowed when 'stream' is true", param="stream_options")
        if not isinstance(opts, dict):
            raise invalid(f"'stream_options' must be an object, got {_kind(opts)}", param="stream_options")
        sub = _Fields(opts)
        include_usage = sub.boolean("include_usage")
        sub.take("continuous_usage_stats")
        if sub.body:
            raise invalid(f"Unrecognized stream_options field: {sorted(sub.body)[0]}", param="stream_options")
    return stream, include_usage


def _content(v, where: str) -> str:
    if isinstance(v, str):
        return v
    if isinstance(v, list):                 # [{"type": "text", "text": "..."}, ...]
        parts = []
        for j, part in enumerate(v):
            if not (isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str)):
                raise invalid(f"{where}.content[{j}]: only text parts are supported", param=f"{where}.content")
            parts.append(part["text"])
        return "".join(parts)
    raise invalid(f"{where}.content must be a string or an array of text parts, got {_kind(v)}",
                  param=f"{where}.content")


def _messages(v) -> list[dict]:
    if v is None:
        raise invalid("'messages' is a required property", param="messages")
    if not isinstance(v, list):
        raise invalid(f"'messages' must be an array, got {_kind(v)}", param="messages")
    if not v:
        raise invalid("'messages' must not be empty", param="messages")
    out = []
    for i, m in enumerate(v):
        where = f"messages[{i}]"
        if not isinstance(m, dict):
            raise invalid(f"{where} must be an object, got {_kind(m)}", param=where)
        role = m.get("role")
        if role is None:
            raise invalid(f"{where}.role is required", param=f"{where}.role")
        if role not in ROLES:
            raise invalid(f"{where}.role must be one of {list(ROLES)}, got {json.dumps(role)[:40]}",
                          param=f"{where}.role")
        if "content" not in m or m["content"] is None:
            raise invalid(f"{where}.content is required", param=f"{where}.content")
        extra = sorted(set(m) - {"role", "content", "name"})
        if extra:
            raise invalid(f"{where}: unsupported field {extra[0]!r}", param=f"{where}.{extra[0]}")
        role = "system" if role == "developer" else role
        if role == "system" and i != 0:
            raise invalid(f"{where}: a system message may only be the first message", param=f"{where}.role")
        out.append({"role": role, "content": _content(m["content"], where)})
    return out


def parse_chat(body: dict) -> ChatRequest:
    f = _Fields(body)
    model = f.string("model", required=True)
    messages = _messages(f.take("messages"))
    sampling = _sampling(f)
    stream, include_usage = _stream(f)
    f.only("logprobs", (False,), "log-probabilities are not returned")
    f.only("top_logprobs", (0,), "log-probabilities are not returned")
    f.only("response_format", ({"type": "text"},), "only plain text output")
    f.only("tools", ([],), "tool calls are not supported")
    f.only("tool_choice", ("none",), "tool calls are not supported")
    f.only("parallel_tool_calls", (False, True), "")
    f.take("service_tier")
    f.take("store")
    f.take("metadata")
    f.finish()
    return ChatRequest(model, messages, sampling, stream, include_usage)


def parse_completion(body: dict) -> CompletionRequest:
    f = _Fields(body)
    model = f.string("model", required=True)
    prompt = f.take("prompt")
    if prompt is None:
        raise invalid("'prompt' is a required property", param="prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], (str, list)):
        prompt = prompt[0]                  # a batch of one
    if isinstance(prompt, list):
        if not prompt or not all(isinstance(t, int) and not isinstance(t, bool) for t in prompt):
            raise invalid("'prompt' must be a string, an array of token ids, or an array holding one of "
                          "those (batches of several prompts are not supported)", param="prompt")
    elif not isinstance(prompt, str):
        raise invalid(f"'prompt' must be a string or an array of token ids, got {_kind(prompt)}", param="prompt")
    sampling = _sampling(f, default_max_tokens=16)     # OpenAI's default for /v1/completions
    stream, include_usage = _stream(f)
    f.only("echo", (False,), "echo is not supported")
    f.only("suffix", ("",), "suffix (insertion) is not supported")
    f.only("logprobs", (0,), "log-probabilities are not returned")
    f.only("best_of", (1,), "best_of must be 1")
    f.finish()
    return CompletionRequest(model, prompt, sampling, stream, include_usage)
