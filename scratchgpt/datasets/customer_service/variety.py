"""Varied training conversations: the generator's intents and replies, with user messages that do
not follow the templates' surface.

``generate.py`` writes train.csv / test.csv from a few hand-written user templates per intent;
a small model fine-tuned on them learns the templates (measured: 81-84 % on the test split, a
third of that on hand-written paraphrases). ``varied_conversations`` makes extra *training*
conversations from the same intents and reply templates, but every user message goes through
``Style``:

* wording: the original user templates plus others written separately (``templates_extra.py``,
  and with ``more_wordings`` the many more of ``templates_more.py``);
* order numbers in many formats (letter + digits, ``#`` + digits, ``SG-`` + digits, bare digits,
  two-letter prefixes, lower case) and places: inline ("order number K3041", "单号K3041"), as the
  first words ("K3041 - ..."), or after the request ("... The order number is K3041.");
* e-mail users that look like names ("mira.tan7", "jo_kess") instead of a list of 12, amounts in
  other formats ("$35", "¥12.50"); with ``wide_values`` a share of the order ids, amounts and
  e-mails comes from the much wider family of ``value_shapes.py`` ("INV-455-51590042",
  "z-6097-d-a", "CAD 4,896.90", "Paibei+shop@live.cn");
* noise around the request: politeness, irrelevant chit-chat, shuffled sentences, casual
  spelling (lower case, no final punctuation, "pls", "u", "thx"), a typo or two in words that
  are not slot values, English words in Chinese messages and Chinese greetings in English ones,
  English product names in Chinese messages.

Replies keep the original reply templates (plus ``EXTRA_REPLIES`` for slot combinations the
originals never answer) and echo the values exactly as the user wrote them, so the model has to
find the request and copy the values from wherever they sit. Deterministic for a seed. Nothing
here reads the test split or an evaluation set.
"""
from __future__ import annotations

import functools
import random
import re
import string

from ...data.textnorm import normalize_turn
from . import generate, templates_en, templates_zh, value_shapes
from .value_shapes import made_up_name  # noqa: F401  (copy_drill.py imports it from here too)
from .templates_more import MORE_USERS, ON_TOPIC_REPLIES
from .templates_extra import (ABBREVIATIONS, CHITCHAT, EN_EXTRAS_ZH, EXTRA_REPLIES, EXTRA_USERS, ID_FIRST,
                              ID_INLINE, ID_LAST, ORDER_WORDS, PRODUCT_PARTS, ZH_TO_EN)

_LETTERS = "ABCDEFGHJKLMNPRSTUVWXYZ"
_SENT = re.compile(r"(?<=[.!?。！？])\s*")
_MARK = re.compile(r"\x00(\w+)\x00")
_EN_TO_ZH = {en: zh for zh, ens in ZH_TO_EN.items() for en in ens if " " not in en}


