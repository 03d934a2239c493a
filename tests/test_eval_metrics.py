"""ROUGE-L, BLEU and distinct-n against hand-computed values and brute-force definitions."""
import itertools
import math

from hypothesis import given
from hypothesis import strategies as st

from scratchgpt.train.evaluate import eval_turn, task_scores
from scratchgpt.train.text_metrics import corpus_bleu, distinct_n, lcs_length, metric_tokens, rouge_l


def lcs_brute(a, b):
    """Longest common subsequence by trying every subsequence of the shorter list."""
    short, long_ = (a, b) if len(a) <= len(b) else (b, a)
    for k in range(len(short), 0, -1):
        for idx in itertools.combinations(range(len(short)), k):
            sub = [short[i] for i in idx]
            it = iter(long_)
            if all(any(x == y for y in it) for x in sub):
                return k
    return 0


@given(st.lists(st.sampled_from("abc"), max_size=7), st.lists(st.sampled_from("abc"), max_size=7))
def test_lcs_matches_brute_force(a, b):
    assert lcs_length(a, b) == lcs_brute(a, b)


def test_rouge_l_hand_example():
    # LCS("the cat sat on the mat", "the cat on the mat") = 5; P = 5/6, R = 1; F1 = 10/11
    assert math.isclose(rouge_l("The cat sat on the mat.", "the cat on the mat"), 10 / 11)
    assert rouge_l("a b c", "a b c") == 1.0
    assert rouge_l("x y", "a b") == 0.0


def test_bleu_modified_unigram_precision_papineni():
    # Papineni et al.'s example: 7 x "the" against a reference with two "the" -> p1 = 2/7
    b = corpus_bleu(["the the the the the the the"], ["the cat is on the mat"], max_n=1, smooth=False)
    assert math.isclose(b, 2 / 7)


def test_bleu_hand_example_with_smoothing_and_brevity():
    c, r = "the cat sat on the mat", "the cat is on the mat"
    # matches/totals per n: 5/6, 3/5, 1/4, 0/3; smoothing adds 1 to n >= 2
    expected = math.exp((math.log(5 / 6) + math.log(4 / 6) + math.log(2 / 5) + math.log(1 / 4)) / 4)
    assert math.isclose(corpus_bleu([c], [r]), expected)
    assert corpus_bleu([c], [r], smooth=False) == 0.0
    # candidate shorter than reference: brevity penalty exp(1 - 6/3)
    short = corpus_bleu(["the cat is"], [r], max_n=1)
    assert math.isclose(short, math.exp(1 - 6 / 3))
    assert corpus_bleu([r], [r]) == 1.0


def test_distinct_n_and_chinese_tokens():
    assert metric_tokens("订单A12345已发货") == ["订", "单", "a12345", "已", "发", "货"]
    assert distinct_n(["a b a b"], 1) == 0.5
    assert math.isclose(distinct_n(["a b a b"], 2), 2 / 3)
    assert distinct_n([""], 2) == 0.0


def test_eval_turn_picks_the_turn_that_echoes_a_slot():
    conv = {"messages": [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "Hello! How can I help?"},
        {"role": "user", "content": "Where is order A12345?"},
        {"role": "assistant", "content": "Order A12345 has shipped."},
    ], "meta": {"slots": {"order_id": "A12345", "product": "lamp"}}}
    prompt, ref, need = eval_turn(conv)
    assert len(prompt) == 3 and ref == "Order A12345 has shipped." and need == ["A12345"]
    assert task_scores("Your order A12345 has shipped.", ref, need)["ok"]
    assert not task_scores("Your order A99999 has shipped.", ref, need)["slot_ok"]
    assert not task_scores("Please reset your password.", ref, need)["topic_ok"]


