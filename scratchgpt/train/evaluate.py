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
* ``by_language`` / ``by_slot_type``: the same scores per conversation language and, per slot type
  (order_id, product, amount, email), the share of required values of that type the reply echoed.
* ``paraphrase_set()``: the hand-written paraphrase evaluation set
  (``scratchgpt/datasets/customer_service/paraphrase.csv``, never trained on), scored the same way.
* ``dev_set()``: a third hand-written set (``dev.csv``, 66 conversations in English, Chinese and
  mixed) that whoever tunes the varied training data chooses variants by, next to the test split
  and the paraphrase set; never trained on either.
* ``paraphrase_blind_set()``: a second hand-written set (``paraphrase_blind.csv``) written by
  someone who never read the generator's templates or the training data, and kept away from
  whoever tunes training — the check that the model did not learn only the templates.
* ``values_dev_set()``: 40 requests with value formats no template uses (``values_dev.csv``:
  lowercase ids, ids with slashes, underscores or spaces, leading zeros, "€1,299.00", e-mails
  with "+", capitals, apostrophes; values glued to Chinese text), never trained on — the
  development set for copying (issue 9), scored the same way.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..autograd import no_grad
from ..errors import DataError
from .text_metrics import corpus_bleu, distinct_n, rouge_l

PARAPHRASE_CSV = Path(__file__).resolve().parents[1] / "datasets" / "customer_service" / "paraphrase.csv"
PARAPHRASE_BLIND_CSV = PARAPHRASE_CSV.with_name("paraphrase_blind.csv")
VALUES_DEV_CSV = PARAPHRASE_CSV.with_name("values_dev.csv")
DEV_CSV = PARAPHRASE_CSV.with_name("dev.csv")


# ------------------------------------------------------------------ generation
def _reply_stops(tok) -> set:
    from ..tokenizer.chat_template import stop_token_ids
    return set(stop_token_ids(tok))


def _recompute_tail(model, ctx: list, n: int, stops: set) -> list:
    """Up to ``n`` greedy tokens after ``ctx``, each from a full forward of the last block_size
    tokens (a sliding window once the sequence outgrows the context)."""
    from ..backend import to_host
    block = model.config.block_size
    wte = to_host(model.transformer.wte.weight.data)      # a GPU model: one copy of the (V, C) table
    out: list[int] = []
    ctx = list(ctx)
    was_training = model.training
    model.eval()
    try:
        with no_grad():
            for _ in range(n):
                cond = np.asarray([ctx[-block:]], dtype=np.int64)       # (1, T)
                h = to_host(model.hidden_states(cond).data)[0, -1]      # (C,)
                nxt = int(np.argmax(h @ wte.T))                          # (V,) logits
                if nxt in stops:
                    break
                out.append(nxt)
                ctx.append(nxt)
    finally:
        model.train(was_training)
    return out


def greedy_reply_recompute(model, tok, messages: list[dict], max_new_tokens: int = 48) -> str:
    """Reference for ``greedy_reply``: every token from a full forward, no KV cache (slow)."""
    from ..tokenizer.chat_template import render_chat
    ids, _ = render_chat(tok, messages, add_generation_prompt=True)
    return tok.decode(_recompute_tail(model, ids, max_new_tokens, _reply_stops(tok))).strip()


