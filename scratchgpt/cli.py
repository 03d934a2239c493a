"""``scratchgpt <subcommand>``: one command line for the whole pipeline.

Each subcommand lives in ``scratchgpt/commands/<name>.py`` and exposes
``register(subparsers)``, which adds its parser and sets ``func`` to a callable taking the
parsed args and returning an exit code. Adding a subcommand = adding a module and its name
to ``COMMANDS``.

User errors (``ScratchGPTError``, bad files, bad values) print one line and exit 2 —
no traceback. Set ``SCRATCHGPT_DEBUG=1`` to see the traceback anyway. The flag conventions
every command follows (dashed flags, ``--no-progress``, ``--threads``, ``--tokenizer``) are in
``scratchgpt/commands/_flags.py``; ``python -m scratchgpt`` is this same command line.
"""
from __future__ import annotations

import importlib
import importlib.util
import sys

from . import __version__
from .commands._flags import Parser, apply_threads, guarded

# order = the order of the pipeline, which is the order ``--help`` lists them in
COMMANDS = [
    "demo", "data", "tokenizer", "pretrain", "sft", "eval", "plot", "generate", "chat",
    "quantize", "prune", "serve", "export",
]


def available_commands() -> list:
    """The names in COMMANDS whose module exists (others are not written yet)."""
    return [name for name in COMMANDS if importlib.util.find_spec(f"scratchgpt.commands.{name}") is not None]


def build_parser() -> Parser:
    parser = Parser(
        prog="scratchgpt",
        description="A ChatGPT-like system built from scratch: data -> tokenizer -> pretrain -> SFT -> chat -> serve.",
    )
    parser.add_argument("--version", action="version", version=f"scratchgpt {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="<command>")
    for name in available_commands():
        importlib.import_module(f"scratchgpt.commands.{name}").register(sub)
    return parser


def main(argv=None) -> int:
    console = argv is None  # run as a program (may restart itself for --threads), not called from Python
    argv = sys.argv[1:] if console else [str(a) for a in argv]
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2

    def run():
        apply_threads(args, restart_argv=argv if console else None)
        return args.func(args)
    return guarded(args.command_prog, run)


if __name__ == "__main__":
    sys.exit(main())
