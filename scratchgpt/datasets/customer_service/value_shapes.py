"""Slot values in a wide family of shapes, for training conversations.

The dialogue templates write order numbers in three shapes ("A12345", "#58213", "SG-204871") and
``variety.Style`` in about a dozen; a model fine-tuned on them starts copying a value the user
wrote and then *finishes* it in a shape it has learned ("SG-2026-000451" -> "SG-20260051",
"000417" -> "0041771"; chapters/ch5.md, fourth round). These generators draw every value from
a family built out of parts, so no length, separator or prefix is typical and the only way to
write the value back is to copy it to its end:

* order ids: 1-4 segments of digits (1-10, leading zeros allowed), letters (1-4, or a prefix word
  such as "ORD"), a mix of both, or a year, joined by one separator ("-", "", "_", "/", ".")
  or by different ones (a space only between digit groups: "482 119 07"); upper, lower or mixed
  case; sometimes a leading "#";
* amounts: 0.5 to 20 000 with 0, 1 or 2 decimals, with or without a thousands comma, in many
  currency spellings before or after the number ("$", "USD", "€", "EUR", "£", "¥", "RMB", "元",
  "块", "CAD", ...);
* e-mails: users made of 1-3 made-up names joined by ".", "_", "-" or nothing, with digits, a
  "+tag" or capitals; domains made up (any of a dozen endings), sub-domains, or common mail
  providers.

Deterministic for the ``random.Random`` passed in. Used by ``variety.Style(wide_values=...)`` and
by slot resampling (``train/slot_augment.resample_slots(..., wide=...)``); nothing here reads an
evaluation set.
"""
from __future__ import annotations

import random
import string

_UPPER = string.ascii_uppercase
_PREFIX_WORDS = ["ORD", "PO", "SO", "NO", "INV", "REF", "CS", "TX", "WO", "RMA", "OD", "CN", "US", "EU", "JD",
                 "TB", "AMZ", "SHOP", "ID", "SN"]
_SEPARATORS = ["-", "-", "-", "", "", "_", "/", "."]
_TLDS = ["com", "com", "net", "org", "io", "cn", "co.uk", "de", "com.cn", "me", "co", "edu", "info", "shop"]
_PROVIDERS = ["gmail.com", "outlook.com", "hotmail.com", "yahoo.com", "qq.com", "163.com", "126.com",
              "icloud.com", "proton.me", "foxmail.com", "sina.com", "live.cn"]
_ONSETS = ["b", "c", "d", "f", "g", "h", "j", "k", "l", "m", "n", "p", "r", "s", "t", "v", "w", "y", "z",
           "ch", "sh", "zh", "th", "br", "st", "x", "q"]
_VOWELS = ["a", "e", "i", "o", "u", "ai", "ao", "ei", "ia", "ou", "an", "en", "in", "on", "ang", "ing"]


def made_up_name(r: random.Random) -> str:
    """A pronounceable lower-case name of 1-3 syllables ("mira", "tokshan"): e-mail users that
    look like names but come from no list a model could learn."""
    return "".join(r.choice(_ONSETS) + r.choice(_VOWELS) for _ in range(r.choice([1, 2, 2, 3])))


def _digits(r: random.Random, n: int) -> str:
    return "".join(r.choice(string.digits) for _ in range(n))


def _segment(r: random.Random, kind: str) -> str:
    if kind == "D":
        return _digits(r, r.choice([1, 2, 3, 3, 4, 4, 4, 5, 5, 6, 6, 7, 8, 9, 10]))
    if kind == "L":
        if r.random() < 0.3:
            return r.choice(_PREFIX_WORDS)
        return "".join(r.choice(_UPPER) for _ in range(r.choice([1, 1, 2, 2, 3, 4])))
    if kind == "Y":
        return str(r.randrange(2018, 2031))
    return "".join(r.choice(_UPPER + string.digits) for _ in range(r.choice([3, 4, 5, 6, 7, 8])))