def greedy_replies(model, tok, conversations: list, max_new_tokens: int = 48, batch_size: int = 8,
                   progress: bool = False) -> list:
    """Greedy assistant replies to a list of message lists, batched through the KV-cache engine.

    The same replies as ``greedy_reply_recompute`` up to float32 rounding of the logits (an
    argmax between two logits closer than ~1e-6 may flip). A reply ends at a stop token
    (<|end|>, <|endoftext|>, a role token) or after ``max_new_tokens``. The engine holds a
    sequence of at most block_size tokens (learned positions); if a reply has not ended when the
    sequence reaches that length, the rest is generated like the reference does — recomputed
    over a sliding window of the last block_size tokens — so long prompts are answered the same.
    """
    from ..infer import Engine, GenerationRequest, SamplingParams
    from ..tokenizer.chat_template import render_chat
    block = model.config.block_size
    stops = _reply_stops(tok)
    prompts = [render_chat(tok, m, add_generation_prompt=True)[0] for m in conversations]
    replies: list = [None] * len(prompts)
    tails = []                                            # (index, ids so far) to finish by recompute
    was_training = model.training
    model.eval()
    engine = Engine(model, tok, max_batch_size=max(1, min(batch_size, len(prompts))))
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=len(prompts), desc="eval replies", unit="conv", dynamic_ncols=True, mininterval=0.5)
    try:
        waiting = list(range(len(prompts)))[::-1]
        got: dict = {}
        while waiting or engine.has_work():
            while waiting and engine.num_free_slots:
                i = waiting.pop()
                room = block - len(prompts[i]) + 1
                if room < 1:                              # the prompt alone overflows the context
                    tails.append((i, []))
                    continue
                n = min(max_new_tokens, room)
                engine.add(GenerationRequest(prompts[i], SamplingParams(max_new_tokens=n, stop_token_ids=tuple(stops)),
                                             id=str(i)))
            for o in engine.step():
                i = int(o.id)
                ids = got.setdefault(i, [])
                if o.finish_reason == "stop":
                    replies[i] = tok.decode(ids).strip()
                else:
                    ids.append(o.token_id)
                    if o.finished:
                        if len(ids) < max_new_tokens:    # context full before the limit: finish by recompute
                            tails.append((i, ids))
                        else:
                            replies[i] = tok.decode(ids).strip()
                if o.finished and bar is not None and replies[i] is not None:
                    bar.update(1)
        for i, ids in tails:
            ids = ids + _recompute_tail(model, prompts[i] + ids, max_new_tokens - len(ids), stops)
            replies[i] = tok.decode(ids).strip()
            if bar is not None:
                bar.update(1)
    finally:
        model.train(was_training)
        if bar is not None:
            bar.close()
    return replies


def greedy_reply(model, tok, messages: list[dict], max_new_tokens: int = 48) -> str:
    """The model's greedy assistant reply to ``messages`` (ends at <|end|> or the token limit)."""
    return greedy_replies(model, tok, [messages], max_new_tokens)[0]


# ------------------------------------------------------------------ task accuracy
def _messages(conv) -> list[dict]:
    msgs = conv["messages"] if isinstance(conv, dict) else [m.to_dict() for m in conv.messages]
    return [{"role": m["role"], "content": m["content"]} for m in msgs]


def _language(conv) -> str:
    return (conv.get("language") if isinstance(conv, dict) else conv.language) or "?"


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
    turns = [eval_turn(conv) for conv in conversations]
    generated = greedy_replies(model, tok, [t[0] for t in turns], max_new_tokens, progress=progress)
    for conv, (prompt, ref, need), reply in zip(conversations, turns, generated):
        s = task_scores(reply, ref, need)
        replies.append(reply)
        refs.append(ref)
        names = {str(v): k for k, v in _slots(conv).items()}
        rows.append({"prompt": prompt, "reference": ref, "reply": reply, "required": need,
                     "required_types": [names.get(v, "?") for v in need], "language": _language(conv), **s})
    n = len(rows)
    return {
        "n_conversations": n,
        **_scores(rows),
        "by_language": {lang: {"n_conversations": len(sub), **_scores(sub)}
                        for lang, sub in _group(rows, lambda r: [r["language"]]).items()},
        "by_slot_type": slot_type_scores(rows),
        "rouge_l": float(np.mean([rouge_l(c, r) for c, r in zip(replies, refs)])),
        "bleu": corpus_bleu(replies, refs),
        "distinct_1": distinct_n(replies, 1),
        "distinct_2": distinct_n(replies, 2),
        # two disjoint lists: the first replies that passed and the first that failed
        "examples_ok": [r for r in rows if r["ok"]][:keep_examples],
        "examples_failed": [r for r in rows if not r["ok"]][:keep_examples],
    }


