"""Generate the bundled customer-service dialogue dataset (train.csv, test.csv).

    python -m scratchgpt.datasets.customer_service.generate [--train-per-language 400] [--test-per-language 100]
        [--seed 20240501] [--out DIR]

Deterministic: the same arguments write byte-identical files. Conversations are templated
(templates_en.py, templates_zh.py) with random slots — order numbers in three formats
("A12345", "#58213", "SG-204871"), product names, amounts, e-mail addresses — random
politeness prefixes/suffixes, and 1-3 exchanges (greeting, main request, follow-up or thanks).
Every reply repeats the slot values it relies on, which all come from the user's turns of the
same conversation; the ``slots`` column (JSON) lists them per row so an evaluator can check a
generated reply for them. Order numbers, amounts and e-mails are never shared between train
and test, and no test conversation equals a train conversation.
"""
from __future__ import annotations

import argparse
import csv
import json
import random
import re
from pathlib import Path

from . import templates_en, templates_zh

HERE = Path(__file__).resolve().parent

LANGS = {"en": templates_en, "zh": templates_zh}
TOPIC_WEIGHTS = {"orders": 3, "shipping": 3, "returns_refunds": 3, "account": 2, "payment": 2,
                 "product": 2, "complaint": 2, "small_talk": 1}
_SLOT = re.compile(r"\{(\w+)\}")
COLUMNS = ["conversation_id", "turn", "context", "reply", "topic", "turn_topic", "intent", "language", "slots"]


def slots_in(template: str) -> set[str]:
    return set(_SLOT.findall(template))


class SlotMaker:
    """Fresh slot values; order numbers / amounts / e-mails never repeat across the dataset."""

    def __init__(self, rng: random.Random, used: set):
        self.rng, self.used = rng, used

    def _fresh(self, make):
        for _ in range(1000):
            v = make()
            if v not in self.used:
                self.used.add(v)
                return v
        raise RuntimeError("slot space exhausted")

    def order_id(self):
        r = self.rng
        fmt = r.randrange(3)
        if fmt == 0:
            return self._fresh(lambda: f"{r.choice('ABCDEFGHJKMNPRSTUVWXYZ')}{r.randrange(10000, 100000)}")
        if fmt == 1:
            return self._fresh(lambda: f"#{r.randrange(10000, 100000)}")
        return self._fresh(lambda: f"SG-{r.randrange(100000, 1000000)}")

    def amount(self, fmt):
        r = self.rng
        return self._fresh(lambda: fmt.format(r.randrange(5, 500) + r.choice([0.0, 0.5, 0.99, 0.49])))

    def email(self, users):
        r = self.rng
        return self._fresh(lambda: f"{r.choice(users)}{r.randrange(1, 100)}@example.com")


def fill(template: str, slots: dict) -> str:
    return _SLOT.sub(lambda m: slots[m.group(1)], template)


def compatible_replies(user_t: str, replies: list[str], known: set[str]) -> list[str]:
    """Replies that use only slots the user mentioned (now or earlier) and, when the user just
    mentioned some, echo at least one of them. The row's ``slots`` = the slots the reply uses."""
    need = slots_in(user_t)
    return [r for r in replies if slots_in(r) <= need | known and (not need or need & slots_in(r))]


def join_prefix(prefix: str, text: str, lang: str) -> str:
    if lang == "en" and prefix and text[:1].isupper() and not re.match(r"I\b|I'", text):
        text = text[0].lower() + text[1:]
    return prefix + text


def make_turn(lang, intent, slots, known, rng, polite=True, style=None):
    """(user, reply, row slots) for one exchange; ``known`` = slot names already mentioned.
    ``style`` (``variety.Style``): other user wordings and surface noise; None = the templates as
    they are (what train.csv / test.csv are made with)."""
    T = LANGS[lang]
    topic, users, replies = T.INTENTS[intent]
    if style is not None:
        users, replies = style.templates(lang, intent, users, replies, rng)
    choices = [(u, compatible_replies(u, replies, known)) for u in users]
    choices = [(u, rs) for u, rs in choices if rs]
    user_t, rs = rng.choice(choices)
    if style is not None:
        rs = style.best_replies(user_t, rs)
    reply_t = rng.choice(rs)
    polite = polite and topic != "small_talk"
    user = fill(user_t, slots) if style is None else style.render(user_t, slots, lang, rng, polite)
    if polite:
        if style is None:
            user = join_prefix(rng.choice(T.GREETING_PREFIXES), user, lang) + rng.choice(T.USER_SUFFIXES)
        reply = rng.choice(T.REPLY_PREFIXES) + fill(reply_t, slots)
    else:
        reply = fill(reply_t, slots)
    used = sorted(slots_in(reply_t))
    return user, reply, {k: slots[k] for k in used}, slots_in(user_t)


