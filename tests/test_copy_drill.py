"""Copy drills: deterministic, and every value of the repeat line occurs in the record line."""
import re

from scratchgpt.train.copy_drill import copy_drills

VALUE = re.compile(r"[A-Za-z0-9._]+@[a-z.]+\.(?:com|org)|\$\d+\.\d\d|\d+\.\d\d元|[A-Z#]*-?[A-Z]*\d[\d-]*")


def test_drills_are_deterministic_and_repeat_their_values():
    a, b = copy_drills(200, seed=3), copy_drills(200, seed=3)
    assert a == b and copy_drills(200, seed=4) != a
    langs = set()
    for text in a:
        first, second = text.split("\n")
        langs.add("zh" if "：" in first else "en")
        vals = VALUE.findall(second)
        assert vals, text
        for v in vals:
            assert v in first, (v, text)
    assert langs == {"en", "zh"}
