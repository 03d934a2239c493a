"""Loaders on small fixtures, including malformed ones: every bad row is reported with its
file:line and skipped, the good rows around it still load."""
import json

import pytest

from data_fixtures import write
from scratchgpt.data.load_csv import load_csv
from scratchgpt.data.load_jsonl import load_jsonl
from scratchgpt.data.load_text import load_text
from scratchgpt.data.load_yaml import chatterbot_files, load_yaml
from scratchgpt.data.loaders import expand_inputs, load_records
from scratchgpt.data.records import Conversation, Document
from scratchgpt.data.report import Report
from scratchgpt.errors import DataError


def lines_of(report):
    return [(r["line"], r["reason"]) for r in report.malformed_rows]


def test_csv_single_turn_rows(tmp_path):
    p = write(tmp_path / "d.csv", "context,reply\nhello,hi there\n\"a, quoted\",\"multi\nline\"\n")
    rep = Report()
    convs = list(load_csv(p, rep))
    assert [[(m.role, m.content) for m in c.messages] for c in convs] == [
        [("user", "hello"), ("assistant", "hi there")],
        [("user", "a, quoted"), ("assistant", "multi\nline")]]
    assert [c.id for c in convs] == ["d.csv:2", "d.csv:3"]
    assert rep.malformed_count == 0


def test_csv_multi_turn_sorted_by_turn_with_system_role_and_slots(tmp_path):
    p = write(tmp_path / "m.csv",
              "conversation_id,turn,role,context,reply,topic,slots,intent\n"
              "c1,1,user,second q,second a,orders,\"{\"\"order_id\"\": \"\"A1\"\"}\",status\n"
              "c1,0,system,Be brief.,,orders,,\n"
              "c2,0,user,only q,only a,,,\n")
    rep = Report()
    convs = list(load_csv(p, rep))
    assert len(convs) == 2
    c1 = convs[0]
    assert [(m.role, m.content) for m in c1.messages] == [
        ("system", "Be brief."), ("user", "second q"), ("assistant", "second a")]
    assert c1.id == "c1" and c1.topic == "orders"
    assert c1.meta["slots"] == {"order_id": "A1"}
    assert c1.meta["exchanges"][1] == {"intent": "status", "slots": {"order_id": "A1"}}
    assert convs[1].topic is None and rep.malformed_count == 0


def test_csv_malformed_rows_reported_with_lines(tmp_path):
    p = write(tmp_path / "bad.csv",
              "conversation_id,turn,context,reply,slots\n"   # 1
              "a,0,fine,ok,\n"                                # 2
              "b,0,\"bad\"quote,x,\n"                         # 3 bad quoting
              "c,0,too,many,fields,here\n"                    # 4 wrong field count
              "d,zero,q,a,\n"                                 # 5 non-integer turn
              "e,0,q,a,{not json}\n"                          # 6 bad slots
              "f,0,q,a,\n"                                    # 7
              "a,1,back again,no,\n")                         # 8 id 'a' not contiguous
    rep = Report()
    convs = list(load_csv(p, rep))
    assert [c.id for c in convs] == ["a", "f"]
    got = lines_of(rep)
    assert [line for line, _ in got] == [3, 4, 5, 6, 8]
    assert "CSV parse error" in got[0][1]
    assert "expected 5 fields, got 6" in got[1][1]
    assert "not an integer" in got[2][1]
    assert "slots is not a JSON object" in got[3][1]
    assert "contiguous" in got[4][1]
    assert rep.malformed_count == 5 and rep.malformed_by_file[str(p)] == 5


def test_csv_missing_columns_and_empty_file(tmp_path):
    rep = Report()
    assert list(load_csv(write(tmp_path / "h.csv", "question,answer\nq,a\n"), rep)) == []
    assert list(load_csv(write(tmp_path / "e.csv", ""), rep)) == []
    assert rep.malformed_count == 2
    assert "lacks column(s) ['context', 'reply']" in rep.malformed_rows[0]["reason"]


