"""Wide value shapes (datasets/customer_service/value_shapes.py): deterministic, really varied,
copied exactly by the varied conversations and by slot resampling, and off by default."""
import random
import re

from scratchgpt.datasets.customer_service.value_shapes import wide_amount, wide_email, wide_order_id
from scratchgpt.datasets.customer_service.variety import varied_conversations


def test_wide_order_ids_vary_in_length_separator_and_case():
    r = random.Random(0)
    ids = [wide_order_id(r) for _ in range(500)]
    assert ids == [wide_order_id(x) for x in [random.Random(0)] for _ in range(500)]
    assert all(4 <= len(v.lstrip("#")) <= 18 and sum(ch.isdigit() for ch in v) >= 2 for v in ids)
    assert all(not re.search(r"[-_/. ]$", v) for v in ids)
    assert len({len(v) for v in ids}) >= 12                          # no typical length
    for sep in "-_/.":
        assert any(sep in v for v in ids), sep
    assert any(re.fullmatch(r"\d+", v) for v in ids) and any(re.fullmatch(r"[A-Z]+\d+", v) for v in ids)
    assert any(v == v.lower() and re.search(r"[a-z]", v) for v in ids)
    assert any(re.search(r"[a-z]", v) and re.search(r"[A-Z]", v) for v in ids)     # mixed case
    assert len(set(ids)) > 490


def test_wide_amounts_and_emails_vary():
    r = random.Random(1)
    en = [wide_amount(r, "en") for _ in range(300)]
    zh = [wide_amount(r, "zh") for _ in range(300)]
    assert any("," in a for a in en) and any(a.startswith("€") for a in en) and any("USD" in a for a in en)
    assert any(re.fullmatch(r"\$\d+", a) for a in en)                 # no decimals
    assert sum("元" in a or "¥" in a or "RMB" in a for a in zh) > 150
    emails = [wide_email(r) for _ in range(300)]
    assert all(e.count("@") == 1 and "." in e.split("@")[1] for e in emails)
    domains = {e.split("@")[1].lower() for e in emails}
    assert len(domains) > 100 and "gmail.com" in domains
    assert any("+" in e for e in emails) and any(re.search(r"[A-Z]", e) for e in emails)


def test_varied_conversations_echo_wide_values_and_default_is_unchanged():
    plain = varied_conversations(200, seed=7)
    assert plain == varied_conversations(200, seed=7, wide_values=0.0)
    wide = varied_conversations(200, seed=7, wide_values=1.0)
    assert wide == varied_conversations(200, seed=7, wide_values=1.0) and wide != plain
    n = 0
    for c in wide:
        users = " ".join(m["content"] for m in c["messages"] if m["role"] == "user")
        replies = " ".join(m["content"] for m in c["messages"] if m["role"] == "assistant")
        for name, v in c["slots"].items():
            assert v in users and v in replies, (name, v, c["messages"])
            n += name != "product"
    assert n > 50


def test_slot_resampling_draws_wide_values_only_when_asked():
    from scratchgpt.data.records import Conversation, Message
    from scratchgpt.train.slot_augment import resample_slots
    conv = Conversation([Message("user", "Refund $12.50 for order SG-204871 to ana3@example.com"),
                         Message("assistant", "Order SG-204871: $12.50 goes back, mail to ana3@example.com.")],
                        language="en",
                        meta={"slots": {"order_id": "SG-204871", "amount": "$12.50", "email": "ana3@example.com"}})
    same = [resample_slots(conv, {}, random.Random(s))[1] for s in range(40)]
    assert same == [resample_slots(conv, {}, random.Random(s), 0.0)[1] for s in range(40)]
    assert all(re.fullmatch(r"[A-Z]{2}-\d{6}", v["order_id"]) for v in same)
    wide = [resample_slots(conv, {}, random.Random(s), 1.0) for s in range(40)]
    assert sum(not re.fullmatch(r"[A-Z]{2}-\d{6}", v["order_id"]) for _, v in wide) > 30
    for msgs, v in wide:
        for val in v.values():
            assert val in msgs[0]["content"] and val in msgs[1]["content"]
