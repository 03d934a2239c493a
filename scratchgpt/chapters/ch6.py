"""Chapter 6 — 应用场景 (application scenarios): a trained model behind an OpenAI-compatible API.

    python -m scratchgpt.chapters.ch6                           # serves runs/demo/sft/model (after `scratchgpt demo`)
    python -m scratchgpt.chapters.ch6 --model DIR               # any model directory, incl. a GPT-2 checkpoint
    python -m scratchgpt.chapters.ch6 --quick                   # a tiny untrained model, seconds (what tests run)

Guide: chapters/ch6.md. The chapter starts `scratchgpt serve`'s server on a free loopback port
with an API key, then talks to it over real HTTP (urllib from the standard library, streaming
server-sent events) through the tutorial's three scenarios — §6.1 customer service, §6.2
chatbot, §6.3 question answering — and §9 Q5's operations side (health, metrics, access
control), and shuts it down.
"""
from __future__ import annotations

import csv
import json
import re
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from ..commands._flags import chapter_args, chapter_parser, run_chapter

DEFAULT_MODEL = Path("runs/demo/sft/model")
KEY = "ch6-demo-key"
# short on purpose: the demo model's whole context is 128 tokens
WORDS = re.compile(r"[\u4e00-\u9fff]|[a-z0-9#$.\-]+")   # a Chinese character or a Latin word
SYSTEM = "You are the shop's customer-service assistant. Be brief and polite."


class Client:
    """The smallest OpenAI-style client: POST JSON, read `data:` events as they arrive."""

    def __init__(self, base: str, key: str | None):
        self.base, self.key = base, key

    def _request(self, path, body=None):
        headers = {"Content-Type": "application/json"}
        if self.key:
            headers["Authorization"] = f"Bearer {self.key}"
        data = None if body is None else json.dumps(body).encode("utf-8")
        return urllib.request.Request(self.base + path, data=data, headers=headers)

    def get(self, path):
        with urllib.request.urlopen(self._request(path), timeout=60) as r:
            raw = r.read().decode("utf-8")
        return json.loads(raw) if raw.lstrip().startswith("{") else raw

    def status_of(self, path, body=None) -> tuple[int, dict]:
        try:
            with urllib.request.urlopen(self._request(path, body), timeout=60) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    def chat_stream(self, messages, on_piece=None, **settings):
        """-> (reply text, usage dict, seconds to first piece). Raises RuntimeError on an error."""
        body = {"model": self.model, "messages": messages, "stream": True,
                "stream_options": {"include_usage": True}, **settings}
        t0 = time.perf_counter()
        first, pieces, usage = None, [], None
        try:
            r = urllib.request.urlopen(self._request("/v1/chat/completions", body), timeout=120)
        except urllib.error.HTTPError as e:
            err = json.loads(e.read())["error"]
            raise RuntimeError(f"{e.code} {err['code']}: {err['message']}") from None
        with r:
            for line in r:                               # one SSE line at a time, as it arrives
                line = line.decode("utf-8").strip()
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                event = json.loads(line[6:])
                if "error" in event:
                    raise RuntimeError(event["error"]["message"])
                usage = event.get("usage") or usage
                for choice in event["choices"]:
                    piece = choice["delta"].get("content")
                    if piece:
                        first = first or time.perf_counter() - t0
                        pieces.append(piece)
                        if on_piece:
                            on_piece(piece)
        return "".join(pieces), usage, first or 0.0


def quick_model(out: Path) -> Path:
    """A tiny, untrained chat model (tokenizer trained on the bundled dialogues): seconds to make."""
    from ..datasets import customer_service_file
    from ..models import GPT, GPTConfig
    from ..tokenizer import BPETokenizer
    from ..tokenizer.special import CHAT_SPECIAL_TOKENS
    with open(customer_service_file("train"), encoding="utf-8") as f:
        texts = [row["context"] + "\n" + row["reply"] for row in csv.DictReader(f)]
    tok = BPETokenizer.train(texts, 512, special_tokens=CHAT_SPECIAL_TOKENS)
    GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=128, n_layer=1, n_head=2, n_embd=32), seed=0).save(out)
    tok.save(out / "tokenizer.json")
    return out


def say_stream(client, messages, **settings):
    started = []

    def show(piece):                     # "Bot:" only once something arrives (an error prints nothing)
        if not started:
            started.append(print("  Bot:  ", end=""))
        print(piece, end="", flush=True)
    text, usage, ttft = client.chat_stream(messages, on_piece=show, temperature=0, **settings)
    if not started:
        print("  Bot:  (empty reply)", end="")
    print(f"\n        [{usage['prompt_tokens']} prompt + {usage['completion_tokens']} generated tokens, "
          f"first piece after {ttft * 1000:.0f} ms]")
    return text


def scenario_customer_service(client) -> None:
    print("\n== §6.1 智能客服 / customer service ==")
    print(f"  system prompt: {SYSTEM!r}")
    for q in ("Where is my order SG-123456?", "I want a refund for order #40417.", "我的订单 SG-555012 什么时候发货？"):
        print(f"  User: {q}")
        say_stream(client, [{"role": "system", "content": SYSTEM}, {"role": "user", "content": q}])