def test_jsonl_chat_format_and_malformed_lines(tmp_path):
    rows = [
        json.dumps({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}],
                    "topic": "small_talk", "id": "x1"}),
        "{not json",
        json.dumps([1, 2]),
        json.dumps({"messages": [{"role": "wizard", "content": "hi"}]}),
        "",
        json.dumps({"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]}),
        json.dumps({"text": "a document"}),
        json.dumps({"messages": "not a list"}),
        json.dumps({"other": 1}),
    ]
    p = write(tmp_path / "c.jsonl", "\n".join(rows) + "\n")
    rep = Report()
    recs = list(load_jsonl(p, rep))
    assert [type(r).__name__ for r in recs] == ["Conversation", "Conversation", "Document"]
    assert recs[0].id == "x1" and recs[0].topic == "small_talk"
    assert [(m.role, m.content) for m in recs[1].messages] == [("user", "q"), ("assistant", "a")]
    assert recs[1].id == "c.jsonl:6"
    assert [line for line, _ in lines_of(rep)] == [2, 3, 4, 8, 9]
    assert "invalid JSON" in lines_of(rep)[0][1]
    assert "unknown role 'wizard'" in lines_of(rep)[2][1]


def test_yaml_chatterbot_shape_and_malformed(tmp_path):
    good = write(tmp_path / "english" / "food.yml",
                 "categories:\n- food\nconversations:\n- - Do you eat?\n  - yes\n  - Really?\n"
                 "- not a list\n- - q2\n  - 1.0\n- - q3\n  - {a: b}\n")
    rep = Report()
    convs = list(load_yaml(good, rep))
    assert len(convs) == 2
    assert [(m.role, m.content) for m in convs[0].messages] == [
        ("user", "Do you eat?"), ("assistant", "yes"), ("user", "Really?")]
    assert convs[1].messages[1].content == "1.0"   # scalars keep their text, not True/1.0
    assert convs[0].topic == "food" and convs[0].language == "en"
    assert [line for line, _ in lines_of(rep)] == [7, 10]

    rep = Report()
    assert list(load_yaml(write(tmp_path / "x" / "a.yml", "- just\n- a list\n"), rep)) == []
    assert list(load_yaml(write(tmp_path / "x" / "b.yml", "categories: [x]\nconversations: 3\n"), rep)) == []
    assert list(load_yaml(write(tmp_path / "x" / "c.yml", "conversations:\n  - [a, b\n  - c\n"), rep)) == []
    assert rep.malformed_count == 3
    assert [r["line"] for r in rep.malformed_rows[:2]] == [1, 2]
    assert "YAML syntax error" in rep.malformed_rows[2]["reason"]


def test_installed_chatterbot_corpus_loads_english_and_chinese():
    rep = Report()
    files = chatterbot_files(["english", "chinese"])
    convs = list(load_records(files, rep))
    assert len(convs) > 2000
    assert {c.language for c in convs} == {"en", "zh"}
    assert all(c.topic for c in convs)
    with pytest.raises(DataError, match="no language 'klingon'"):
        chatterbot_files(["klingon"])


def test_text_streams_in_paragraph_chunks(tmp_path):
    paras = [f"paragraph {i} " + "word " * 30 for i in range(20)]
    p = write(tmp_path / "t.txt", "\n\n".join(paras) + "\n")
    docs = list(load_text(p, Report(), max_chars=500))
    assert len(docs) > 3 and all(len(d.text) <= 1000 for d in docs)
    assert "".join(d.text for d in docs).split() == "\n\n".join(paras).split()
    assert docs[1].id == f"t.txt:{docs[1].source.rsplit(':', 1)[1]}"


def test_folder_and_auto_format(tmp_path):
    write(tmp_path / "in" / "a.csv", "context,reply\nq,a\n")
    write(tmp_path / "in" / "sub" / "b.jsonl", json.dumps({"text": "doc"}) + "\n")
    write(tmp_path / "in" / "notes.bin", "ignored")
    rep = Report()
    recs = list(load_records([tmp_path / "in"], rep))
    assert [type(r) for r in recs] == [Conversation, Document]
    assert rep.steps["load"].kept == 2
    with pytest.raises(DataError, match="no such file"):
        expand_inputs([tmp_path / "missing"])
    with pytest.raises(DataError, match="cannot tell the format"):
        list(load_records([tmp_path / "in" / "notes.bin"], rep))
