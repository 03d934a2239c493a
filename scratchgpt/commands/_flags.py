"""The command-line conventions every scratchgpt command follows, and the helpers that apply them.

New commands (``scratchgpt/commands/<name>.py``) and chapter walkthroughs use these instead of
spelling the flags out, so every ``--help`` reads the same:

- **Dashed flags.** ``--max-new-tokens``, never ``--max_new_tokens``. The underscore spelling is
  still accepted: ``Parser`` rewrites ``--max_new_tokens`` to ``--max-new-tokens`` before
  parsing (only the flag name, never its value), so no alias has to be declared and ``--help``
  shows one spelling. ``add_config_arguments`` (train/config.py) turns dataclass fields into
  dashed flags the same way.
- **One progress switch.** Every command that runs for more than a few seconds takes
  ``--no-progress`` (``add_progress``; the value is ``args.progress``, True by default).
- **``--threads N`` on every command that computes** (``add_threads``). The CLI applies it before
  the command runs (``apply_threads``): thread counts are read when NumPy/Numba load, so a
  console run restarts itself once with the variables set; an in-process call (tests) sets
  Numba's count only.
- **``--tokenizer PATH``** (``add_tokenizer``) takes a ``tokenizer.json``, a directory holding one
  (a model directory, or a run directory with ``model/``), or GPT-2 ``vocab.json`` +
  ``merges.txt``; resolve it with ``scratchgpt.tokenizer.load_tokenizer``/``tokenizer_file``.
- **Errors.** Bad input raises a ``ScratchGPTError`` subclass (scratchgpt/errors.py); ``cli.main``
  prints it as one line ``scratchgpt <command>: error: ...`` and exits 2. A NumPy warning
  raised on the way to that error is part of it, not noise before it (``cli.main`` holds
  warnings back while a command runs: on an error they join its line, on success they are
  shown at the end). Usage errors (an unknown flag, a missing argument) show the usage of the
  subcommand that was typed, and name the closest flag.
- **Outputs.** A command that writes a directory refuses an existing non-empty one unless told
  (``--resume`` / ``--overwrite``), and its last lines say where the results are and what to
  run next (``next: scratchgpt ...``).
- **Chapter walkthroughs** build their parser with ``chapter_parser("chN", description)``
  (``usage: python -m scratchgpt.chapters.chN``, ``--quick``, ``--out DIR``, ``--threads``),
  parse with ``chapter_args`` and end with ``raise SystemExit(run_chapter(main, "chN"))`` (same
  one-line errors as the CLI). Without ``--out`` a chapter works in a temporary folder that is
  deleted when it ends, so it must not print paths into it as results to look at
  (``kept_note`` says what to do instead).
"""
from __future__ import annotations

import argparse
import difflib
import os
import sys
import warnings

# Progress bars appear only for work that takes more than a second (tqdm reads TQDM_* variables
# when it is first imported, which is after this module for every command and chapter): a bad
# input fails before any bar is drawn, so its error stays the only line on stderr. A value the
# user set wins.
os.environ.setdefault("TQDM_DELAY", "1")