def make_conversation(lang, rng, maker: SlotMaker, style=None):
    T = LANGS[lang]
    weights = TOPIC_WEIGHTS if style is None else style.topic_weights
    topic = rng.choices(list(weights), weights=list(weights.values()))[0]
    if style is None:
        slots = {"order_id": maker.order_id(), "product": rng.choice(T.PRODUCTS),
                 "amount": maker.amount(T.CURRENCY_FMT), "email": maker.email(templates_en.EMAIL_USERS)}
    else:
        slots = style.slots(lang, rng)
    rows = []  # (user, reply, turn_topic, intent, row_slots)
    known: set = set()
    if topic == "small_talk":
        first = rng.choice(["greeting", "how_are_you"])
        plan = [first, rng.choice(["how_are_you", "thanks", "goodbye"] if first == "greeting" else ["thanks", "goodbye"])]
        if rng.random() < 0.5:
            plan = plan[:1]
        for intent in plan:
            u, r, s, _ = make_turn(lang, intent, slots, known, rng, style=style)
            rows.append((u, r, "small_talk", intent, s))
        return topic, rows
    intents = [name for name, (t, _, _) in T.INTENTS.items() if t == topic]
    main = rng.choice(intents)
    shape = rng.random()
    if shape < 0.35:
        u, r, s, _ = make_turn(lang, "greeting", slots, known, rng, style=style)
        rows.append((u, r, "small_talk", "greeting", s))
    u, r, s, mentioned = make_turn(lang, main, slots, known, rng, polite=not rows, style=style)
    known |= mentioned
    rows.append((u, r, topic, main, s))
    tail = rng.random()
    fu = T.FOLLOWUPS.get(topic)
    if tail < 0.3 and fu and all(compatible_replies(q, fu[2], known) for q in fu[1]):
        name, questions, replies = fu
        q = rng.choice(questions)
        if style is not None:
            q = style.render(q, slots, lang, rng, False)
        reply_t = rng.choice(compatible_replies(q, replies, known))
        rows.append((q, fill(reply_t, slots), topic, name, {k: slots[k] for k in sorted(slots_in(reply_t))}))
    elif tail < 0.55:
        intent = rng.choice(["thanks", "goodbye"])
        u, r, s, _ = make_turn(lang, intent, slots, known, rng, style=style)
        rows.append((u, r, "small_talk", intent, s))
    return topic, rows


def generate(n_per_language: int, split: str, seed: int, used: set, avoid_texts: set) -> list[list]:
    out = []
    for lang in ("en", "zh"):
        rng = random.Random(f"{seed}:{split}:{lang}")
        maker = SlotMaker(rng, used)
        seen = set()
        k = 0
        while k < n_per_language:
            topic, rows = make_conversation(lang, rng, maker)
            key = "\n".join(u + "\t" + r for u, r, *_ in rows)
            if key in seen or key in avoid_texts:
                continue
            seen.add(key)
            k += 1
            cid = f"cs-{split}-{lang}-{k:04d}"
            for turn, (u, r, turn_topic, intent, s) in enumerate(rows):
                out.append([cid, turn, u, r, topic, turn_topic, intent, lang,
                            json.dumps(s, ensure_ascii=False, sort_keys=True)])
        avoid_texts |= seen
    return out


def validate(rows) -> None:
    """The promises an evaluator relies on: every reply contains its row's slot values and a
    keyword of its turn's topic (``scratchgpt.data.annotate.mentions_topic``)."""
    from ...data.annotate import mentions_topic
    for cid, turn, user, reply, topic, turn_topic, intent, lang, slots in rows:
        for name, value in json.loads(slots).items():
            if value not in reply:
                raise AssertionError(f"{cid} turn {turn}: reply lacks slot {name}={value!r}: {reply}")
        if not mentions_topic(reply, turn_topic):
            raise AssertionError(f"{cid} turn {turn}: reply is not recognisably {turn_topic}: {reply}")


def write_csv(path: Path, rows):
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(COLUMNS)
        w.writerows(rows)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m scratchgpt.datasets.customer_service.generate",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("--train-per-language", type=int, default=400, metavar="N",
                    help="training conversations per language (default 400)")
    ap.add_argument("--test-per-language", type=int, default=100, metavar="N",
                    help="held-out test conversations per language (default 100)")
    ap.add_argument("--seed", type=int, default=20240501, help="random seed (default 20240501)")
    ap.add_argument("--out", default=str(HERE), metavar="DIR",
                    help="where to write train.csv and test.csv (default: next to this script)")
    args = ap.parse_args(argv)
    used: set = set()
    texts: set = set()
    train = generate(args.train_per_language, "train", args.seed, used, texts)
    test = generate(args.test_per_language, "test", args.seed, used, texts)
    validate(train)
    validate(test)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / "train.csv", train)
    write_csv(out / "test.csv", test)
    for name, rows in (("train", train), ("test", test)):
        print(f"{name}: {len({r[0] for r in rows})} conversations, {len(rows)} exchanges")


if __name__ == "__main__":
    main()
