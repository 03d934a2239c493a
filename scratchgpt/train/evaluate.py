"""Evaluation of a trained dialogue model: loss, perplexity, generation quality, task accuracy.

* ``val_loss`` — mean cross-entropy per assistant token (SFT) or per token (pretraining) on held-out
  data; ``perplexity = exp(val_loss)``.
* ROUGE-L, BLEU, distinct-1/2 (``text_metrics.py``) of greedy replies against the reference replies.
* ``task_accuracy`` on the customer-service test split: a conversation counts as solved when the
  greedy reply (a) contains every slot value it must echo and (b) addresses the right topic.
    - The evaluated turn is the first assistant turn whose reference reply repeats a slot value
      (order number, product, ...) that the user gave earlier; conversations with no such turn are
      evaluated on their first assistant turn with nothing to echo.
    - "Must echo" = the slot values that occur both in the user's earlier turns and in the reference
      reply (a value the reference does not repeat is not required).
    - "Right topic" = the keyword topic classifier (``scratchgpt.data.annotate.classify_topic``)
      gives the generated reply the same label as the reference reply. We compare with the
      reference's label rather than the conversation's annotated topic because replies are short:
      an orders reply often says only "shipped", which the classifier files under shipping — for
      the reference as much as for the model, so comparing like with like is the fair test.
  Slot recall and topic match are reported separately too, so a low score says which part failed.
"""
from __future__ import annotations

import math

import numpy as np

from ..autograd import no_grad
from ..errors import DataError
from .text_metrics import corpus_bleu, distinct_n, rouge_l


# ------------------------------------------------------------------ generation
def greedy_reply(model, tok, messages: list[dict], max_new_tokens: int = 48) -> str:
    """The model's greedy assistant reply to ``messages`` (ends at <|end|> or the token limit)."""
    from ..tokenizer.chat_template import render_chat
    ids, _ = render_chat(tok, messages, add_generation_prompt=True)
    end_id = tok.token_to_id("<|end|>")
    stops = {end_id}
    for s in ("<|endoftext|>", "<|user|>", "<|system|>", "<|assistant|>"):
        try:
            stops.add(tok.token_to_id(s))
        except Exception:
            pass
    block = model.config.block_size
    out: list[int] = []
    was_training = model.training
    model.eval()
    wte = model.transformer.wte.weight.data
    try:
        with no_grad():
            ctx = list(ids)
            for _ in range(max_new_tokens):
                cond = np.asarray([ctx[-block:]], dtype=np.int64)       # (1, T)
                h = model.hidden_states(cond).data[0, -1]                # (C,)
                logits = h @ wte.T                                       # (V,)
                nxt = int(np.argmax(logits))
                if nxt in stops:
                    break
                out.append(nxt)
                ctx.append(nxt)
    finally:
        model.train(was_training)
    return tok.decode(out).strip()


# ------------------------------------------------------------------ task accuracy
def _messages(conv) -> list[dict]:
    msgs = conv["messages"] if isinstance(conv, dict) else [m.to_dict() for m in conv.messages]
    return [{"role": m["role"], "content": m["content"]} for m in msgs]


def _slots(conv) -> dict:
    meta = conv.get("meta", {}) if isinstance(conv, dict) else conv.meta
    return dict((meta or {}).get("slots") or {})


def eval_turn(conv) -> tuple[list[dict], str, list[str]]:
    """(prompt messages, reference reply, slot values the reply must echo) for one conversation."""
    msgs = _messages(conv)
    slots = [str(v) for v in _slots(conv).values() if str(v)]
    first = None
    for i, m in enumerate(msgs):
        if m["role"] != "assistant":
            continue
        if first is None:
            first = i
        user_text = " ".join(x["content"] for x in msgs[:i] if x["role"] == "user")
        need = [v for v in slots if v in user_text and v in m["content"]]
        if need:
            return msgs[:i], m["content"], need
    if first is None:
        raise DataError(f"conversation {getattr(conv, 'id', '?')!r} has no assistant turn to evaluate")
    return msgs[:first], msgs[first]["content"], []


def task_scores(reply: str, reference: str, required: list[str]) -> dict:
    from ..data.annotate import classify_topic
    slot_ok = all(v in reply for v in required)
    topic_ok = classify_topic(reply) == classify_topic(reference)
    return {"slot_ok": slot_ok, "topic_ok": topic_ok, "ok": slot_ok and topic_ok}


def evaluate_dialogues(model, tok, conversations: list, max_new_tokens: int = 48, progress: bool = False,
                       keep_examples: int = 5) -> dict:
    """Greedy replies on ``conversations``: task accuracy, ROUGE-L, BLEU, distinct-n."""
    if not conversations:
        raise DataError("no test conversations to evaluate")
    replies, refs, rows = [], [], []
    it = conversations
    if progress:
        from tqdm import tqdm
        it = tqdm(conversations, desc="eval replies", unit="conv", dynamic_ncols=True, mininterval=0.5)
    for conv in it:
        prompt, ref, need = eval_turn(conv)
        reply = greedy_reply(model, tok, prompt, max_new_tokens)
        s = task_scores(reply, ref, need)
        replies.append(reply)
        refs.append(ref)
        rows.append({"prompt": prompt, "reference": ref, "reply": reply, "required": need, **s})
    n = len(rows)
    with_slots = [r for r in rows if r["required"]]
    return {
        "n_conversations": n,
        "task_accuracy": sum(r["ok"] for r in rows) / n,
        "slot_accuracy": (sum(r["slot_ok"] for r in with_slots) / len(with_slots)) if with_slots else None,
        "n_with_slots": len(with_slots),
        "topic_accuracy": sum(r["topic_ok"] for r in rows) / n,
        "rouge_l": float(np.mean([rouge_l(c, r) for c, r in zip(replies, refs)])),
        "bleu": corpus_bleu(replies, refs),
        "distinct_1": distinct_n(replies, 1),
        "distinct_2": distinct_n(replies, 2),
        "examples": rows[:keep_examples],
        "failures": [r for r in rows if not r["ok"]][:keep_examples],
    }


def perplexity(val_loss: float) -> float:
    return float(math.exp(min(val_loss, 700.0)))
