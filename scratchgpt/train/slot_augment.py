"""Slot resampling: extra SFT conversations that teach the model to *copy* slot values.

A customer-service reply must echo what the user said — the order number, the amount, the
e-mail, the product. With ~700 training conversations a small model can instead memorise the
few hundred order numbers it has seen and fail on every new one (measured: with the plain data
the demo model echoed 4.5% of test slot values). So for each training conversation we make
``copies`` variants where every slot value is replaced, in every turn, by a fresh one of the
same shape:

  * values with digits (order ids, amounts, e-mails): each digit -> a random digit and each
    upper-case ASCII letter -> a random upper-case letter; punctuation and lower-case text stay
    ("SG-202760" -> "SG-918245", "#37042" -> "#55108", "$14.00" -> "$83.17"), except in the
    user part of an e-mail, where lower-case letters are redrawn too ("anna.lee7@example.com" ->
    "qpxm.rdt4@example.com"): the bundled data draws users from a list of 12 names, and with the
    names kept the model learned to pick one of the 12 instead of copying (measured: 22 % of test
    e-mails echoed, every miss another name from the list);
  * other values (product names): another value of the same slot seen in training conversations
    of the same language.

The model then sees thousands of distinct order numbers, each once or twice, and the only way to
predict the reply is to copy from the user's turn. Only the train split is augmented and only
with values drawn at random or from the train split itself, so nothing about the test set leaks.
This is SFT-time augmentation of the rendered token ids; the data pipeline's EDA augmentation
(``scratchgpt.data.augment``) rewrites wording instead and protects slot values.
"""
from __future__ import annotations

import random
import string
from collections import defaultdict

from ..errors import DataError


def _reshape(value: str, rng: random.Random) -> str:
    out = []
    user = "@" in value          # an e-mail: the part before "@" is redrawn letter by letter
    for ch in value:
        if ch == "@":
            user = False
        if ch.isdigit():
            out.append(rng.choice(string.digits))
        elif ch in string.ascii_uppercase:
            out.append(rng.choice(string.ascii_uppercase))
        elif user and ch in string.ascii_lowercase:
            out.append(rng.choice(string.ascii_lowercase))
        else:
            out.append(ch)
    return "".join(out)


def slot_pools(conversations) -> dict:
    """(slot name, language) -> sorted list of values seen, for the values without digits."""
    pools = defaultdict(set)
    for c in conversations:
        for k, v in (c.meta.get("slots") or {}).items():
            v = str(v)
            if v and not any(ch.isdigit() for ch in v):
                pools[(k, c.language)].add(v)
    return {key: sorted(vals) for key, vals in pools.items()}


def resample_slots(conv, pools: dict, rng: random.Random, wide: float = 0.0):
    """A copy of ``conv`` (a Conversation) with every slot value replaced in every message.
    ``wide`` > 0: that share of the values with digits (order ids, amounts, e-mails) comes from
    the wide family of ``datasets/customer_service/value_shapes.py`` instead of keeping its shape
    (0 draws exactly what it drew before the option existed)."""
    slots = {k: str(v) for k, v in (conv.meta.get("slots") or {}).items() if str(v)}
    new = {}
    for k, v in slots.items():
        if any(ch.isdigit() for ch in v):
            w = None
            if wide and rng.random() < wide:
                from ..datasets.customer_service.value_shapes import wide_value
                w = wide_value(k, rng, conv.language)
            new[k] = w if w is not None else _reshape(v, rng)
        else:
            pool = [x for x in pools.get((k, conv.language), []) if x != v]
            new[k] = rng.choice(pool) if pool else v
    msgs = []
    # longest value first, so a value that contains another is replaced whole
    order = sorted(slots, key=lambda k: -len(slots[k]))
    for m in conv.messages:
        text = m.content
        marks = {}
        for i, k in enumerate(order):
            mark = f"\x00{i}\x00"  # placeholders: a new value must never be replaced again
            text = text.replace(slots[k], mark)
            marks[mark] = new[k]
        for mark, val in marks.items():
            text = text.replace(mark, val)
        msgs.append({"role": m.role, "content": text})
    return msgs, new


