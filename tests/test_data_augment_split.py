"""Augmentation (seeded, marked, slot-safe), back-translation through a fake translator,
and the hash split (deterministic, leak-free, augmented copies follow their source)."""
import json
import random

import pytest

from data_fixtures import write
from scratchgpt.data.augment import EDA_OPS, AugmentConfig, augment_conversation, back_translate, eda
from scratchgpt.data.pipeline import PrepareConfig, prepare, read_jsonl
from scratchgpt.data.records import Conversation, Message
from scratchgpt.data.split import assign_split, check_ratios
from scratchgpt.errors import ConfigError


def cs_conv(cid="c1", lang="en"):
    if lang == "en":
        msgs = [Message("user", "Hi, please help me check where my order #58213 for the Bluetooth Speaker is, it is late."),
                Message("assistant", "Order #58213 is out for delivery today.")]
        slots = {"order_id": "#58213", "product": "Bluetooth Speaker"}
    else:
        msgs = [Message("user", "你好，请帮忙查一下订单A12345的蓝牙音箱什么时候到，谢谢"),
                Message("assistant", "订单A12345今天派送。")]
        slots = {"order_id": "A12345", "product": "蓝牙音箱"}
    return Conversation(msgs, topic="shipping", language=lang, id=cid, meta={"slots": slots})


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_eda_copies_are_seeded_marked_and_keep_slots(lang):
    cfg = AugmentConfig(num_aug=8, alpha_sr=0.3, alpha_ri=0.3, alpha_rs=0.3, p_rd=0.3, seed=7)
    src = cs_conv(lang=lang)
    a = augment_conversation(src, cfg)
    b = augment_conversation(cs_conv(lang=lang), cfg)
    assert [c.to_dict() for c in a] == [c.to_dict() for c in b]          # same seed -> same copies
    assert a, "no augmented copy at all"
    for c in a:
        assert c.augmented_from == src.id and c.id.startswith(src.id + "#aug")
        assert c.meta["augment"] in EDA_OPS
        assert c.messages[0].content != src.messages[0].content          # the user turn changed
        assert c.messages[1].content == src.messages[1].content          # the reply (the target) did not
        for v in src.meta["slots"].values():
            assert v in c.messages[0].content                            # slots protected
    other = augment_conversation(src, AugmentConfig(num_aug=8, alpha_sr=0.3, alpha_ri=0.3,
                                                    alpha_rs=0.3, p_rd=0.3, seed=8))
    assert [c.to_dict() for c in other] != [c.to_dict() for c in a]


def test_each_eda_operation_does_what_it_says():
    rng = random.Random(0)
    cfg = AugmentConfig(alpha_sr=0.5, alpha_ri=0.5, alpha_rs=0.5, p_rd=0.5)
    text = "please help me fix this problem with my package today"
    words = text.split()
    sr = eda(text, "synonym_replacement", "en", rng, cfg).split()
    assert len(sr) >= len(words) and sr != words
    ri = eda(text, "random_insertion", "en", rng, cfg).split()
    assert len(ri) > len(words)
    rs = eda(text, "random_swap", "en", rng, cfg).split()
    assert sorted(rs) == sorted(words) and rs != words
    rd = eda(text, "random_deletion", "en", rng, cfg).split()
    assert 1 <= len(rd) < len(words) and all(w in words for w in rd)
    with pytest.raises(ValueError, match="unknown EDA operation"):
        eda(text, "shuffle_all", "en", rng, cfg)



def test_back_translation_goes_through_the_pivot_and_is_marked():
    calls = []

    def translator(text, src, tgt):
        calls.append((src, tgt))
        return text.upper() if tgt == "zh" else text.lower() + " (bt)"
    src = cs_conv()
    bt = back_translate(src, translator)
    assert calls == [("en", "zh"), ("zh", "en")]                  # one user turn, there and back
    assert bt.messages[0].content == src.messages[0].content.upper().lower() + " (bt)"
    assert bt.messages[1].content == src.messages[1].content      # replies untouched
    assert bt.augmented_from == src.id and bt.meta["augment"] == "back_translation via zh"


