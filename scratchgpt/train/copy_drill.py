"""Copy drills: short synthetic texts in which random identifiers reappear later in the same text.

Copying a value the user gave ("SG-481736", "$35.49", "ben.t42@example.com") is an induction
skill: find where the current token occurred before and emit what followed it. Small models
learn it from data that *rewards* it densely; natural text and templated dialogues repeat a
random identifier once per conversation at most. A drill is a record that lists 2-4 random
values and then repeats them, in another order and with other words around them::

    Ticket 4: order K30418, paid $35.49, contact ben.t42@example.com.
    Summary: ben.t42@example.com paid $35.49 for order K30418.

Values are random in many formats (letter + 5 digits, "#" + 5 digits, "SG-" + 6 digits, bare
digits, other prefixes, amounts in $ and 元, e-mail users with digits), so the only way to
predict the repeat is to copy — never to remember. Mixed into the pretraining corpus by
``scratchgpt demo`` (``DemoConfig.copy_drills``); nothing from the test split is read.

``wide_formats`` (``DemoConfig.drill_wide_formats``) draws half of the values from formats
neither the drills above nor the dialogue templates use: lower-case and mixed ids with several
dashes, underscores, slashes or spaces inside, leading zeros, long ids; amounts with a
thousands comma, in € / EUR / USD / ¥; e-mail users with capitals, "+" tags, dashes and other
domains — so copying does not depend on a value looking like the ones seen in training.
"""
from __future__ import annotations

import random
import string

_LETTERS = "ABCDEFGHJKLMNPRSTUVWXYZ"
_USERS = ["ana", "ben", "chen", "dora", "eli", "fang", "gus", "hana", "ivan", "jun", "kim", "lena", "max",
          "nora", "oli", "pia", "qing", "rosa", "sam", "tao", "uma", "vic", "wei", "xia", "yan", "zoe"]


def _order_id(r: random.Random) -> str:
    k = r.randrange(7)
    if k == 0:
        return f"{r.choice(_LETTERS)}{r.randrange(10000, 100000)}"
    if k == 1:
        return f"#{r.randrange(10000, 100000)}"
    if k == 2:
        return f"SG-{r.randrange(100000, 1000000)}"
    if k == 3:
        return str(r.randrange(10000, 1000000))
    if k == 4:
        return f"{r.choice(_LETTERS)}{r.choice(_LETTERS)}-{r.randrange(1000, 100000)}"
    if k == 5:
        return f"{r.choice(_LETTERS)}{r.randrange(100, 1000)}-{r.randrange(100, 1000)}"
    return f"ORD{r.randrange(100000, 10000000)}"


def _wide_order_id(r: random.Random) -> str:
    d = lambda n: "".join(r.choice(string.digits) for _ in range(n))                   # noqa: E731
    L = lambda n: "".join(r.choice(_LETTERS) for _ in range(n))                        # noqa: E731
    mix = lambda n: "".join(r.choice(_LETTERS + string.digits) for _ in range(n))      # noqa: E731
    k = r.randrange(10)
    v = [lambda: f"{L(2)}-{d(r.randrange(3, 6))}-{L(1)}", lambda: f"{L(r.randrange(1, 3))}_{d(4)}",
         lambda: f"{r.randrange(2019, 2028)}/{d(2)}/{d(4)}", lambda: "0" * r.randrange(1, 4) + d(r.randrange(2, 5)),
         lambda: f"SG-{r.randrange(2019, 2028)}-{d(6)}", lambda: f"{d(3)} {d(3)} {d(3)}",
         lambda: mix(r.randrange(5, 9)), lambda: f"{mix(2)}-{mix(2)}-{mix(3)}",
         lambda: f"{L(1)}-{d(5)}-{L(1)}", lambda: d(r.randrange(1, 4))][k]()
    return v.lower() if r.random() < 0.4 else v


def _wide_amount(r: random.Random, zh: bool) -> str:
    v = r.randrange(0, 10000) + r.randrange(100) / 100
    k = r.randrange(6)
    if zh:
        return [f"{v:.2f}元", f"¥{v:.2f}", f"{int(v)}元", f"{v:,.2f}元", f"RMB {v:.2f}", f"{v:.1f}元"][k]
    return [f"${v:,.2f}", f"€{v:,.2f}", f"{v:.2f} EUR", f"{int(v)} USD", f"${v:.1f}", f"£{v:.2f}"][k]


