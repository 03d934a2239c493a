"""The documentation is true: every command, flag, module and repository path named in README.md,
docs/ and chapters/*.md exists; every command's --help follows one flag style (including commands
added later: the checks iterate cli.COMMANDS); the demo's numbers have one source; .ci/run runs the
README's test command."""
import argparse
import contextlib
import importlib
import importlib.util
import io
import re
from pathlib import Path

import pytest

from scratchgpt.cli import available_commands, build_parser

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "chapters").glob("*.md"))]
CHAPTERS = sorted(p.stem for p in (ROOT / "scratchgpt" / "chapters").glob("ch[0-9]*.py") if "_" not in p.stem)
# leaf commands that do not compute enough to need --threads / long enough to need --no-progress;
# generate/chat stream the text itself and serve logs requests: a progress bar has no place there
NO_THREADS = {"plot", "tokenizer encode", "tokenizer decode"}
NO_PROGRESS = NO_THREADS | {"tokenizer stats", "generate", "chat", "serve", "export"}


def doc_text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def code_snippets(text: str) -> list[str]:
    """Inline code spans and every line of fenced code blocks."""
    blocks = re.findall(r"```[^\n]*\n(.*?)```", text, flags=re.S)
    lines = [ln for b in blocks for ln in b.splitlines()]
    inline = re.findall(r"`([^`\n]+)`", re.sub(r"```.*?```", "", text, flags=re.S))
    return lines + inline


# ------------------------------------------------------------------ parsers: commands and chapters
def command_parsers() -> dict:
    """'demo' / 'data prepare' / ... -> the argparse parser of that leaf command."""
    out = {}
    top = build_parser()
    sub = next(a for a in top._actions if isinstance(a, argparse._SubParsersAction))
    for name, p in sub.choices.items():
        nested = [a for a in p._actions if isinstance(a, argparse._SubParsersAction)]
        if nested:
            for action, q in nested[0].choices.items():
                out[f"{name} {action}"] = q
        else:
            out[name] = p
    return out


def chapter_help(name: str) -> str:
    mod = importlib.import_module(f"scratchgpt.chapters.{name}")
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), pytest.raises(SystemExit):
        mod.main(["--help"])
    return buf.getvalue()


def options(parser) -> dict:
    """--flag -> its argparse action (hidden ones included)."""
    return {s: a for a in parser._actions for s in a.option_strings if s.startswith("--")}


# ------------------------------------------------------------------ one flag style
@pytest.mark.parametrize("name", sorted(command_parsers()))
def test_every_command_follows_the_flag_style(name):
    parser = command_parsers()[name]
    opts = options(parser)
    for flag, action in opts.items():
        assert "_" not in flag, f"scratchgpt {name}: {flag} is not dashed (use {flag.replace('_', '-')})"
        if flag not in ("--help", "--version"):
            assert action.help, f"scratchgpt {name}: {flag} has no help text"
    for action in parser._actions:  # positionals need help too
        if not action.option_strings and not isinstance(action, argparse._SubParsersAction):
            assert action.help, f"scratchgpt {name}: positional {action.dest} has no help text"
    assert "--quiet" not in opts and "--progress" not in opts, f"scratchgpt {name}: the switch is --no-progress"
    if name not in NO_PROGRESS:
        assert "--no-progress" in opts, f"scratchgpt {name}: long commands take --no-progress"
    if name not in NO_THREADS:
        assert "--threads" in opts, f"scratchgpt {name}: commands that compute take --threads"
    if "--tokenizer" in opts:
        assert "directory" in opts["--tokenizer"].help, f"scratchgpt {name}: --tokenizer takes a file or a directory"
    assert parser.prog == f"scratchgpt {name}"


@pytest.mark.parametrize("name", CHAPTERS)
def test_every_chapter_follows_the_flag_style(name):
    text = chapter_help(name)
    assert text.startswith(f"usage: python -m scratchgpt.chapters.{name} "), text[:80]
    flags = set(re.findall(r"(?<![\w-])--[\w-]+", text))
    assert {"--quick", "--threads"} <= flags, flags
    assert not [f for f in flags if "_" in f], flags
    assert "--work" not in flags, "chapters keep their files with --out"
    # every option line has a help text: "  --flag ARG   text" (argparse puts long ones on the next line)
    opts = re.findall(r"^  (--[\w-]+)(?: [^\n]*?)?(?:  +(\S.*))?$", text, flags=re.M)
    for flag, help_text in opts:
        following = text.split(flag, 2)[-1].split("\n", 2)
        assert help_text or (len(following) > 1 and following[1].startswith(" " * 8)), f"{name}: {flag} has no help"


