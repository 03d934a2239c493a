"""Cleaning, dedup, language and annotation properties."""
import random

from hypothesis import given
from hypothesis import strategies as st

from scratchgpt.data.annotate import TOPICS, annotate, classify_topic, mentions_topic
from scratchgpt.data.clean import CleanConfig, Cleaner
from scratchgpt.data.dedup import MinHashLSH
from scratchgpt.data.language import detect_language
from scratchgpt.data.records import Conversation, Document, Message
from scratchgpt.data.report import Report
from scratchgpt.data.textnorm import normalize_document, normalize_turn

messy_text = st.text(alphabet=st.sampled_from(
    list("ab Zé\u0301\t\n\r\x00\x07\u200b\u3000\u00a0，？！ＡＢ１２你好。 ") + ["\ufeff", "e"]), max_size=40)


@given(messy_text)
def test_normalizers_are_idempotent(s):
    assert normalize_turn(normalize_turn(s)) == normalize_turn(s)
    assert normalize_document(normalize_document(s)) == normalize_document(s)


def test_normalize_turn_examples():
    assert normalize_turn("  Hello\t\x00world\u200b ！ ") == "Hello world !"
    assert normalize_turn("ＡＢＣ１２３，你好？") == "ABC123,你好?"
    assert normalize_turn("e\x00\u0301") == "\u00e9"   # control char removed before NFKC composes
    assert normalize_document("a  b\r\n\r\n\r\n\r\nc \n") == "a b\n\nc"


def conv(*turns, cid="c", topic=None):
    roles = ["user", "assistant"]
    return Conversation([Message(roles[i % 2], t) for i, t in enumerate(turns)], id=cid, topic=topic)


@given(st.lists(st.tuples(messy_text, messy_text), min_size=1, max_size=6))
def test_cleaning_twice_changes_nothing(pairs):
    convs = [conv(q, a, cid=str(i)) for i, (q, a) in enumerate(pairs)]
    first = [c for c in (Cleaner(CleanConfig(min_chars=1)).clean(c) for c in convs) if c is not None]
    second = [c for c in (Cleaner(CleanConfig(min_chars=1)).clean(c) for c in first) if c is not None]
    assert [c.to_dict() for c in second] == [c.to_dict() for c in first]


def test_turn_and_structure_drops_are_counted():
    rep = Report()
    cl = Cleaner(CleanConfig(), rep)
    kept = [cl.clean(c) for c in [
        conv("hi", "NaN", "  ", ""),      # NA / blank replies -> no assistant -> dropped
        conv("q", "\u200b\x00", "q2", "a2"),  # reply empty after normalization: turn dropped
        Conversation([Message("assistant", "unprompted")], id="z"),
        conv("x" * 3000, "a"),
    ]]
    assert kept[0] is None and kept[2] is None and kept[3] is None
    assert [m.content for m in kept[1].messages] == ["q", "q2", "a2"]
    t = rep.steps["clean.turns"]
    assert t.dropped["empty/NA assistant turn"] == 2 and t.dropped["empty/NA user turn"] == 1
    assert t.dropped["assistant turn empty after normalization"] == 1
    s = rep.steps["clean.structure"]
    assert s.dropped["no assistant reply"] == 1
    assert s.dropped["assistant reply without a user turn before it"] == 1
    assert rep.steps["clean.length"].dropped["a turn longer than 2000 chars"] == 1


@given(st.lists(st.integers(0, 5), min_size=1, max_size=30), st.randoms(use_true_random=False))
def test_exact_dedup_keeps_exactly_one_per_group(groups, rnd):
    texts = [f"question {g}" for g in groups]
    variants = [t if rnd.random() < 0.5 else "  " + t.upper() + " " for t in texts]  # same after normalization+casefold
    convs = [conv(v, "answer", cid=str(i)) for i, v in enumerate(variants)]
    rep = Report()
    cl = Cleaner(CleanConfig(near_dedup=False), rep)
    kept = [c for c in (cl.clean(c) for c in convs) if c is not None]
    kept_groups = [int(c.messages[0].content.split()[1]) for c in kept]
    assert sorted(kept_groups) == sorted(set(groups))
    # the FIRST member of each group is the one kept
    assert [c.id for c in kept] == [str(groups.index(g)) for g in kept_groups]
    assert rep.steps["dedup.exact"].dropped["exact duplicate"] == len(groups) - len(set(groups))


