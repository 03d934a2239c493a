"""``scratchgpt chat MODEL_DIR``: a multi-turn conversation in the terminal, streamed.

Commands (typed as a message): ``/reset`` forgets the conversation (keeps the system prompt),
``/system TEXT`` sets the system prompt (empty: none), ``/save FILE`` writes the transcript as
JSON, ``/exit`` (or end of input) quits. Ctrl-C while the model is replying stops that reply —
what was shown so far stays in the conversation; Ctrl-C at the prompt does not quit (use /exit).
Works the same on a terminal and on piped input (no prompts are printed then, one reply a line).
When the conversation outgrows the model's context window the oldest whole turns are left out
of the prompt (never the system prompt) and a note on stderr says how many.
"""
from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path

from ._dist import add_tp, run_tensor_parallel
from ._flags import add_device, add_threads, apply_device
from ._sampling import add_sampling, reply_budget, sampling_params

DEFAULT_MAX_NEW = 128
HELP = "commands: /reset  /system TEXT  /save FILE  /exit   (Ctrl-C stops a reply)"


def register(sub) -> None:
    p = sub.add_parser("chat", help="talk to a model in the terminal",
                       description="Multi-turn chat with streamed replies. " + HELP)
    p.add_argument("model", metavar="MODEL_DIR", help="model directory (SFT output, PEFT or quantized)")
    p.add_argument("--system", default=None, metavar="TEXT", help="system prompt")
    add_sampling(p, temperature=0.7, max_new_tokens=DEFAULT_MAX_NEW)
    add_tp(p)
    add_threads(p)
    add_device(p)
    p.set_defaults(func=run)