def wide_order_id(r: random.Random) -> str:
    """An order id of 1-4 parts: 4-18 characters with at least 2 digits, never ending in a separator."""
    while True:
        n = r.choice([1, 1, 2, 2, 2, 3, 3, 4])
        kinds = [r.choice("DDDLLM") for _ in range(n)]
        if n > 1 and r.random() < 0.15:
            kinds[r.randrange(1, n)] = "Y"
        parts = [_segment(r, k) for k in kinds]
        sep = r.choice(_SEPARATORS)
        mixed_seps = r.random() < 0.15
        if all(k == "D" for k in kinds) and n > 1 and r.random() < 0.15:
            sep, mixed_seps = " ", False
        v = parts[0]
        for p in parts[1:]:
            v += (r.choice(_SEPARATORS) if mixed_seps else sep) + p
        if 4 <= len(v) <= 18 and sum(ch.isdigit() for ch in v) >= 2:
            break
    k = r.random()
    if k < 0.2:
        v = v.lower()
    elif k < 0.25:
        v = "".join(ch.lower() if r.random() < 0.5 else ch for ch in v)
    if r.random() < 0.08:
        v = "#" + v
    return v


def _number(r: random.Random) -> str:
    top = r.choice([10, 100, 100, 1000, 1000, 5000, 20000])
    v = r.randrange(50, top * 100) / 100
    places = r.choice([0, 1, 2, 2, 2])
    comma = v >= 1000 and r.random() < 0.6
    return f"{v:,.{places}f}" if comma else f"{v:.{places}f}"


def wide_amount(r: random.Random, lang: str) -> str:
    """A money amount in one of many spellings; Chinese conversations favour 元 / ¥ / RMB."""
    x = _number(r)
    en = [f"${x}", f"${x}", f"USD {x}", f"{x} USD", f"US${x}", f"€{x}", f"{x} EUR", f"EUR {x}", f"£{x}",
          f"{x} GBP", f"CAD {x}", f"A${x}", f"¥{x}", f"{x} RMB", f"{x} dollars"]
    zh = [f"{x}元", f"{x}元", f"¥{x}", f"¥{x}", f"RMB {x}", f"RMB{x}", f"{x}块", f"人民币{x}元", f"{x} 元",
          f"{x}美元", f"${x}", f"€{x}", f"CNY {x}", f"{x}港币"]
    return r.choice(zh if lang == "zh" else en)


def wide_email(r: random.Random) -> str:
    """An e-mail address: made-up users and domains, or common providers."""
    names = [made_up_name(r) for _ in range(r.choice([1, 1, 2, 2, 3]))]
    user = names[0]
    for nm in names[1:]:
        user += r.choice([".", ".", "_", "-", ""]) + (nm if r.random() < 0.7 else nm[0])
    k = r.random()
    if k < 0.5:
        user += _digits(r, r.choice([1, 2, 2, 3, 4]))
    elif k < 0.6:
        user = _digits(r, r.choice([5, 6, 8, 9, 10]))       # QQ-style numeric users
    if r.random() < 0.08:
        user += "+" + r.choice(["shop", "orders", "vip", made_up_name(r)])
    k = r.random()
    if k < 0.4:
        dom = r.choice(_PROVIDERS)
    elif k < 0.85:
        dom = made_up_name(r) + "." + r.choice(_TLDS)
    else:
        dom = r.choice(["mail.", "mx.", "corp.", "my."]) + made_up_name(r) + "." + r.choice(_TLDS)
    k = r.random()
    if k < 0.12:
        user = user[:1].upper() + user[1:]
    elif k < 0.15:
        return f"{user}@{dom}".upper()
    return f"{user}@{dom}"


def wide_value(name: str, r: random.Random, lang: str) -> str | None:
    """A wide-shape value for slot ``name`` ("order_id", "amount", "email"); None for other slots."""
    if name == "order_id":
        return wide_order_id(r)
    if name == "amount":
        return wide_amount(r, lang)
    if name == "email":
        return wide_email(r)
    return None
