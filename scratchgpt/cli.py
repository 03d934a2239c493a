"""``scratchgpt <subcommand>``: one command line for the whole pipeline.

Each subcommand lives in ``scratchgpt/commands/<name>.py`` and exposes
``register(subparsers)``, which adds its parser and sets ``func`` to a callable taking the
parsed args and returning an exit code. Adding a subcommand = adding a module and its name
to ``COMMANDS``.

User errors (``ScratchGPTError``, bad files, bad values) print one line and exit 2 —
no traceback. Set ``SCRATCHGPT_DEBUG=1`` to see the traceback anyway.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

from .errors import ScratchGPTError

# order = the order of the pipeline, which is the order ``--help`` lists them in
COMMANDS = [
    "demo", "data", "tokenizer", "pretrain", "sft", "eval", "plot", "generate", "chat",
    "quantize", "prune", "serve", "export",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scratchgpt",
        description="A ChatGPT-like system built from scratch: data -> tokenizer -> pretrain -> SFT -> chat -> serve.",
    )
    sub = parser.add_subparsers(dest="command", metavar="<command>")
    for name in COMMANDS:
        modname = f"scratchgpt.commands.{name}"
        try:
            mod = importlib.import_module(modname)
        except ModuleNotFoundError as e:
            if e.name == modname:  # subcommand not written yet: leave it out of the list
                continue
            raise
        mod.register(sub)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        code = args.func(args)
    except (ScratchGPTError, FileNotFoundError, PermissionError, IsADirectoryError) as e:
        if os.environ.get("SCRATCHGPT_DEBUG"):
            raise
        print(f"scratchgpt {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