def test_breakdown_by_language_and_slot_type():
    from scratchgpt.train.evaluate import _scores, slot_type_scores
    rows = [
        {"language": "en", "required": ["A12345", "$5.00"], "required_types": ["order_id", "amount"],
         "reply": "Order A12345 was charged twice.", "slot_ok": False, "topic_ok": True, "ok": False},
        {"language": "zh", "required": ["B22222"], "required_types": ["order_id"],
         "reply": "订单B22222已发货", "slot_ok": True, "topic_ok": True, "ok": True},
        {"language": "zh", "required": [], "required_types": [], "reply": "你好", "slot_ok": True,
         "topic_ok": False, "ok": False},
    ]
    by = slot_type_scores(rows)
    assert by["order_id"] == {"n_values": 2, "echoed": 1.0, "n_conversations": 2, "task_accuracy": 0.5}
    assert by["amount"] == {"n_values": 1, "echoed": 0.0, "n_conversations": 1, "task_accuracy": 0.0}
    zh = _scores(rows[1:])
    assert zh["task_accuracy"] == 0.5 and zh["slot_accuracy"] == 1.0 and zh["n_with_slots"] == 1


def test_paraphrase_set_is_well_formed_and_not_in_the_training_data():
    from scratchgpt.data.annotate import classify_topic
    from scratchgpt.train.evaluate import PARAPHRASE_CSV, paraphrase_set
    convs = paraphrase_set()
    assert len(convs) >= 60 and {c.language for c in convs} == {"en", "zh"}
    n_slots = 0
    for c in convs:
        prompt, ref, need = eval_turn(c)
        n_slots += bool(need)
        for v in (c.meta.get("slots") or {}).values():
            assert v in ref or not need
        # the reference is what the model is compared with: it must carry the labelled topic
        turn = len(prompt) // 2
        assert classify_topic(ref) == c.meta["exchanges"][turn]["turn_topic"], ref
    assert n_slots >= 0.8 * len(convs)
    train = (PARAPHRASE_CSV.parent / "train.csv")
    if train.is_file():  # no user turn of the paraphrase set is a training user turn
        text = train.read_text(encoding="utf-8")
        for c in convs:
            for m in c.messages:
                if m.role == "user" and len(m.content) > 12:
                    assert m.content not in text, m.content


def test_values_dev_set_requires_every_value_and_scores_its_own_references():
    """values_dev.csv: every conversation requires all its (unusual-format) values, the reference
    carries its labelled topic, and a reply equal to the reference scores 100 %."""
    from scratchgpt.data.annotate import classify_topic
    from scratchgpt.train.evaluate import values_dev_set
    convs = values_dev_set()
    assert len(convs) == 40 and {c.language for c in convs} == {"en", "zh"}
    for c in convs:
        prompt, ref, need = eval_turn(c)
        assert sorted(need) == sorted(c.meta["slots"].values()), c.conversation_id
        assert classify_topic(ref) == c.meta["exchanges"][0]["turn_topic"], ref
        assert task_scores(ref, ref, need)["ok"]