class Style:
    """What changes between a template conversation and a varied one (see the module docstring).

    The probabilities are per message; 0 everywhere (``Style(p=0)``) gives the original
    templates with the wider slot formats only."""

    # account and payment conversations carry the rare slot types (e-mails, amounts): more of them
    topic_weights = {**generate.TOPIC_WEIGHTS, "account": 3, "payment": 3}

    def __init__(self, p: float = 1.0, open_products: float = 0.0, more_wordings: bool = False,
                 on_topic_replies: bool = False, wide_values: float = 0.0):
        self.p = p
        self.open_products = open_products   # share of made-up product names (PRODUCT_PARTS)
        self.more_wordings = more_wordings   # draw other wordings from templates_more.py too
        self.on_topic_replies = on_topic_replies   # only replies the topic classifier files under the intent's topic
        self.wide_values = wide_values       # share of order ids / amounts / e-mails from value_shapes.py

    # ---- slot values
    def order_id(self, r: random.Random) -> str:
        if self.wide_values and r.random() < self.wide_values:
            return value_shapes.wide_order_id(r)
        k = r.randrange(10)
        d = lambda n: "".join(r.choice(string.digits) for _ in range(n))  # noqa: E731
        if k == 0:
            v = f"{r.choice(_LETTERS)}{d(5)}"
        elif k == 1:
            v = f"#{d(r.choice([5, 5, 6]))}"
        elif k == 2:
            v = f"SG-{d(6)}"
        elif k == 3:
            v = f"{r.choice('123456789')}{d(r.choice([4, 5, 5, 6, 7]))}"
        elif k == 4:
            v = f"{r.choice(_LETTERS)}{r.choice(_LETTERS)}{d(r.choice([4, 5, 6]))}"
        elif k == 5:
            v = f"{r.choice(_LETTERS)}{r.choice(_LETTERS)}-{d(r.choice([5, 6]))}"
        elif k == 6:
            v = f"{r.choice(_LETTERS)}{d(r.choice([4, 6, 7]))}"
        elif k == 7:
            v = f"#{r.choice(_LETTERS)}{d(5)}"
        elif k == 8:
            v = f"SG{d(6)}"
        else:
            v = f"{r.choice(_LETTERS)}{d(3)}-{d(3)}"
        return v.lower() if r.random() < 0.1 else v

    def amount(self, r: random.Random, lang: str) -> str:
        if self.wide_values and r.random() < self.wide_values:
            return value_shapes.wide_amount(r, lang)
        v = r.randrange(1, 900) + r.choice([0.0, 0.5, 0.99, 0.49, r.randrange(100) / 100])
        if lang == "zh":
            return r.choice([f"{v:.2f}元", f"{v:.2f}元", f"{int(v)}元", f"¥{v:.2f}"])
        return r.choice([f"${v:.2f}", f"${v:.2f}", f"${int(v)}", f"{v:.2f} USD"])

    def email(self, r: random.Random) -> str:
        if self.wide_values and r.random() < self.wide_values:
            return value_shapes.wide_email(r)
        user = made_up_name(r)
        k = r.random()
        if k < 0.4:
            user += r.choice([".", "_", ""]) + (made_up_name(r) if r.random() < 0.5 else r.choice(string.ascii_lowercase))
        if r.random() < 0.6:
            user += str(r.randrange(1, 1000))
        dom = r.choice(["example.com"] * 6 + ["example.org", "mail.example.com", "example.net"])
        return f"{user}@{dom}"

    def slots(self, lang: str, r: random.Random) -> dict:
        T = generate.LANGS[lang]
        products = T.PRODUCTS if lang == "en" or r.random() > 0.15 else templates_en.PRODUCTS
        product = r.choice(products)
        if self.open_products and r.random() < self.open_products:
            mods, things = PRODUCT_PARTS[lang if product in T.PRODUCTS else "en"]
            product = r.choice(mods) + (" " if product not in templates_zh.PRODUCTS else "") + r.choice(things)
        return {"order_id": self.order_id(r), "product": product, "amount": self.amount(r, lang),
                "email": self.email(r)}

    # ---- templates
    def templates(self, lang, intent, users, replies, r: random.Random):
        extra = EXTRA_USERS[lang].get(intent, [])
        if self.more_wordings:
            extra = extra + MORE_USERS[lang].get(intent, [])
        if extra and r.random() < 0.6 * self.p:
            users = extra
        replies = list(replies) + EXTRA_REPLIES[lang].get(intent, [])
        if self.on_topic_replies:
            replies = on_topic(lang, intent, tuple(replies))
        return users, replies

    @staticmethod
    def best_replies(user_t: str, replies: list) -> list:
        """The replies that echo the most of the slots the user just gave."""
        need = generate.slots_in(user_t)
        best = max(len(need & generate.slots_in(x)) for x in replies)
        return [x for x in replies if len(need & generate.slots_in(x)) == best]

    # ---- the user's message
    def _place_order_id(self, t: str, lang: str, r: random.Random) -> str:
        if "{order_id}" not in t:
            return t.replace("{order}", r.choice(ORDER_WORDS[lang]))
        pat = (r"(?:\b[Mm]y |\b[Tt]he )?\b[Oo]rder \{order_id\}" if lang == "en" else r"订单(?:号)?\{order_id\}")
        k = r.random()
        if re.search(pat, t) and k < 0.35 * self.p:             # move the number out of the sentence
            t = re.sub(pat, lambda m: r.choice(ORDER_WORDS[lang]), t, count=1)
            if r.random() < 0.5:
                t = r.choice(ID_FIRST[lang]).replace("{v}", "{order_id}") + t
            else:
                t = t + r.choice(ID_LAST[lang]).replace("{v}", "{order_id}")
        elif re.search(pat, t) and k < 0.75 * self.p:
            phrase = r.choice(ID_INLINE[lang]).replace("{v}", "{order_id}")
            t = re.sub(pat, lambda m: phrase, t, count=1)
        return t.replace("{order}", r.choice(ORDER_WORDS[lang]))

    def render(self, user_t: str, slots: dict, lang: str, r: random.Random, polite: bool = True) -> str:
        T = generate.LANGS[lang]
        t = self._place_order_id(user_t, lang, r)
        if "{order_id}" in t and slots["order_id"].startswith("#"):
            t = t.replace("#{order_id}", "{order_id}")
        if polite and r.random() < 0.5:
            t = generate.join_prefix(r.choice(T.GREETING_PREFIXES), t, lang) + r.choice(T.USER_SUFFIXES)
        t = generate._SLOT.sub(lambda m: f"\x00{m.group(1)}\x00", t)   # protect slot values from the noise
        p = self.p
        parts = [s for s in _SENT.split(t) if s.strip()]
        if len(parts) > 1 and r.random() < 0.3 * p:
            r.shuffle(parts)
            t = ("" if lang == "zh" else " ").join(parts)
        if r.random() < 0.25 * p:
            chat = r.choice(CHITCHAT[lang])
            gap = "" if lang == "zh" else " "
            t = chat + gap + t if r.random() < 0.5 else t + gap + chat
        t = (self._casual_en(t, r) if lang == "en" else self._casual_zh(t, r))
        if lang == "en" and r.random() < 0.08 * p:                    # a Chinese word in an English message
            words = [w for w in _EN_TO_ZH if re.search(rf"(?<![\w\x00]){w}(?![\w\x00])", t)]
            if words:
                w = r.choice(words)
                t = re.sub(rf"(?<![\w\x00]){w}(?![\w\x00])", lambda m: _EN_TO_ZH[w], t, count=1)
        if lang == "en" and r.random() < 0.1 * p:
            t = r.choice(EN_EXTRAS_ZH["head"]) + t if r.random() < 0.5 else t + r.choice(EN_EXTRAS_ZH["tail"])
        t = _MARK.sub(lambda m: slots[m.group(1)], t)
        t = normalize_turn(t)
        return t if t[:1].islower() or lang != "en" else t[:1].upper() + t[1:]

    def _casual_en(self, t: str, r: random.Random) -> str:
        p = self.p
        if r.random() < 0.3 * p:
            t = t.lower()
        if r.random() < 0.3 * p:
            for word, subs in ABBREVIATIONS.items():
                if r.random() < 0.5:
                    t = re.sub(rf"(?i)(?<![\w\x00]){re.escape(word)}(?![\w\x00])", lambda m: r.choice(subs), t)
        if r.random() < 0.3 * p:
            t = t.replace("'", "")
        if r.random() < 0.3 * p:
            t = t.rstrip(".!")
        if r.random() < 0.1 * p:
            t = t.replace("?", r.choice(["??", "?!", ""]))
        if r.random() < 0.3 * p:
            t = self._typos(t, r)
        return t

    def _casual_zh(self, t: str, r: random.Random) -> str:
        p = self.p
        if r.random() < 0.2 * p:
            words = [w for w in ZH_TO_EN if w in t]
            for w in r.sample(words, min(len(words), r.choice([1, 1, 2]))):
                t = t.replace(w, " " + r.choice(ZH_TO_EN[w]) + " ", 1)
        if r.random() < 0.3 * p:
            t = t.rstrip("。！")
        if r.random() < 0.15 * p:
            t = t.replace("，", " ")
        return t

    @staticmethod
    def _typos(t: str, r: random.Random) -> str:
        words = t.split(" ")
        cand = [i for i, w in enumerate(words) if len(w) >= 4 and w.isalpha()]
        for i in r.sample(cand, min(len(cand), r.choice([1, 1, 2]))):
            w = words[i]
            j = r.randrange(1, len(w) - 1)
            op = r.randrange(4)
            if op == 0:
                w = w[:j] + w[j + 1:]                                   # a dropped letter
            elif op == 1:
                w = w[:j] + w[j + 1] + w[j] + w[j + 2:]                 # two letters swapped
            elif op == 2:
                w = w[:j] + w[j] + w[j:]                                # a doubled letter
            else:
                w = w[:j] + r.choice(string.ascii_lowercase) + w[j + 1:]  # a wrong letter
            words[i] = w
        return " ".join(words)