def test_near_dup_catches_a_one_character_edit():
    base = "My order A12345 has not arrived yet and the tracking page shows no update since Monday."
    rnd = random.Random(0)
    caught = 0
    for trial in range(20):
        i = rnd.randrange(len(base))
        edited = base[:i] + rnd.choice("xyzqk") + base[i + 1:]
        cl = Cleaner(CleanConfig(seed=trial))
        assert cl.clean(conv(base, "We are checking.", cid="a")) is not None
        caught += cl.clean(conv(edited, "We are checking.", cid="b")) is None
    assert caught == 20


def test_near_dup_keeps_different_texts():
    cl = Cleaner(CleanConfig())
    a = conv("How long does delivery take for an international parcel to Canada?", "About ten days.", cid="a")
    b = conv("Can I change the e-mail address on my account to a new one please?", "Yes, in Settings.", cid="b")
    assert cl.clean(a) is not None and cl.clean(b) is not None


def test_minhash_estimate_tracks_jaccard():
    lsh = MinHashLSH(num_perm=256, bands=32, shingle_size=3)
    a, b = "abcdefghijklmnopqrstuvwxyz0123", "abcdefghijklmnopqrstuvwxyzABCD"
    sa, sb = lsh.signature(a), lsh.signature(b)
    from scratchgpt.data.dedup import shingles
    A, B = shingles(a.lower(), 3), shingles(b.lower(), 3)
    true_j = len(A & B) / len(A | B)
    assert abs(float((sa == sb).mean()) - true_j) < 0.1


def test_language_by_script():
    assert detect_language("Where is my order?") == "en"
    assert detect_language("我的订单到哪了？") == "zh"
    assert detect_language("我的 Bluetooth Speaker 订单 A12345 还没到") == "zh"
    assert detect_language("こんにちは、元気ですか") == "other"
    assert detect_language("Привет, как дела?") == "other"
    assert detect_language("12345 !!") == "unknown"


def test_language_filter_drops_with_reason():
    rep = Report()
    cl = Cleaner(CleanConfig(languages=("en",)), rep)
    assert cl.clean(conv("你好吗", "很好")) is None
    assert rep.steps["clean.language"].dropped["language zh not in ['en']"] == 1


def test_documents_are_cleaned_and_deduplicated():
    rep = Report()
    cl = Cleaner(CleanConfig(), rep)
    d1 = cl.clean(Document("Line one.\r\n\r\n\r\nLine\t two.\x00", id="d1"))
    assert d1.text == "Line one.\n\nLine two." and d1.language == "en"
    assert cl.clean(Document("line one.\n\nline two.", id="d2")) is None


def test_keyword_topics_and_annotation():
    assert classify_topic("I want a refund for my broken kettle, please return it") == "returns_refunds"
    assert classify_topic("我忘记密码了，登录不了账号") == "account"
    assert classify_topic("What a lovely evening") == "other"
    assert mentions_topic("The tracking link is in your email", "shipping")
    assert not mentions_topic("The tracking link is in your email", "payment")
    rep = Report()
    c = annotate(conv("my card was charged twice", "we will refund the payment"), rep)
    assert c.topic == "payment" and c.topic in TOPICS and c.language == "en"
    c2 = annotate(conv("hi", "hello", topic="greetings"), rep)
    assert c2.topic == "greetings"  # the source's label wins
    assert rep.steps["annotate"].modified == {"topic from keywords": 1, "topic from source": 1}