_DEEPEST = "_scratchgpt_parser"           # namespace attribute: the innermost parser that ran
THREAD_VARS = ("NUMBA_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
_THREADS_SET = "SCRATCHGPT_THREADS"       # set once the restart with thread variables happened


def dashed(arg: str) -> str:
    """``--max_new_tokens=5`` -> ``--max-new-tokens=5``; anything else unchanged."""
    if not arg.startswith("--") or arg == "--":
        return arg
    name, eq, value = arg.partition("=")
    return name.replace("_", "-") + eq + value


def dashed_argv(argv) -> list:
    """Every flag name dashed, up to a bare ``--`` (after it everything is positional)."""
    out, rest = [], False
    for a in argv:
        rest = rest or a == "--"
        out.append(a if rest else dashed(a))
    return out


class Parser(argparse.ArgumentParser):
    """argparse with the conventions above: underscore flags accepted, errors from the
    subcommand that was typed (its usage, not the top-level one), closest-flag hints.
    Subparsers created from it are ``Parser`` too (argparse reuses the parent's class)."""

    def parse_known_args(self, args=None, namespace=None):
        args = dashed_argv(sys.argv[1:] if args is None else list(args))
        ns, extras = super().parse_known_args(args, namespace)
        if not hasattr(ns, _DEEPEST):  # subparsers finish first, so the innermost one wins
            setattr(ns, _DEEPEST, self)
        return ns, extras

    def parse_args(self, args=None, namespace=None):
        ns, extras = self.parse_known_args(args, namespace)
        parser = getattr(ns, _DEEPEST, self)
        delattr(ns, _DEEPEST)
        ns.command_prog = parser.prog  # "scratchgpt data prepare": what error lines start with
        if extras:
            parser.error(parser.unrecognized_message(extras))
        return ns

    def option_names(self) -> list:
        return [s for a in self._actions for s in a.option_strings if s.startswith("--")]

    def unrecognized_message(self, extras) -> str:
        msg = f"unrecognized arguments: {' '.join(extras)}"
        flags = [e.partition("=")[0] for e in extras if e.startswith("--")]
        if flags:
            close = difflib.get_close_matches(flags[0], self.option_names(), n=1, cutoff=0.6)
            if close:
                msg += f" (did you mean {close[0]}?)"
        return msg


def add_progress(parser) -> None:
    parser.add_argument("--no-progress", dest="progress", action="store_false",
                        help="no progress bars (log lines only)")


def add_threads(parser, default: str | None = None, extra_help: str = "") -> None:
    what = "leave the environment as is" if default in (None, "keep") else f"default {default}"
    parser.add_argument("--threads", default=default, metavar="N|auto|keep",
                        help=f"threads for Numba kernels and BLAS ({what}; 'keep' leaves the environment as is; "
                             "'auto': training steps time themselves and run on 1 thread or all cores, "
                             "whichever is faster at the moment — the same numbers either way)"
                             + (f". {extra_help}" if extra_help else ""))


def add_device(parser) -> None:
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"),
                        help="where the model runs: cpu (default) or cuda (an NVIDIA GPU through numba-cuda, "
                             "the 'gpu' extra)")
    parser.add_argument("--sim", action="store_true",
                        help="with --device cuda: run the CUDA kernels on numba.cuda's simulator (slow; no GPU needed)")


def apply_device(args) -> str:
    """``--device`` / ``--sim`` -> the device name; a one-line ConfigError when the GPU is missing."""
    from ..backend import check_device, enable_simulator
    from ..errors import ConfigError
    device = getattr(args, "device", "cpu")
    if getattr(args, "sim", False):
        if device != "cuda":
            raise ConfigError("--sim simulates the GPU: use it with --device cuda")
        enable_simulator()
    check_device(device)
    if device == "cuda" and getattr(args, "zero", 0):
        raise ConfigError("--device cuda with --zero 1: the sharded optimizer keeps its moments in host memory; "
                          "drop --zero (plain --dist dp stages the gradients through the host)")
    return device


def add_tokenizer(parser, required: bool = True, help: str | None = None) -> None:
    parser.add_argument("--tokenizer", required=required, default=None, metavar="PATH",
                        help=help or "tokenizer.json, or a directory holding one (model or run directory)")


def thread_count(value) -> int | str | None:
    """``--threads`` as an int, "auto", or None for unset / 'keep'; anything else is a ConfigError."""
    if value is None or str(value) == "keep":
        return None
    s = str(value)
    if s == "auto":
        return s
    if not s.isdigit() or int(s) < 1:
        from ..errors import ConfigError
        raise ConfigError(f"--threads expects a positive integer, 'auto' or 'keep', got {s!r}")
    return int(s)