def _wide_email(r: random.Random) -> str:
    from ..datasets.customer_service.variety import made_up_name
    user = made_up_name(r) + r.choice(["", ".", "_", "-", "+"]) + r.choice([made_up_name(r), "shop", "vip", ""])
    user += r.choice(["", str(r.randrange(1, 10000)), r.choice(string.ascii_lowercase)])
    dom = made_up_name(r) + "." + r.choice(["com", "io", "net", "co.uk", "cn", "de", "org"])
    if r.random() < 0.3:
        dom = r.choice(["mail.", "sub.", ""]) + "example." + r.choice(["com", "net", "io"])
    e = f"{user}@{dom}"
    return e.upper() if r.random() < 0.1 else (e[0].upper() + e[1:] if r.random() < 0.2 else e)


def _amount(r: random.Random, zh: bool) -> str:
    v = r.randrange(1, 1000) + r.choice([0.0, 0.5, 0.99, 0.49, r.randrange(100) / 100])
    return f"{v:.2f}元" if zh else f"${v:.2f}"


def _email(r: random.Random, made_up_names: bool = False) -> str:
    if made_up_names:   # users from no list: the model must copy them letter piece by letter piece
        from ..datasets.customer_service.variety import made_up_name
        user = made_up_name(r) + r.choice(["", ".", "_"]) + r.choice([made_up_name(r), ""])
    else:
        user = r.choice(_USERS) + r.choice(["", ".", "_"]) + r.choice([r.choice(_USERS), ""])
    user += str(r.randrange(1, 1000)) if r.random() < 0.7 else r.choice(string.ascii_lowercase)
    return f"{user}@{r.choice(['example.com', 'example.com', 'mail.example.com', 'example.org'])}"


_EN_HEAD = ["Ticket {n}:", "Note {n}.", "Case {n} -", "Record:", "Customer message:", "Log {n}:"]
_EN_FIELD = {"order": ["order {v}", "order number {v}", "ref {v}", "{v}"],
             "amount": ["paid {v}", "amount {v}", "charged {v}", "{v}"],
             "email": ["contact {v}", "email {v}", "{v}"]}
_EN_TAIL = ["Summary:", "Again:", "To confirm:", "Repeat:", "So:", "Reply:"]
_ZH_HEAD = ["工单{n}：", "记录：", "客户留言：", "备注{n}："]
_ZH_FIELD = {"order": ["订单{v}", "订单号{v}", "单号{v}", "{v}"],
             "amount": ["金额{v}", "付款{v}", "扣款{v}", "{v}"],
             "email": ["邮箱{v}", "联系{v}", "{v}"]}
_ZH_TAIL = ["确认：", "复述：", "总结：", "回复："]


def _value(r: random.Random, kind: str, zh: bool, made_up_names: bool, wide: bool) -> str:
    if wide and r.random() < 0.5:
        return _wide_order_id(r) if kind == "order" else _wide_amount(r, zh) if kind == "amount" else _wide_email(r)
    return _order_id(r) if kind == "order" else _amount(r, zh) if kind == "amount" else _email(r, made_up_names)


def copy_drill(r: random.Random, made_up_names: bool = False, wide_formats: bool = False) -> str:
    """One drill text: a record of random values, then the same values again. ``made_up_names``:
    e-mail users are made-up names (``variety.made_up_name``) instead of pairs from a list of 26;
    ``wide_formats``: half the values in the wide formats (module docstring)."""
    return copy_drill_values(r, made_up_names, wide_formats)[0]


def copy_drill_values(r: random.Random, made_up_names: bool = False, wide_formats: bool = False):
    """``copy_drill``'s text and the values its second line repeats."""
    zh = r.random() < 0.4
    kinds = r.sample(["order", "order", "amount", "email"], r.randrange(2, 5))
    vals = [(k, _value(r, k, zh, made_up_names, wide_formats)) for k in kinds]
    fields, head, tail, sep, end = ((_ZH_FIELD, _ZH_HEAD, _ZH_TAIL, "，", "。") if zh else
                                    (_EN_FIELD, _EN_HEAD, _EN_TAIL, ", ", "."))
    first = sep.join(r.choice(fields[k]).format(v=v) for k, v in vals)
    again = vals[:]
    r.shuffle(again)
    again = again[:r.randrange(1, len(again) + 1)]
    second = sep.join(r.choice(fields[k]).format(v=v) for k, v in again)
    gap = "" if zh else " "
    text = f"{r.choice(head).format(n=r.randrange(1, 100))}{gap}{first}{end}\n{r.choice(tail)}{gap}{second}{end}"
    return text, [v for _, v in again]


def copy_drills(n: int, seed: int = 0, made_up_names: bool = False, wide_formats: bool = False) -> list[str]:
    r = random.Random(f"copy-drill:{seed}")
    return [copy_drill(r, made_up_names, wide_formats) for _ in range(n)]
