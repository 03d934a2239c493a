"""Slot resampling for SFT: every occurrence replaced, shapes kept, pools per language, seeded."""
import random
import re

from hypothesis import given
from hypothesis import strategies as st

from scratchgpt.data.records import Conversation, Message
from scratchgpt.train.slot_augment import _reshape, resample_slots, slot_pools


def conv(user, reply, slots, lang="en"):
    return Conversation([Message("user", user), Message("assistant", reply)], language=lang,
                        meta={"slots": slots}, id=user)


@given(st.text(alphabet="AZ09#$.-@xy", min_size=1, max_size=12), st.integers(0, 1000))
def test_reshape_keeps_the_shape(value, seed):
    new = _reshape(value, random.Random(seed))
    assert len(new) == len(value)
    user = "@" in value
    for a, b in zip(value, new):
        user = user and a != "@"
        assert (a.isdigit() and b.isdigit()) or (a.isupper() and b.isupper()) or a == b or \
            (user and a.islower() and b.islower())


def test_email_users_are_redrawn_domains_kept():
    new = {_reshape("anna.lee7@example.com", random.Random(s)) for s in range(20)}
    assert len({v.split("@")[0] for v in new}) == 20 and all(v.endswith("@example.com") for v in new)
    assert all(len(v) == len("anna.lee7@example.com") and v[4] == "." for v in new)


def test_every_occurrence_is_replaced_and_pools_follow_language():
    convs = [conv("Where is order SG-123456 for the desk lamp?", "Order SG-123456 (desk lamp) has shipped.",
                  {"order_id": "SG-123456", "product": "desk lamp"}),
             conv("Is the blender in stock?", "Yes, the blender is in stock.", {"product": "blender"}),
             conv("台灯有货吗？", "台灯有货。", {"product": "台灯"}, lang="zh")]
    pools = slot_pools(convs)
    assert pools[("product", "en")] == ["blender", "desk lamp"] and pools[("product", "zh")] == ["台灯"]
    msgs, new = resample_slots(convs[0], pools, random.Random(0))
    assert new["product"] == "blender" and re.fullmatch(r"[A-Z]{2}-\d{6}", new["order_id"])
    for m in msgs:
        assert "SG-123456" not in m["content"] and "desk lamp" not in m["content"]
    assert msgs[0]["content"].count(new["order_id"]) == 1 and msgs[1]["content"].count(new["order_id"]) == 1
    assert msgs[1]["content"] == f"Order {new['order_id']} (blender) has shipped."
    # the only Chinese product has no alternative: it stays
    assert resample_slots(convs[2], pools, random.Random(0))[1] == {"product": "台灯"}
    # seeded
    assert resample_slots(convs[0], pools, random.Random(5)) == resample_slots(convs[0], pools, random.Random(5))


def test_rare_slot_types_get_more_copies():
    from scratchgpt.train.slot_augment import copies_per_conversation
    convs = [conv(f"order A1234{i}?", f"Order A1234{i}.", {"order_id": f"A1234{i}"}) for i in range(9)]
    convs.append(conv("charged $5.00 twice", "Refunded $5.00.", {"amount": "$5.00"}))
    convs.append(conv("hi", "hello", {}))
    assert copies_per_conversation(convs, 3) == [3] * 10 + [0]
    assert copies_per_conversation(convs, 3, max_boost=4) == [3] * 9 + [12, 0]   # 9 / 1 capped at 4
    assert copies_per_conversation(convs, 3, max_boost=20) == [3] * 9 + [27, 0]


def test_copied_reply_tokens_get_the_weight():
    from scratchgpt.train.slot_augment import weight_copied_tokens
    # ids: user turn (mask 0) then the reply (mask 1); 7 and 9 are "values" the user gave,
    # 5 is a word every reply says (common: in > max_share of the examples' replies)
    common = [([1, 5, 2], [0, 1, 1])] * 30
    ex = [([3, 7, 9, 5, 4, 5, 7, 9, 8, 6], [0, 0, 0, 0, 1, 1, 1, 1, 1, 1])] + common
    out = weight_copied_tokens(ex, 3, max_share=0.1)
    assert out[0][1] == [0, 0, 0, 0, 1, 1, 3, 3, 1, 1]
    assert out[1:] == common and ex[0][1] == [0, 0, 0, 0, 1, 1, 1, 1, 1, 1]   # input unchanged
    import pytest
    from scratchgpt.errors import DataError
    with pytest.raises(DataError):
        weight_copied_tokens(ex, 0)
