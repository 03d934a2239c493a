"""``scratchgpt generate MODEL_DIR --prompt TEXT``: one reply from the KV-cache engine."""
from __future__ import annotations

import sys

from ._dist import add_tp, run_tensor_parallel
from ._flags import add_device, add_threads, apply_device
from ._sampling import add_sampling, reply_budget, sampling_params

DEFAULT_MAX_NEW = 128


def register(sub) -> None:
    p = sub.add_parser("generate", help="generate text from a model directory",
                       description="Generate a reply with the KV-cache engine (scratchgpt/infer). With a chat "
                                   "tokenizer the prompt is sent as one user message through the chat template "
                                   "(--raw: the text as is, continued).")
    p.add_argument("model", metavar="MODEL_DIR", help="model directory (GPT, SFT output, PEFT or quantized)")
    p.add_argument("--prompt", required=True, metavar="TEXT", help="the prompt")
    p.add_argument("--raw", action="store_true", help="continue the prompt text as is (no chat template)")
    p.add_argument("--system", default=None, metavar="TEXT", help="system prompt (chat template only)")
    p.add_argument("--stream", action="store_true", help="print the reply piece by piece as it is generated")
    p.add_argument("--verbose", action="store_true",
                   help="also print tokens, prefill time and decode speed (on stderr)")
    add_sampling(p, temperature=0.0, max_new_tokens=DEFAULT_MAX_NEW)
    add_tp(p)
    add_threads(p)
    add_device(p)
    p.set_defaults(func=run)


def prompt_ids(tok, text: str, raw: bool, system: str | None = None) -> list:
    """The prompt's token ids: chat template (user message) when the tokenizer has one, else raw."""
    from ..errors import ConfigError
    from ..tokenizer.special import ASSISTANT
    chat = not raw and ASSISTANT in getattr(tok, "special_tokens", {})
    if not chat:
        if system:
            raise ConfigError("--system needs the chat template (a chat tokenizer, without --raw)")
        return tok.encode(text)
    from ..tokenizer.chat_template import render_chat
    msgs = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": text}]
    return render_chat(tok, msgs, add_generation_prompt=True)[0]


def run(args) -> int:
    device = apply_device(args)
    if device == "cuda" and args.tp > 1:
        from ..errors import ConfigError
        raise ConfigError("--device cuda with --tp: tensor-parallel ranks run on the CPU only; drop one of them")
    from ..errors import ConfigError
    if args.prompt == "":
        raise ConfigError("--prompt is empty")
    if args.tp > 1:            # one rank of `mpiexec -n N ... --tp N`: the same loop on this rank's share
        return run_tensor_parallel(args, generate_with)
    from ..infer import load_for_inference
    model, tok = load_for_inference(args.model)
    return generate_with(args, model, tok)


def generate_with(args, model, tok, world=None) -> int:
    """Generate with ``model`` (a GPT, or the DecoderWeights of a tensor-parallel rank); only the
    root rank writes to the terminal."""
    import io
    import time

    from ..infer import Engine
    is_root = world is None or world.is_root
    if not is_root:
        sys.stdout = io.StringIO()           # every rank computes the same tokens; one prints them
    ids = prompt_ids(tok, args.prompt, args.raw, args.system)
    engine = Engine(model, tok, max_batch_size=1, device=getattr(args, "device", "cpu"))
    params = sampling_params(args, reply_budget(args, DEFAULT_MAX_NEW, engine.block_size - len(ids) + 1))
    t0 = time.perf_counter()
    if args.stream:
        reason = None
        for out in engine.outputs(ids, params):
            sys.stdout.write(out.text)
            sys.stdout.flush()
            reason = out.finish_reason
        sys.stdout.write("\n")
    else:
        c = engine.generate(ids, params)
        print(c.text)
        reason = c.finish_reason
    wall = time.perf_counter() - t0
    if args.verbose and is_root:
        st = engine.stats
        dec = st.decode_tokens / st.decode_seconds if st.decode_seconds else float("nan")
        w = engine.weights
        print(f"[{w.kind}, {w.weight_bytes / 1e6:.1f} MB of weights] prompt {len(ids)} tokens, "
              f"prefill {st.prefill_seconds * 1e3:.1f} ms, {st.decode_tokens + 1} new tokens, decode {dec:.1f} tokens/s "
              f"({w.weight_bytes * dec / 1e9:.1f} GB/s of weights), finish: {reason}, wall {wall:.2f} s",
              file=sys.stderr)
    return 0
