"""chatterbot-corpus YAML: ``categories: [...]`` and ``conversations: [[turn, turn, ...], ...]``.

Turns alternate user / assistant, starting with the user. The file's first category becomes the
topic label. We walk the YAML *node* tree (``yaml.compose``) instead of ``safe_load`` so that a
wrong shape can be reported with its line, and so scalars keep the text as written (``safe_load``
would turn a reply ``yes`` into ``True`` and ``1.0`` into a float).
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import yaml

from .language import CORPUS_LANGUAGE_CODES
from .records import Conversation, Message
from .report import Report


def chatterbot_dir() -> Path:
    """The data folder of the installed chatterbot-corpus package."""
    try:
        import chatterbot_corpus
    except ImportError:
        from ..errors import DataError
        raise DataError("the chatterbot corpus is not installed; expected the PyPI package "
                        "'chatterbot-corpus' (pip install chatterbot-corpus)") from None
    return Path(chatterbot_corpus.__file__).parent / "data"


def chatterbot_files(languages) -> list[Path]:
    from ..errors import DataError
    root = chatterbot_dir()
    files = []
    for lang in languages:
        d = root / lang
        if not d.is_dir():
            have = sorted(p.name for p in root.iterdir() if p.is_dir())
            raise DataError(f"chatterbot corpus has no language {lang!r}; expected one of {have}")
        files += sorted(d.glob("*.yml"))
    return files


def load_yaml(path, report: Report, language: str | None = None) -> Iterator[Conversation]:
    path = Path(path)
    if language is None:  # .../chatterbot_corpus/data/<language>/<topic>.yml
        language = CORPUS_LANGUAGE_CODES.get(path.parent.name)
    try:
        with open(path, encoding="utf-8-sig", errors="replace") as f:
            root = yaml.compose(f)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        report.malformed(path, mark.line + 1 if mark else 1, f"YAML syntax error: {getattr(e, 'problem', e)}")
        return
    if not isinstance(root, yaml.MappingNode):
        report.malformed(path, root.start_mark.line + 1 if root else 1,
                         "expected a mapping with 'categories' and 'conversations'")
        return
    keys = {k.value: v for k, v in root.value if isinstance(k, yaml.ScalarNode)}
    topic = None
    cats = keys.get("categories")
    if isinstance(cats, yaml.SequenceNode) and cats.value and isinstance(cats.value[0], yaml.ScalarNode):
        topic = cats.value[0].value
    elif cats is not None:
        report.malformed(path, cats.start_mark.line + 1, "'categories' should be a list of names (topic left unset)")
    convs = keys.get("conversations")
    if not isinstance(convs, yaml.SequenceNode):
        line = convs.start_mark.line + 1 if convs is not None else root.start_mark.line + 1
        report.malformed(path, line, "expected 'conversations' to be a list of lists of strings")
        return
    for conv in convs.value:
        line = conv.start_mark.line + 1
        if not isinstance(conv, yaml.SequenceNode) or not all(isinstance(t, yaml.ScalarNode) for t in conv.value):
            report.malformed(path, line, "a conversation must be a list of strings (turns)")
            continue
        msgs = [Message("user" if i % 2 == 0 else "assistant", t.value) for i, t in enumerate(conv.value)]
        yield Conversation(msgs, topic=topic, language=language, source=f"{path}:{line}",
                           id=f"chatterbot/{path.parent.name}/{path.stem}:{line}")