def test_split_is_deterministic_and_close_to_the_ratios():
    ratios = (0.8, 0.1, 0.1)
    ids = [f"conv-{i}" for i in range(4000)]
    a = [assign_split(i, ratios) for i in ids]
    assert a == [assign_split(i, ratios) for i in reversed(ids)][::-1]   # order does not matter
    for name, r in zip(("train", "val", "test"), ratios):
        assert abs(a.count(name) / len(ids) - r) < 0.03
    assert a != [assign_split(i, ratios, seed=1) for i in ids]
    assert {assign_split(i, (0.9, 0.1, 0.0)) for i in ids} == {"train", "val"}
    with pytest.raises(ConfigError):
        check_ratios((0.5, 0.6, 0.1))


def test_pipeline_split_is_leak_free_with_augmentation(tmp_path):
    rows = ["conversation_id,turn,context,reply,slots"]
    for i in range(120):
        rows.append(f'c{i},0,Please help me check my order #{10000 + i} today it is late,'
                    f'Order #{10000 + i} ships today.,"{{""order_id"": ""#{10000 + i}""}}"')
    held = ["context,reply", "Where is the refund for order #99999 please help,The refund for #99999 is sent.",
            "Please help me check my order #10003 today it is late,Order #10003 ships today."]
    write(tmp_path / "train.csv", "\n".join(rows) + "\n")
    write(tmp_path / "held.csv", "\n".join(held) + "\n")
    cfg = PrepareConfig(inputs=[tmp_path / "train.csv"], test_inputs=[tmp_path / "held.csv"],
                        ratios=(0.7, 0.15, 0.15), augment=AugmentConfig(num_aug=2, seed=3))
    rep = prepare(cfg, tmp_path / "out", progress=False)
    splits = {s: list(read_jsonl(tmp_path / "out" / f"{s}.jsonl")) for s in ("train", "val", "test")}
    keys = {s: {c.split_key for c in recs} for s, recs in splits.items()}
    assert not keys["train"] & keys["val"] and not keys["train"] & keys["test"] and not keys["val"] & keys["test"]
    augmented = [c for recs in splits.values() for c in recs if c.augmented_from]
    assert augmented and all(c in splits["train"] for c in augmented)
    assert all(c.augmented_from in keys["train"] for c in augmented)
    # the held-out row that duplicates training row c3 stays in test; c3 is dropped from training
    assert "c3" not in {c.id for recs in splits.values() for c in recs}
    assert rep.steps["dedup.exact"].dropped["exact duplicate"] == 1
    # the same run twice writes the same files
    prepare(cfg, tmp_path / "again", progress=False)
    for s in ("train", "val", "test"):
        assert (tmp_path / "out" / f"{s}.jsonl").read_bytes() == (tmp_path / "again" / f"{s}.jsonl").read_bytes()
    saved = json.loads((tmp_path / "out" / "report.json").read_text())
    assert saved["counts"]["records per split"] == rep.counts["records per split"]


def test_chunk_size_does_not_change_the_output(tmp_path):
    """Streaming: records pass through in chunks; dedup state spans chunks, so the result is
    the same whether a chunk holds one record or all of them."""
    rows = ["context,reply"] + [f"question number {i % 7} about my parcel and its tracking page,answer {i % 7}"
                                for i in range(30)]
    write(tmp_path / "a.csv", "\n".join(rows) + "\n")
    outs = []
    for chunk in (1, 4, 1000):
        cfg = PrepareConfig(inputs=[tmp_path / "a.csv"], ratios=(0.6, 0.2, 0.2), chunk_size=chunk)
        rep = prepare(cfg, tmp_path / f"o{chunk}", progress=False)
        outs.append([(tmp_path / f"o{chunk}" / f"{s}.jsonl").read_text() for s in ("train", "val", "test")])
        assert rep.steps["dedup.exact"].dropped["exact duplicate"] == 23
    assert outs[0] == outs[1] == outs[2]