class ChatSession:
    """The conversation state and one reply at a time through the engine."""

    def __init__(self, engine, tok, args, model_dir, out=None, err=None, interrupts=None):
        self.engine, self.tok, self.args = engine, tok, args
        self.interrupts = interrupts            # tensor parallel: a _SharedInterrupt (Ctrl+C agreed on by all ranks)
        self.model_dir = str(model_dir)
        self.system = args.system or None
        self.messages: list[dict] = []          # user/assistant turns (the system prompt apart)
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        block = engine.block_size
        self.max_new = reply_budget(args, DEFAULT_MAX_NEW, block // 2)
        self.max_prompt = block + 1 - self.max_new
        self.n_replies = 0

    def all_messages(self) -> list:
        sys_msg = [{"role": "system", "content": self.system}] if self.system else []
        return sys_msg + self.messages

    def reply(self, text: str, tty: bool) -> str:
        from ..errors import ConfigError
        from ..infer.chat_prompt import build_chat_prompt
        self.messages.append({"role": "user", "content": text})
        try:
            ids, dropped = build_chat_prompt(self.tok, self.all_messages(), self.max_prompt)
        except ConfigError as e:
            self.messages.pop()
            print(f"(message not sent: {e})", file=self.err)
            return ""
        if dropped:
            print(f"(context window: the oldest {dropped} turn{'s' if dropped > 1 else ''} left out of the prompt)",
                  file=self.err)
        args = self.args
        seed = None if args.seed is None else args.seed + self.n_replies   # reproducible, not repetitive
        self.n_replies += 1
        params = sampling_params(args, self.max_new)
        if seed is not None:
            from dataclasses import replace
            params = replace(params, seed=seed)
        if tty:
            self.out.write("assistant> ")
        pieces = []
        gen = self.engine.stream(ids, params)
        shared = self.interrupts
        try:
            with shared.generating() if shared else contextlib.nullcontext():
                for piece in gen:
                    pieces.append(piece)
                    self.out.write(piece)
                    self.out.flush()
                    if shared and shared.stop_now():
                        raise KeyboardInterrupt   # every rank stops after this same piece
        except KeyboardInterrupt:
            gen.close()                          # cancels the request, frees its slot
            self.out.write(" [stopped]")
        self.out.write("\n")
        self.out.flush()
        answer = "".join(pieces).strip()
        self.messages.append({"role": "assistant", "content": answer})
        return answer

    def save(self, path: str) -> None:
        p = Path(path).expanduser()
        p.parent.mkdir(parents=True, exist_ok=True)
        a = self.args
        data = {"model": self.model_dir, "messages": self.all_messages(),
                "sampling": {"temperature": a.temperature, "top_k": a.top_k, "top_p": a.top_p, "min_p": a.min_p,
                             "repetition_penalty": a.repetition_penalty, "seed": a.seed,
                             "max_new_tokens": self.max_new}}
        p.write_text(json.dumps(data, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        print(f"(saved {len(self.all_messages())} messages to {p})", file=self.err)

    def command(self, line: str) -> bool:
        """Handle a /command; False means quit."""
        cmd, _, rest = line.partition(" ")
        rest = rest.strip()
        if cmd in ("/exit", "/quit"):
            return False
        if cmd == "/reset":
            self.messages = []
            print("(conversation reset)", file=self.err)
        elif cmd == "/system":
            self.system = rest or None
            print(f"(system prompt {'set' if rest else 'cleared'})", file=self.err)
        elif cmd == "/save":
            if not rest:
                print("(usage: /save FILE)", file=self.err)
            else:
                try:
                    self.save(rest)
                except OSError as e:
                    print(f"(could not save: {e})", file=self.err)
        else:
            print(f"(unknown command {cmd}; {HELP})", file=self.err)
        return True


def _lines(tty: bool, err):
    """Input lines; on a terminal with a prompt and line editing. Ctrl-C at the prompt: a hint."""
    if tty:
        try:
            import readline  # noqa: F401  (line editing and history for input())
        except ImportError:
            pass
        while True:
            try:
                yield input("you> ")
            except KeyboardInterrupt:
                print("\n(/exit to quit)", file=err)
            except EOFError:
                print(file=err)
                return
    else:
        for line in sys.stdin:
            yield line.rstrip("\n")


class _SharedInterrupt:
    """Tensor parallel: Ctrl+C stops the reply and keeps the conversation, as in one process.

    mpiexec hands the SIGINT to every rank, each at its own moment, while all of them are inside
    the same token's allreduces. A KeyboardInterrupt there would leave one rank between two
    collectives that the others complete, and the job would hang. So during a reply rank 0's
    handler only raises a flag, the other ranks ignore SIGINT altogether, and after every piece
    rank 0 broadcasts the flag (one 8-byte broadcast per piece; the decode step already costs two
    allreduces per layer): all ranks stop after the same piece. Outside replies rank 0 keeps
    Python's KeyboardInterrupt, so Ctrl+C at the prompt behaves as in one process."""

    def __init__(self, world):
        import signal
        self.world = world
        self.hit = False
        if not world.is_root:
            signal.signal(signal.SIGINT, signal.SIG_IGN)

    @contextlib.contextmanager
    def generating(self):
        import signal
        if not self.world.is_root:
            yield
            return
        self.hit = False
        previous = signal.signal(signal.SIGINT, self._flag)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)

    def _flag(self, signum, frame) -> None:
        self.hit = True

    def stop_now(self) -> bool:
        import numpy as np
        flag = np.array([1 if (self.world.is_root and self.hit) else 0], dtype=np.int64)
        return bool(self.world.bcast_(flag, what="chat stop flag")[0])


def _shared_lines(lines, world):
    """Tensor parallel: rank 0 reads the input and sends every line to the other ranks, so all of
    them run the same conversation (their output goes nowhere). None ends it on every rank."""
    import numpy as np
    lines = iter(lines) if world.is_root else None
    while True:
        line = next(lines, None) if world.is_root else None
        data = np.frombuffer(b"" if line is None else line.encode("utf-8"), dtype=np.uint8)
        n = world.bcast_(np.array([-1 if line is None else data.size], dtype=np.int64), what="chat input")[0]
        if n < 0:
            return
        buf = data.copy() if world.is_root else np.zeros(int(n), dtype=np.uint8)
        if n:
            world.bcast_(buf, what="chat input")
        yield buf.tobytes().decode("utf-8")


def run(args) -> int:
    device = apply_device(args)
    if device == "cuda" and args.tp > 1:
        from ..errors import ConfigError
        raise ConfigError("--device cuda with --tp: tensor-parallel ranks run on the CPU only; drop one of them")
    if args.tp > 1:            # one rank of `mpiexec -n N ... --tp N` (Ctrl-C: see _SharedInterrupt)
        return run_tensor_parallel(args, chat_with)
    from ..infer import load_for_inference
    model, tok = load_for_inference(args.model)
    return chat_with(args, model, tok)


def chat_with(args, model, tok, world=None) -> int:
    import io

    from ..infer import Engine
    is_root = world is None or world.is_root
    engine = Engine(model, tok, max_batch_size=1, device=getattr(args, "device", "cpu"))
    quiet = None if is_root else io.StringIO()
    session = ChatSession(engine, tok, args, args.model, out=quiet, err=quiet,
                          interrupts=_SharedInterrupt(world) if world is not None else None)
    if not is_root:
        session.save = lambda path: None     # rank 0 writes /save files; the others only compute
    tty = sys.stdin.isatty() and sys.stdout.isatty() and is_root
    if tty:
        print(f"chatting with {args.model} ({HELP})", file=sys.stderr)
    lines = _lines(tty, sys.stderr) if is_root else ()
    if world is not None:
        lines = _shared_lines(lines, world)
    for line in lines:
        text = line.strip()
        if not text:
            continue
        if text.startswith("/"):
            if not session.command(text):
                break
            continue
        session.reply(text, tty)
    return 0