_SAMPLE_SLOTS = {"en": {"order_id": "K12345", "product": "backpack", "amount": "$12.00", "email": "ab@example.com"},
                 "zh": {"order_id": "K12345", "product": "背包", "amount": "12.00元", "email": "ab@example.com"}}


@functools.lru_cache(maxsize=None)
def on_topic(lang: str, intent: str, replies: tuple) -> list:
    """The replies (plus ``ON_TOPIC_REPLIES``) that ``classify_topic`` files under the intent's own
    topic once filled in: what the evaluation compares a reply's topic by, and what a reply written
    by someone else for that request is likely to be filed under."""
    from ...data.annotate import classify_topic
    topic = generate.LANGS[lang].INTENTS[intent][0]
    cand = list(replies) + ON_TOPIC_REPLIES[lang].get(intent, [])
    return [x for x in cand if classify_topic(generate.fill(x, _SAMPLE_SLOTS[lang])) == topic]


def varied_conversations(n: int, seed: int | str = 0, p: float = 1.0, open_products: float = 0.0,
                         more_wordings: bool = False, on_topic_replies: bool = False,
                         wide_values: float = 0.0) -> list[dict]:
    """``n`` varied conversations, half English and half Chinese, as
    ``{"messages": [{"role", "content"}...], "slots": {...}, "language": ...}`` (turns normalised
    like the data pipeline's). Deterministic for ``seed``. ``more_wordings`` adds the wordings
    of ``templates_more.py`` to the other wordings a message may use; ``on_topic_replies`` keeps
    only replies filed under their intent's topic (``on_topic``); ``wide_values`` draws that share
    of the order ids, amounts and e-mails from the wide family of ``value_shapes.py``."""
    style = Style(p, open_products, more_wordings, on_topic_replies, wide_values)
    out = []
    for i in range(n):
        lang = "en" if i % 2 == 0 else "zh"
        r = random.Random(f"variety:{seed}:{i}")
        _, rows = generate.make_conversation(lang, r, None, style)
        msgs, slots = [], {}
        for user, reply, *_rest in rows:
            msgs += [{"role": "user", "content": normalize_turn(user)},
                     {"role": "assistant", "content": normalize_turn(reply)}]
            slots.update(_rest[-1])
        out.append({"messages": msgs, "slots": {k: normalize_turn(v) for k, v in slots.items()}, "language": lang})
    return out


LANGS = {"en": templates_en, "zh": templates_zh}