def test_underscore_spelling_is_accepted_as_an_alias():
    from scratchgpt.commands._flags import dashed_argv
    assert dashed_argv(["--max_new_tokens", "5", "--lora_rank=2", "x_y", "--", "--a_b"]) == \
        ["--max-new-tokens", "5", "--lora-rank=2", "x_y", "--", "--a_b"]
    args = build_parser().parse_args(["eval", "m", "--data", "d", "--max_new_tokens", "7"])
    assert args.max_new_tokens == 7


# ------------------------------------------------------------------ what the docs name exists
INVOCATION = re.compile(r"(?:^|[\s(])(scratchgpt|python -m [\w.]+)((?: +[^\s|#&;`)]+)*)")


def invocations(snippet: str):
    """(program, words) for each `scratchgpt ...` / `python -m module ...` in a code snippet."""
    for m in INVOCATION.finditer(snippet):
        yield m.group(1), m.group(2).split()


def named_invocations():
    seen = []
    for path in DOCS:
        for snippet in code_snippets(doc_text(path)):
            for prog, words in invocations(snippet):
                seen.append((path.relative_to(ROOT), prog, words))
    return seen


def test_docs_name_some_commands_at_all():
    progs = {(str(p), prog) for p, prog, _ in named_invocations()}
    assert ("README.md", "scratchgpt") in progs and any(prog.startswith("python -m scratchgpt.chapters")
                                                        for _, prog in progs)


@pytest.mark.parametrize("doc, prog, words", named_invocations(), ids=lambda x: str(x)[:40])
def test_every_named_command_and_flag_exists(doc, prog, words):
    parsers = command_parsers()
    if prog.startswith("python -m "):
        module = prog.split()[-1]
        if module == "pytest" or not module.startswith("scratchgpt") or "chN" in module:
            return
        assert importlib.util.find_spec(module) is not None, f"{doc}: module {module} does not exist"
        if module in ("scratchgpt", "scratchgpt.cli"):
            prog, words = "scratchgpt", words
        elif module.startswith("scratchgpt.chapters."):
            flags = set(re.findall(r"--[\w-]+", chapter_help(module.rsplit(".", 1)[1])))
            for w in words:
                if w.startswith("--"):
                    assert w.split("=")[0] in flags, f"{doc}: {module} has no flag {w}"
            return
        else:
            return
    if not words or words[0].startswith("--"):
        assert not words or words[0] in ("--version", "--help"), f"{doc}: scratchgpt {' '.join(words)}"
        return
    name = words[0]
    if name not in available_commands():
        pytest.fail(f"{doc}: `scratchgpt {name}` is not a command (commands: {', '.join(available_commands())})")
    key = name
    if key not in parsers:  # a command with actions: the next word must be one of them
        actions = sorted(k.split()[1] for k in parsers if k.startswith(name + " "))
        if len(words) < 2 or "|" in words[1]:
            return  # a summary such as `scratchgpt tokenizer train|encode|decode|stats`
        assert words[1] in actions, f"{doc}: `scratchgpt {name} {words[1]}` is not one of {actions}"
        key = f"{name} {words[1]}"
    flags = options(parsers[key])
    for w in words[1:]:
        if w.startswith("--") and "|" not in w:
            assert w.split("=")[0] in flags, f"{doc}: `scratchgpt {key}` has no flag {w}"


PLACEHOLDER = re.compile(r"[A-Z]{2,}|N/A|chN|\{|\*|<|:\d|^runs/|^/|[^\x00-\x7f]")
RUN_ARTIFACTS = {"checkpoints/", "model/", "shards/", "peft/"}