def test_dev_set_is_well_formed_and_not_in_the_training_data():
    """dev.csv (data9's development set): English, Chinese and mixed, every topic, references
    carry their labelled topic and the values they must echo, no user turn is a training turn or
    a paraphrase-set turn."""
    import re

    from scratchgpt.data.annotate import TOPICS, classify_topic
    from scratchgpt.train.evaluate import DEV_CSV, dev_set, paraphrase_set
    convs = dev_set()
    assert len(convs) >= 60 and {c.language for c in convs} == {"en", "zh"}
    assert {c.topic for c in convs} == set(TOPICS[:-1])
    users = [m.content for c in convs for m in c.messages if m.role == "user"]
    mixed = [u for u in users if re.search(r"[\u4e00-\u9fff]", u) and re.search(r"[A-Za-z]{4,}", u)]
    assert len(mixed) >= 5
    n_slots = 0
    for c in convs:
        prompt, ref, need = eval_turn(c)
        n_slots += bool(need)
        assert classify_topic(ref) == c.meta["exchanges"][len(prompt) // 2]["turn_topic"], ref
    assert n_slots >= 0.75 * len(convs)
    para = {m.content for c in paraphrase_set() for m in c.messages if m.role == "user"}
    train = (DEV_CSV.parent / "train.csv").read_text(encoding="utf-8")
    for u in users:
        assert u not in para and (len(u) <= 12 or u not in train), u


def test_blind_paraphrase_set_scores_its_own_references_and_declares_its_slots():
    """paraphrase_blind.csv: ids unique, languages as declared, every declared slot value said by
    the user and repeated in its reply, the evaluated turn requires exactly the first declared
    slots, and a reply equal to the reference scores 100 % (slot echo and topic label)."""
    import csv

    from scratchgpt.data.annotate import classify_topic
    from scratchgpt.data.language import detect_language
    from scratchgpt.data.textnorm import normalize_turn
    from scratchgpt.train.evaluate import PARAPHRASE_BLIND_CSV, PARAPHRASE_CSV, paraphrase_blind_set
    with PARAPHRASE_BLIND_CSV.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    ids = [r["conversation_id"] for r in rows if r["turn"] == "0"]
    assert len(ids) == len(set(ids)) >= 100
    assert all(i.startswith(f"cs-blind-{r}-") for i, r in zip(ids, [r["language"] for r in rows if r["turn"] == "0"]))
    convs = paraphrase_blind_set()
    assert [c.id for c in convs] == ids                      # the loader dropped nothing
    langs = [c.language for c in convs]
    assert 0.5 <= langs.count("en") / len(langs) <= 0.7 and set(langs) == {"en", "zh"}
    n_slots, types = 0, set()
    for c in convs:
        assert detect_language(" ".join(m.content for m in c.messages)) == c.language, c.id
        ex = c.meta["exchanges"]
        users = [m.content for m in c.messages if m.role == "user"]
        replies = [m.content for m in c.messages if m.role == "assistant"]
        assert len(ex) == len(users) == len(replies)
        assert c.topic in {e["turn_topic"] for e in ex}, c.id
        for k, (e, reply) in enumerate(zip(ex, replies)):
            assert classify_topic(reply) == e["turn_topic"], (c.id, k, reply)
            said = " ".join(users[:k + 1])
            for v in e.get("slots", {}).values():
                v = normalize_turn(v)                            # as paraphrase_set normalises the turns
                assert v in reply and v in said, (c.id, k, v)
        prompt, ref, need = eval_turn(c)
        first = next((k for k, e in enumerate(ex) if e.get("slots")), None)
        if first is None:
            assert need == [] and ref == replies[0]
        else:                                    # the turn meant to be evaluated is, with all its values
            assert ref == replies[first], c.id
            assert sorted(need) == sorted(normalize_turn(v) for v in ex[first]["slots"].values()), c.id
            n_slots += 1
            types |= set(ex[first]["slots"])
        assert task_scores(ref, ref, need) == {"slot_ok": True, "topic_ok": True, "ok": True}
        # and a reply that drops a required value fails
        for v in need:
            assert not task_scores(ref.replace(v, ""), ref, need)["slot_ok"]
    assert n_slots >= 0.8 * len(convs) and types == {"order_id", "product", "amount", "email"}
    assert {c.topic for c in convs} == {"orders", "shipping", "returns_refunds", "account", "payment", "product",
                                        "complaint", "small_talk"}
    for other in (PARAPHRASE_CSV.parent / "train.csv", PARAPHRASE_CSV.parent / "test.csv", PARAPHRASE_CSV):
        if other.is_file():  # no user turn of the blind set is a user turn of the other sets
            with other.open(encoding="utf-8", newline="") as f:
                seen = {normalize_turn(r["context"]).lower() for r in csv.DictReader(f)}
            for c in convs:
                for m in c.messages:
                    if m.role == "user" and len(m.content) > 12:
                        assert m.content.lower() not in seen, (other.name, m.content)
