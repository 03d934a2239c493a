"""`scratchgpt data ...` through scratchgpt.cli.main, and the chapter's --quick run."""
import json

from data_fixtures import write
from scratchgpt.cli import main


def test_prepare_user_files_prints_and_writes_report(tmp_path, capsys):
    write(tmp_path / "in" / "a.csv", "context,reply\nWhere is my order A1?,Order A1 ships today.\n"
                                     "Where is my order A1?,Order A1 ships today.\n\"bad\"q,x\n")
    write(tmp_path / "in" / "b.jsonl", json.dumps({"messages": [{"role": "user", "content": "你好"},
                                                                {"role": "assistant", "content": "您好！"}]}) + "\n{oops\n")
    out = tmp_path / "out"
    code = main(["data", "prepare", "--input", str(tmp_path / "in"), "--out", str(out), "--no-progress",
                 "--ratios", "1,0,0"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "exact duplicate: 1" in printed and "malformed input rows: 2" in printed
    rep = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert rep["malformed"]["count"] == 2
    assert sorted(r["line"] for r in rep["malformed"]["rows"]) == [2, 4]
    assert rep["counts"]["records per split"] == {"train": 2}
    lines = (out / "train.jsonl").read_text(encoding="utf-8").splitlines()
    assert {json.loads(x)["language"] for x in lines} == {"en", "zh"}


def test_prepare_customer_service_preset_with_languages_filter(tmp_path, capsys):
    out = tmp_path / "cs"
    assert main(["data", "prepare", "--preset", "customer_service", "--languages", "chinese",
                 "--out", str(out), "--no-progress"]) == 0
    rep = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert rep["steps"]["clean.language"]["dropped"] == {"language en not in ['zh']": 500}
    assert rep["counts"]["test conversations by language"] == {"zh": 100}
    assert rep["counts"]["records per split"]["test"] == 100


def test_prepare_with_tokenizer_writes_shards_and_shard_command(tmp_path, capsys):
    from scratchgpt.tokenizer import BPETokenizer
    from scratchgpt.tokenizer.special import CHAT_SPECIAL_TOKENS
    write(tmp_path / "c.csv", "context,reply\nhello there,hi! how can I help?\nwhere is order A1,it ships today\n")
    tok = BPETokenizer.train(["hello there hi how can I help where is order ships today"], 270,
                             special_tokens=CHAT_SPECIAL_TOKENS)
    tok.save(str(tmp_path / "tok.json"))
    out = tmp_path / "o"
    assert main(["data", "prepare", "--input", str(tmp_path / "c.csv"), "--ratios", "1,0,0", "--out", str(out),
                 "--tokenizer", str(tmp_path / "tok.json"), "--no-progress"]) == 0
    meta = json.loads((out / "shards" / "pretrain_train.meta.json").read_text())
    assert meta["n_documents"] == 2 and meta["n_tokens"] > 0
    assert main(["data", "shard", "--dir", str(out), "--tokenizer", str(tmp_path / "tok.json")]) == 0
    assert "sft_train:" in capsys.readouterr().out


def test_bad_arguments_give_one_line_errors(tmp_path, capsys):
    assert main(["data", "prepare", "--input", str(tmp_path / "nope.csv"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "no such file or folder" in err and err.count("\n") == 1
    write(tmp_path / "x.csv", "context,reply\nq,a\n")
    assert main(["data", "prepare", "--input", str(tmp_path / "x.csv"), "--ratios", "1,1",
                 "--out", str(tmp_path / "o")]) == 2
    assert "ratios" in capsys.readouterr().err


def test_chapter3_quick_runs(capsys):
    from scratchgpt.chapters import ch3
    assert ch3.main(["--quick"]) == 0
    out = capsys.readouterr().out
    assert "数据预处理" in out and "ids found in two splits: 0" in out
    assert "SFT loss mask covers" in out
    assert "量化与剪枝" in out and "int4" in out     # §3.2.4b: quantization and pruning side by side


def test_download_without_network_is_one_clear_line(tmp_path, capsys, monkeypatch):
    import urllib.error
    import urllib.request

    def no_network(*args, **kwargs):
        raise urllib.error.URLError("Name or service not known")
    monkeypatch.setattr(urllib.request, "urlopen", no_network)   # never touches the network
    assert main(["data", "prepare", "--download", "tinyshakespeare", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot download tinyshakespeare" in err[0] and "no network?" in err[0]
    assert not (tmp_path / "o" / "downloads" / "tinyshakespeare.txt").exists()
