"""Sampling flags shared by ``scratchgpt generate`` and ``scratchgpt chat`` (and the server)."""
from __future__ import annotations


def add_sampling(parser, temperature: float, max_new_tokens: int | None) -> None:
    g = parser.add_argument_group("sampling")
    g.add_argument("--max-new-tokens", type=int, default=None, metavar="N",
                   help=f"reply length limit in tokens (default: {max_new_tokens}, or what fits the "
                        "model's context window if less)")
    g.add_argument("--temperature", type=float, default=temperature, metavar="T",
                   help=f"0 = greedy (default {temperature})")
    g.add_argument("--top-k", type=int, default=None, metavar="K", help="keep only the K most likely tokens")
    g.add_argument("--top-p", type=float, default=None, metavar="P", help="nucleus sampling: smallest set with mass P")
    g.add_argument("--min-p", type=float, default=None, metavar="P",
                   help="drop tokens less likely than P times the most likely one")
    g.add_argument("--repetition-penalty", type=float, default=1.0, metavar="R", help="1 = off")
    g.add_argument("--seed", type=int, default=None, metavar="S", help="random seed (same seed, same reply)")
    g.add_argument("--stop", action="append", default=[], metavar="TEXT",
                   help="end the reply at this string (may be given several times)")
    g.add_argument("--ignore-eos", action="store_true",
                   help="do not stop at end tokens: generate exactly --max-new-tokens (benchmarks)")


def reply_budget(args, default: int, room: int) -> int:
    """--max-new-tokens if given (checked by the engine), else ``default`` capped to ``room``."""
    if args.max_new_tokens is not None:
        return args.max_new_tokens
    return max(1, min(default, room))


def sampling_params(args, max_new_tokens):
    """SamplingParams from the parsed flags with this reply length limit."""
    from ..infer import SamplingParams
    n = max_new_tokens
    return SamplingParams(max_new_tokens=n, temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
                          min_p=args.min_p, repetition_penalty=args.repetition_penalty, seed=args.seed,
                          stop=tuple(args.stop), ignore_eos=args.ignore_eos)