def copies_per_conversation(conversations, copies: int, max_boost: int = 1) -> list[int]:
    """Slot-resampled copies for each conversation: ``copies``, times up to ``max_boost`` for
    conversations with a rare slot type.

    The bundled data copies order numbers in 499 training rows but amounts and e-mails in 25
    each, so a model sees 20x fewer examples of copying those (measured: 0-22 % of test amounts
    and e-mails echoed while 85 % of order numbers were). A conversation's boost is
    min(max_boost, floor(count of the commonest slot type / count of its rarest slot type)),
    counted over ``conversations``; ``max_boost=1`` gives every conversation ``copies``.
    """
    counts: dict = defaultdict(int)
    for c in conversations:
        for k in (c.meta.get("slots") or {}):
            counts[k] += 1
    top = max(counts.values(), default=1)
    out = []
    for c in conversations:
        kinds = list(c.meta.get("slots") or {})
        if not kinds:
            out.append(0)
            continue
        boost = max(1, min(max_boost, top // min(counts[k] for k in kinds)))
        out.append(copies * boost)
    return out


class ListShard:
    """An in-memory SFT shard: ``len``, ``[i] -> (ids, mask)``, ``meta`` (what SFTBatches reads)."""

    def __init__(self, examples: list, pad_id: int):
        self.examples = examples
        self.meta = {"pad_id": pad_id, "n_conversations": len(examples)}

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i):
        return self.examples[i]


def weight_copied_tokens(examples: list, weight: int, max_share: float = 0.05) -> list:
    """A weighted loss mask: every reply token that *copies* a value gets ``weight`` instead of 1.

    ``examples`` are rendered ``(ids, mask)`` pairs (mask 1 on the assistant's tokens). A reply
    token counts as copied when (a) the same token id occurs earlier in the example outside the
    assistant's tokens (the user said it) and (b) the id is rare among replies: it occurs in the
    replies of at most ``max_share`` of the examples. (b) leaves out the words every reply repeats
    ("order", "the", punctuation) and keeps the tokens of order numbers, amounts, e-mails and
    product names, which vary from conversation to conversation. No slot annotations are needed,
    so slot-resampled copies and varied conversations are weighted the same way. The SFT loss is
    then the weighted mean of ``ops.cross_entropy`` (``GPT.forward`` passes a mask with values > 1
    as weights). Returns new ``(ids, mask)`` pairs; the input is not changed.
    """
    if weight < 1:
        raise DataError(f"slot token weight must be >= 1, got {weight}")
    df: dict = defaultdict(int)
    for ids, mask in examples:
        for t in {i for i, m in zip(ids, mask) if m}:
            df[t] += 1
    limit = max_share * len(examples)
    out = []
    for ids, mask in examples:
        seen: set = set()
        new = list(mask)
        for k, (t, m) in enumerate(zip(ids, mask)):
            if not m:
                seen.add(t)
            elif t in seen and df[t] <= limit:
                new[k] = weight
        out.append((ids, new))
    return out


def augmented_sft_shard(conversations: list, tok, copies: int, seed: int = 0, max_boost: int = 1,
                        extra: list | None = None, slot_weight: int = 1, wide: float = 0.0) -> ListShard:
    """The rendered originals plus ``copies`` slot-resampled variants of each conversation with
    slots (more for rare slot types with ``max_boost`` > 1: ``copies_per_conversation``), plus
    ``extra`` message lists rendered as they are (e.g. varied conversations,
    ``datasets/customer_service/variety.py``). ``slot_weight > 1`` weighs the reply tokens that
    copy a value from the user that much more in the loss (``weight_copied_tokens``); ``wide``:
    that share of the copies' values in wide shapes (``resample_slots``)."""
    from ..tokenizer.chat_template import render_chat
    if copies < 0:
        raise DataError(f"slot copies must be >= 0, got {copies}")
    rng = random.Random(seed)
    pools = slot_pools(conversations)
    examples = []
    for c, n in zip(conversations, copies_per_conversation(conversations, copies, max_boost)):
        msgs = [m.to_dict() for m in c.messages]
        examples.append(render_chat(tok, msgs))
        if c.meta.get("slots"):
            for _ in range(n):
                new_msgs, _ = resample_slots(c, pools, rng, wide)
                examples.append(render_chat(tok, new_msgs))
    examples += [render_chat(tok, msgs) for msgs in (extra or [])]
    if slot_weight != 1:
        examples = weight_copied_tokens(examples, slot_weight)
    pad = tok.special_tokens.get("<|pad|>", 0)
    return ListShard(examples, pad)
