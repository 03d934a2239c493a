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
    for a, b in zip(value, new):
        assert (a.isdigit() and b.isdigit()) or (a.isupper() and b.isupper()) or a == b


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