def _auto_most() -> int:
    """'auto' starts the pools with one thread per core this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:          # not on Linux
        return max(1, os.cpu_count() or 1)


def apply_threads(args, restart_argv=None, module: str = "scratchgpt") -> None:
    """Make ``--threads N`` take effect. With ``restart_argv`` (a console run), restart this
    process once as ``python -m MODULE *restart_argv`` with the thread variables set — NumPy's
    BLAS reads them only when it loads. Without it (in-process call), set Numba's count only."""
    n = thread_count(getattr(args, "threads", None))
    if n is None:
        return
    auto = n == "auto"
    if auto:                 # pools sized for all cores; the Trainer's ThreadTuner picks 1 or all per step
        n = _auto_most()
    want = "auto" if auto else str(n)
    if os.environ.get(_THREADS_SET) == want or (not auto and all(os.environ.get(v) == want for v in THREAD_VARS[:2])):
        return
    if restart_argv is not None:
        env = {**os.environ, _THREADS_SET: want, **{v: str(n) for v in THREAD_VARS}}
        sys.stdout.flush()
        sys.stderr.flush()
        os.execve(sys.executable, [sys.executable, "-m", module, *restart_argv], env)
    import numba
    numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    if auto or os.environ.get(_THREADS_SET) == "auto":
        os.environ[_THREADS_SET] = want   # in-process: tells the Trainer (train/thread_tuner.py)


def chapter_parser(chapter: str, description: str, quick_help: str = "the short version (what the tests run)",
                   out_help: str | None = None, writes_files: bool = True) -> Parser:
    """The parser every chapter walkthrough starts from: ``--quick``, ``--out DIR`` (chapters
    that write files) and ``--threads``."""
    p = Parser(prog=f"python -m scratchgpt.chapters.{chapter}", description=description)
    p.add_argument("--quick", action="store_true", help=quick_help)
    if writes_files:
        p.add_argument("--out", default=None, metavar="DIR",
                       help=out_help or "keep everything this chapter writes here (default: a temporary "
                                        "folder, deleted at the end)")
    add_threads(p)
    return p


def chapter_args(parser, argv=None):
    """Parse a chapter's arguments and apply ``--threads`` (a console run restarts itself once)."""
    args = parser.parse_args(argv)
    module = parser.prog.split()[-1]  # "python -m scratchgpt.chapters.chN" -> the module
    apply_threads(args, restart_argv=sys.argv[1:] if argv is None else None, module=module)
    return args


def kept_note(out_dir, what: str = "these files") -> str:
    """What to tell the user about files a chapter wrote: where they stay, or how to keep them."""
    if out_dir:
        return f"{what} are kept in {out_dir}"
    return f"{what} were in a temporary folder, deleted now; pass --out DIR to keep them"


def error_line(err: BaseException) -> str:
    """One line for the user: OSErrors as 'PATH: reason', everything else as its message."""
    if isinstance(err, OSError) and err.strerror:
        where = f"{err.filename}: " if err.filename else ""
        return f"{where}{err.strerror[0].lower()}{err.strerror[1:]}"
    return " ".join(str(err).split())


def guarded(prog: str, fn, *args) -> int:
    """Run ``fn(*args)`` as a command: a user error (``ScratchGPTError``, ``OSError``) becomes one
    line ``PROG: error: ...`` on stderr and exit code 2 (``SCRATCHGPT_DEBUG=1`` shows the
    traceback instead). Warnings raised meanwhile are held back: when the command fails they
    belong to its error line (NumPy's overflow warning on the way to "loss is not finite" is
    the error, not noise before it); when it succeeds they are shown at the end."""
    from ..errors import ScratchGPTError
    with warnings.catch_warnings(record=True) as caught:
        try:
            code = fn(*args)
        except BrokenPipeError:  # `... | head` closed our stdout: not an error of the command
            sys.stdout = open(os.devnull, "w")
            return 0
        except (ScratchGPTError, OSError) as e:
            if os.environ.get("SCRATCHGPT_DEBUG"):
                raise
            seen = sorted({str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)})
            note = f" (NumPy warned: {'; '.join(seen)})" if seen else ""
            print(f"{prog}: error: {error_line(e)}{note}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130
    for w in caught:
        warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    return int(code or 0) if not isinstance(code, dict) else 0


def run_chapter(main, chapter: str) -> int:
    """``raise SystemExit(run_chapter(main, "chN"))`` at the end of a chapter module."""
    return guarded(f"python -m scratchgpt.chapters.{chapter}", main)