def scenario_chatbot(client) -> None:
    print("\n== §6.2 聊天机器人 / chatbot: the conversation is carried turn to turn ==")
    history = []
    for q in ("Hi", "Do you have the smart watch available?", "Great, thank you!", "你好"):
        history.append({"role": "user", "content": q})
        print(f"  User: {q}")
        while True:
            try:
                reply = say_stream(client, history, max_tokens=40)
                break
            except RuntimeError as e:      # the context is full: drop the oldest exchange, as the web page does
                if "context_length_exceeded" not in str(e) or len(history) <= 2:
                    raise
                history = history[2:]
                print("        (context full: oldest exchange dropped)")
        history.append({"role": "assistant", "content": reply})


def scenario_qa(client, n: int) -> None:
    from ..datasets import customer_service_file
    print(f"\n== §6.3 问答 / question answering: {n} held-out questions sent at once (one batch) ==")
    with open(customer_service_file("test"), encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r["turn"] == "0" and r["intent"] not in ("greeting", "thanks")]
    rows = rows[:: max(1, len(rows) // n)][:n]
    answers = [None] * len(rows)

    def ask(i, row):
        answers[i] = client.chat_stream([{"role": "user", "content": row["context"]}], temperature=0,
                                        max_tokens=48)[0]
    t0 = time.perf_counter()
    threads = [threading.Thread(target=ask, args=(i, r)) for i, r in enumerate(rows)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    took = time.perf_counter() - t0
    overlap = []
    for row, answer in zip(rows, answers):
        ref, got = set(WORDS.findall(row["reply"].lower())), set(WORDS.findall((answer or "").lower()))
        overlap.append(len(ref & got) / max(1, len(ref)))
        print(f"  Q: {row['context']}\n  A: {answer}\n     (reference: {row['reply']})")
    print(f"  {len(rows)} answers in {took:.1f}s together; reference words (Chinese: characters) found in the answer: "
          f"{sum(overlap) / len(overlap):.0%} on average — a small model trained for minutes on a CPU "
          "gets the shape of an answer right far more often than its facts (order numbers, dates).")


def section_operations(client, base: str) -> None:
    print("\n== §9 Q5 运维 / operations: health, metrics, access control ==")
    health = Client(base, None).get("/health")
    print(f"  GET /health (no key needed): {health}")
    status, body = Client(base, None).status_of("/v1/chat/completions", {"model": client.model, "messages": []})
    print(f"  POST without the API key -> {status} {body['error']['code']}: {body['error']['message']}")
    status, body = Client(base, "wrong").status_of("/v1/chat/completions", {"model": client.model, "messages": []})
    print(f"  POST with a wrong key     -> {status} {body['error']['code']}")
    status, body = client.status_of("/v1/chat/completions", {"model": client.model, "messages": []})
    print(f"  POST with the key but no messages -> {status} {body['error']['type']}: {body['error']['message']}")
    metrics = Client(base, None).get("/metrics")
    wanted = ("scratchgpt_requests_total{", "scratchgpt_generation_tokens_total", "scratchgpt_prompt_tokens_total",
              "scratchgpt_time_to_first_token_seconds_count", "scratchgpt_time_to_first_token_seconds_sum")
    print("  GET /metrics (Prometheus text; excerpt):")
    for line in metrics.splitlines():
        if line.startswith(wanted):
            print("    " + line)


def main(argv=None) -> int:
    ap = chapter_parser("ch6", "Chapter 6: serve a model and run the three application scenarios over HTTP",
                        quick_help="a tiny untrained model made on the spot (seconds; its replies are gibberish)",
                        writes_files=False)
    ap.add_argument("--model", default=None, metavar="MODEL_DIR",
                    help=f"model directory to serve (default {DEFAULT_MODEL}, written by `scratchgpt demo`)")
    args = chapter_args(ap, argv)
    from ..errors import ConfigError
    from ..serve import require_serve_extra
    require_serve_extra()
    from ..serve.app import ServeSettings, create_app
    from ..serve.server import background_server, build_engine, default_model_name, warm_up
    with tempfile.TemporaryDirectory() as tmp:
        if args.quick and not args.model:
            model_dir = quick_model(Path(tmp))
            print("  --quick: serving a tiny UNTRAINED model, so the replies below are gibberish; "
                  "the HTTP side is the real thing.")
        else:
            model_dir = Path(args.model or DEFAULT_MODEL)
            if not (model_dir / "config.json").is_file():
                raise ConfigError(f"no model in {model_dir}: run `scratchgpt demo` first, pass --model DIR, "
                                  "or use --quick")
        name = "ch6-quick" if args.quick and not args.model else default_model_name(model_dir)
        engine, tok = build_engine(model_dir, max_batch_size=8)
        warm_up(engine)                                   # compile the kernels before the first question
        app = create_app(engine, tok, ServeSettings(model_name=name, api_keys=[KEY]))
        shown = "a tiny model in a temporary folder" if args.quick and not args.model else model_dir
        print(f"== serving {shown} as '{name}' (context {engine.block_size} tokens) ==")
        with background_server(app) as base:
            print(f"  started on {base} (web chat page at {base}/ — open it while this runs to try it)")
            client = Client(base, KEY)
            client.model = client.get("/v1/models")["data"][0]["id"]
            scenario_customer_service(client)
            scenario_chatbot(client)
            scenario_qa(client, n=3 if args.quick else 6)
            section_operations(client, base)
        print("\n  server shut down. Same thing from a shell: scratchgpt serve "
              f"{model_dir if not args.quick else 'runs/demo/sft/model'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_chapter(main, "ch6"))