def _scores(rows: list) -> dict:
    with_slots = [r for r in rows if r["required"]]
    return {
        "task_accuracy": sum(r["ok"] for r in rows) / len(rows),
        "slot_accuracy": (sum(r["slot_ok"] for r in with_slots) / len(with_slots)) if with_slots else None,
        "n_with_slots": len(with_slots),
        "topic_accuracy": sum(r["topic_ok"] for r in rows) / len(rows),
    }


def _group(rows: list, keys) -> dict:
    out: dict = {}
    for r in rows:
        for k in keys(r):
            out.setdefault(k, []).append(r)
    return dict(sorted(out.items()))


def slot_type_scores(rows: list) -> dict:
    """Per slot type: how many required values of that type there were, the share the reply
    echoed, and the task accuracy of the conversations that required one."""
    out = {}
    for name, sub in _group(rows, lambda r: sorted(set(r["required_types"]))).items():
        vals = [(v, r["reply"]) for r in sub for v, t in zip(r["required"], r["required_types"]) if t == name]
        out[name] = {"n_values": len(vals), "echoed": sum(v in reply for v, reply in vals) / len(vals),
                     "n_conversations": len(sub), "task_accuracy": sum(r["ok"] for r in sub) / len(sub)}
    return out


def paraphrase_set(limit: int | None = None, path: Path = PARAPHRASE_CSV) -> list:
    """The paraphrase evaluation set as Conversations (turns normalised like the pipeline's).

    Written by hand, separately from the generator's templates: new wordings, other sentence
    orders, typos, mixed English/Chinese, order numbers in positions and formats the templates
    never use. It is never trained on; it checks that the model copies and answers beyond the
    templates it memorised. ``path`` picks another set in the same CSV format.
    """
    from ..data.load_csv import load_csv
    from ..data.records import Message
    from ..data.report import Report
    from ..data.textnorm import normalize_turn
    path = Path(path)
    if not path.is_file():
        raise DataError(f"paraphrase evaluation set {path} is missing (it ships with the package)")
    convs = list(load_csv(path, Report()))
    for c in convs:
        c.messages = [Message(m.role, normalize_turn(m.content)) for m in c.messages]
        c.meta["slots"] = {k: normalize_turn(str(v)) for k, v in (c.meta.get("slots") or {}).items()}
    if limit is not None and limit < len(convs):
        idx = np.linspace(0, len(convs) - 1, limit).round().astype(int)
        convs = [convs[i] for i in idx]
    return convs


def paraphrase_blind_set(limit: int | None = None) -> list:
    """The blind paraphrase set (``paraphrase_blind.csv``): like ``paraphrase_set`` but written
    without reading the templates, ``train.csv``/``test.csv`` or the first paraphrase set, by
    someone not working on training, so nobody tuned training against it."""
    return paraphrase_set(limit, PARAPHRASE_BLIND_CSV)


def values_dev_set(limit: int | None = None) -> list:
    """The value-format development set (``values_dev.csv``, see the module docstring)."""
    return paraphrase_set(limit, VALUES_DEV_CSV)


def dev_set(limit: int | None = None) -> list:
    """The development set (``dev.csv``): requests written by hand in new words (indirect,
    terse, angry, several sentences, typos, mixed English/Chinese, slot values in new formats),
    separately from the wordings of ``templates_extra.py`` / ``templates_more.py``. Never
    trained on; used to choose between training variants so the paraphrase set is not the only
    thing they are tuned by."""
    return paraphrase_set(limit, DEV_CSV)


def perplexity(val_loss: float) -> float:
    return float(math.exp(min(val_loss, 700.0)))