REPO_DIRS = {"scratchgpt", "chapters", "docs", "tests", "benchmarks", ".ci"}
PACKAGES = {p.name for p in (ROOT / "scratchgpt").iterdir() if p.is_dir() and not p.name.startswith("_")}


def is_repo_path(token: str) -> bool:
    """A token meant as a file of this repository (not a run's output, not a model id like demo/sft)."""
    first = token.split("/")[0]
    return first in REPO_DIRS or first in PACKAGES or token.endswith((".py", ".md", ".pyx"))


def named_paths():
    out = []
    for path in DOCS:
        text = doc_text(path)
        spans = re.findall(r"`([^`\n]+)`", re.sub(r"```.*?```", "", text, flags=re.S))
        links = [t for t in re.findall(r"\]\(([^)#\s]+)", text) if not t.startswith("http")]
        for token in [t for s in spans for t in re.split(r"[\s,;()]+", s)] + links:
            token = token.strip("'\"").rstrip(".")
            if ("/" in token or token.endswith((".py", ".md", ".pyx"))) and not PLACEHOLDER.search(token) \
                    and token not in RUN_ARTIFACTS and "." + "./" not in token and not token.startswith("-") \
                    and is_repo_path(token):
                out.append((path.relative_to(ROOT), token))
    return out


def path_exists(doc: Path, token: str) -> bool:
    bases = [ROOT, (ROOT / doc).parent, ROOT / "scratchgpt", ROOT / "benchmarks"]
    if any((b / token).exists() for b in bases):
        return True
    if "/" not in token.rstrip("/"):  # a bare file name such as `clean.py`: somewhere in the package
        return any((ROOT / "scratchgpt").rglob(token.rstrip("/")))
    return False


def test_docs_name_paths_at_all():
    assert len(named_paths()) > 50


@pytest.mark.parametrize("doc, token", named_paths(), ids=lambda x: str(x)[:50])
def test_every_named_path_exists(doc, token):
    assert path_exists(doc, token), f"{doc} names `{token}`, which does not exist in the repository"


def test_docs_stand_on_their_own():
    for path in DOCS:
        assert "../shared" not in doc_text(path), f"{path.name} points outside the repository"


# ------------------------------------------------------------------ one source for the demo's numbers
def test_demo_numbers_have_one_source():
    from scratchgpt.train.demo import DEMO_MEASURED, DEMO_RESULT_LINE
    flat = lambda s: " ".join(s.split())  # noqa: E731
    lo, hi = DEMO_MEASURED["task_accuracy_pct"]
    # the range as measured, rounded to whole percent or written with its own digits ("81.5-84 %")
    measured = {f"{lo:.0f}-{hi:.0f} %", f"{lo:g}-{hi:g} %"} if lo != hi else {f"{lo:g} %"}
    assert any(m in DEMO_RESULT_LINE for m in measured) and DEMO_MEASURED["date"] in DEMO_RESULT_LINE
    for doc in ("README.md", "chapters/ch5.md"):
        assert flat(DEMO_RESULT_LINE) in flat(doc_text(ROOT / doc)), f"{doc} does not quote DEMO_RESULT_LINE"
    demo_help = flat(command_parsers()["demo"].format_help())
    assert flat(DEMO_RESULT_LINE) in demo_help
    for stale in ("38.5 %", "374 s", "about 10 minutes", "≈ 10 min"):
        for doc in ("README.md", "chapters/ch5.md"):
            assert stale not in doc_text(ROOT / doc), f"{doc} still says {stale!r}"
        assert stale not in demo_help


def test_ci_runs_the_readmes_test_command():
    readme = doc_text(ROOT / "README.md")
    blocks = re.findall(r"```bash\n(.*?)```", readme, flags=re.S)
    test_cmds = [ln for b in blocks for ln in b.splitlines() if "pytest" in ln]
    assert len(test_cmds) == 1, test_cmds
    ci = [ln.strip() for ln in doc_text(ROOT / ".ci" / "run").splitlines() if ln.strip() and not ln.startswith("#")]
    assert test_cmds[0].strip() in ci, (test_cmds[0], ci)
    assert ".[test]" in test_cmds[0]
    quick_start = blocks[0]
    assert "[dev]" not in quick_start and "[test]" not in quick_start and "scratchgpt demo" in quick_start
