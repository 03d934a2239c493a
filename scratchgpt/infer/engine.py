"""The generation engine: KV-cache prefill + decode, batching with join/leave, streaming.

    engine = Engine(model, tok, max_batch_size=8)
    rid = engine.add(GenerationRequest(prompt_ids, SamplingParams(max_new_tokens=64)))
    while engine.has_work():
        for out in engine.step():            # StepOutput per live sequence
            print(out.id, out.text, out.finished)
    engine.cancel(rid)                       # frees the slot at once

Each ``step()`` runs ONE forward pass (infer/forward.py) over: the last sampled token of every
running sequence (its decode step) and prompt rows of waiting requests (their prefill). Requests
join between steps (``add``) and leave when they finish or are cancelled; their cache slot is
then free for the next request. The logits of each sequence's last row are sampled with that
request's own settings and its own seeded generator, so a request produces the same tokens
alone or in a batch (greedy: the logits of a row do not depend on the other rows — every kernel
computes each row independently).

Prefill scheduling (chunked, first come first served): a prompt is cut into chunks of
``prefill_chunk`` rows at fixed offsets (0, C, 2C, …), whatever else is running — so a prompt
meets exactly the same linear calls alone or in a batch (bit-identical logits). A step takes
waiting chunks in arrival order until ``max_prefill_rows`` rows are used (the first chunk of a
step always runs); a later prompt never overtakes an earlier one. A burst of prompts therefore
prefills several per step (fewer decode steps in between: lower time to first token for the
last of the burst) while running sequences still advance every step (bounded inter-token
stall: one step's budget of prefill rows).

Context: learned positions, no sliding window. Every token but the last generated one passes
through the model, so a request fits when prompt + max_new_tokens - 1 <= block_size
(``max_new_tokens=None``: as many as fit); otherwise ``add`` raises ContextLengthError.
"""
from __future__ import annotations

import itertools
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from ..errors import ConfigError, DataError
from .detok import StreamText
from .forward import DECODE_CHUNK, DecoderRunner, segments_for
from .kv_cache import KVCache
from .params import (Completion, ContextLengthError, EngineFull, GenerationRequest, SamplingParams,
                     StepOutput)
from .weights import as_decoder_weights
from ..sampling._checks import GREEDY_TEMPERATURE


def _sampler():
    try:
        from ..sampling._sampler import sample
    except ImportError:      # Cython extension not built: the reference gives the same tokens
        from ..sampling.sample_ref import sample_ref as sample
    return sample


def end_token_ids(tok) -> set:
    """The tokenizer's end-of-reply ids (<|end|>, <|endoftext|>, role tokens), if it has them."""
    if tok is None:
        return set()
    from ..tokenizer.chat_template import stop_token_ids
    try:
        return set(stop_token_ids(tok))
    except Exception:
        return set()


@dataclass
class _Seq:
    id: str
    slot: int
    prompt: list
    params: SamplingParams
    rng: np.random.Generator
    stops: frozenset
    text: StreamText | None
    max_new: int
    greedy: bool = False                           # argmax, no penalties: sampled batched
    out_ids: list = field(default_factory=list)   # generated ids (incl. a final stop token)
    cached: int = 0                                # tokens in the cache
    prefilled: bool = False                        # whole prompt cached and first token sampled


@dataclass
class EngineStats:
    prefill_tokens: int = 0
    prefill_seconds: float = 0.0
    decode_tokens: int = 0
    decode_seconds: float = 0.0
    steps: int = 0


class Engine:
    """KV-cache generation for up to ``max_batch_size`` concurrent sequences (see module doc)."""

    def __init__(self, model, tok=None, max_batch_size: int = 8, max_prefill_rows: int | None = None,
                 return_logits: bool = False, prefill_chunk: int = 256, device: str | None = None):
        if not isinstance(max_batch_size, int) or max_batch_size < 1:
            raise ConfigError(f"max_batch_size: expected an integer >= 1, got {max_batch_size!r}")
        for name, val in (("prefill_chunk", prefill_chunk), ("max_prefill_rows", max_prefill_rows)):
            if val is not None and (not isinstance(val, int) or isinstance(val, bool) or val < 1):
                raise ConfigError(f"{name}: expected an integer >= 1, got {val!r}")
        # device: "cpu" or "cuda" (weights, activations and the KV cache on the GPU: cuda_forward.py);
        # None: where the model's parameters are
        from .cuda_forward import model_device
        self.device = device or model_device(model)
        if self.device == "cuda":
            from .cuda_forward import cuda_engine_parts
            w, self.cache, self.runner = cuda_engine_parts(model, max_batch_size, max_rows=max(max_batch_size, 64),
                                                           max_last=max_batch_size)
            self.weights = w
        elif self.device == "cpu":
            self.weights = w = as_decoder_weights(model)
            self.cache = KVCache(w.n_layer, max_batch_size, w.n_head, w.block_size, w.head_dim,
                                 w.prefixes, w.prefix_len)
            self.runner = DecoderRunner(w, self.cache, max_rows=max(max_batch_size, 64), max_last=max_batch_size)
        else:
            raise ConfigError(f"device: expected 'cpu' or 'cuda', got {device!r}")
        self.tok = tok
        self.block_size = w.block_size
        self.max_batch_size = max_batch_size
        # prompts are prefilled in chunks of this many rows (fixed offsets: see module doc) ...
        self.prefill_chunk = int(prefill_chunk)
        # ... and a step takes chunks (in arrival order) up to this many prompt rows: 1024 by
        # default, i.e. a step may add ~0.1 s of prefill on the 2-core machine for the demo's shape
        self.max_prefill_rows = int(max_prefill_rows or max(1024, self.prefill_chunk))
        self._free = deque(range(max_batch_size))
        self._seqs: dict[str, _Seq] = {}          # running or waiting for prefill, in arrival order
        self._ids = itertools.count()
        self._end_ids = end_token_ids(tok)
        self._sample = _sampler()
        self.stats = EngineStats()
        self.return_logits = bool(return_logits)
        # rows per step: the decode rows + at most the budget, or one chunk when that is larger
        n = max_batch_size + max(self.max_prefill_rows, self.prefill_chunk)
        self._tok_buf = np.zeros(n, np.int64)
        self._pos_buf = np.zeros(n, np.int64)
        self._slot_buf = np.zeros(n, np.int64)
        self._last_buf = np.zeros(max_batch_size, np.int64)
        self._arange = np.arange(self.block_size + 1, dtype=np.int64)

    # ------------------------------------------------------------------ bookkeeping
    @property
    def num_running(self) -> int:
        return len(self._seqs)

    @property
    def num_free_slots(self) -> int:
        return len(self._free)

    def has_work(self) -> bool:
        return bool(self._seqs)

    def add(self, request) -> str:
        """Queue a request; its prefill runs in the next ``step()``. Returns its id."""
        if not isinstance(request, GenerationRequest):
            raise ConfigError(f"Engine.add expects a GenerationRequest, got {type(request).__name__}")
        prompt = [int(t) for t in request.prompt_ids]
        P = len(prompt)
        if P == 0:
            raise DataError("prompt_ids: the prompt must hold at least one token")
        V = self.weights.vocab_size
        bad = next((t for t in prompt if not 0 <= t < V), None)
        if bad is not None:
            raise DataError(f"prompt_ids: token id {bad} is outside the vocabulary [0, {V})")
        params = request.params if request.params is not None else SamplingParams()
        if not isinstance(params, SamplingParams):
            raise ConfigError(f"params: expected SamplingParams, got {type(params).__name__}")
        n = params.max_new_tokens
        if (n is None and P > self.block_size) or (n is not None and P + n - 1 > self.block_size):
            raise ContextLengthError(P, n, self.block_size)
        rid = str(request.id) if request.id is not None else f"req-{next(self._ids)}"
        if rid in self._seqs:
            raise ConfigError(f"request id {rid!r} is already running")
        if not self._free:
            raise EngineFull(f"all {self.max_batch_size} sequence slots are busy")
        stops = frozenset(params.stop_token_ids) | (frozenset() if params.ignore_eos else frozenset(self._end_ids))
        text = StreamText(self.tok, params.stop) if self.tok is not None else None
        greedy = (params.temperature < GREEDY_TEMPERATURE and params.repetition_penalty == 1.0
                  and params.frequency_penalty == 0.0 and params.presence_penalty == 0.0)
        self._seqs[rid] = _Seq(id=rid, slot=self._free.popleft(), prompt=prompt, params=params,
                               rng=np.random.default_rng(params.seed), stops=stops, text=text,
                               max_new=n if n is not None else self.block_size - P + 1, greedy=greedy)
        return rid

    def cancel(self, rid: str) -> bool:
        """Drop a request now (no further outputs); True if it was running."""
        seq = self._seqs.pop(str(rid), None)
        if seq is None:
            return False
        self._free.append(seq.slot)
        return True

    # ------------------------------------------------------------------ one step
    def _schedule(self):
        """This step's rows: running sequences (decode), then prompt chunks in arrival order.

        Returns (decoding, chunks): chunks are (seq, start, end) prompt row ranges."""
        decoding, chunks = [], []
        budget, blocked, C = self.max_prefill_rows, False, self.prefill_chunk
        for q in self._seqs.values():
            if q.prefilled:
                decoding.append(q)
                continue
            if blocked:
                continue                         # first come first served: no overtaking
            P, start = len(q.prompt), q.cached
            while start < P:
                end = min(start - start % C + C, P)     # chunk boundaries at multiples of C
                if chunks and end - start > budget:
                    blocked = True                      # waits for the next step
                    break
                chunks.append((q, start, end))
                budget -= end - start
                start = end
        return decoding, chunks

    def step(self) -> list:
        """One forward pass: one decode row per running sequence + prompt chunks (module doc)."""
        if not self._seqs:
            return []
        toks, poss, slots, lasts = self._tok_buf, self._pos_buf, self._slot_buf, self._last_buf
        decoding, chunks = self._schedule()
        R = 0
        for q in decoding:
            toks[R] = q.out_ids[-1]
            poss[R] = q.cached
            slots[R] = q.slot
            lasts[R] = R
            R += 1
        completing = []                          # prompts whose last chunk runs now
        for q, start, end in chunks:
            toks[R:R + end - start] = q.prompt[start:end]
            poss[R:R + end - start] = self._arange[start:end]
            slots[R:R + end - start] = q.slot
            R += end - start
            if end == len(q.prompt):
                lasts[len(decoding) + len(completing)] = R - 1
                completing.append(q)
        batch = decoding + completing
        prefill_rows = R - len(decoding)
        segs = segments_for(len(decoding), [end - start for _, start, end in chunks],
                            getattr(self.runner, "decode_chunk", DECODE_CHUNK))
        t0 = time.perf_counter()
        picked = None
        if self.device == "cuda" and not self.return_logits and all(q.greedy for q in batch):
            # every row greedy: the GPU takes the argmax, only B ints cross (cuda_forward.py)
            ids = self.runner.forward_greedy(toks[:R], poss[:R], slots[:R], lasts[:len(batch)], segs)
            logits = None
            if (ids >= 0).all():
                picked = [int(i) for i in ids]
            else:                                # a row without a finite maximum: the sampler reports it
                logits = self.runner.logits_to_host(len(batch))
        else:
            logits = self.runner.forward(toks[:R], poss[:R], slots[:R], lasts[:len(batch)], segs)   # (B, V)
        dt = time.perf_counter() - t0
        st = self.stats
        st.steps += 1
        if prefill_rows:
            st.prefill_tokens += prefill_rows
            st.prefill_seconds += dt
        else:
            st.decode_tokens += len(batch)
            st.decode_seconds += dt
        for q in decoding:
            q.cached += 1
        for q, _, end in chunks:
            q.cached = end
        for q in completing:
            q.prefilled = True
        if picked is None:
            picked = self._pick_greedy(batch, logits)
        return [self._advance(seq, None if logits is None else logits[b], picked[b]) for b, seq in enumerate(batch)]

    @staticmethod
    def _pick_greedy(batch, logits) -> list:
        """Argmax of every plain-greedy row in one vectorised pass (None elsewhere).

        The same token the sampler picks (its greedy branch: argmax of the float64 copy, first
        index on ties; float32 -> float64 keeps the order); rows whose maximum is not finite
        (NaN, +inf, all masked) are left to the sampler, which raises its usual error."""
        rows = [b for b, q in enumerate(batch) if q.greedy]
        picked = [None] * len(batch)
        if not rows:
            return picked
        sub = logits if len(rows) == len(batch) else logits[rows]      # (n, V)
        best, top = sub.argmax(axis=1), sub.max(axis=1)
        finite = np.isfinite(top)
        for i, b in enumerate(rows):
            if finite[i]:
                picked[b] = int(best[i])
        return picked

    def _pick(self, seq: _Seq, logits) -> int:
        p = seq.params
        hist = None
        if p.repetition_penalty != 1.0 or p.frequency_penalty != 0.0 or p.presence_penalty != 0.0:
            hist = np.asarray(seq.prompt + seq.out_ids, dtype=np.int64)
        return int(self._sample(logits, temperature=p.temperature, top_k=p.top_k, top_p=p.top_p,
                                min_p=p.min_p, repetition_penalty=p.repetition_penalty,
                                frequency_penalty=p.frequency_penalty, presence_penalty=p.presence_penalty,
                                history=hist, rng=seq.rng))

    def _advance(self, seq: _Seq, logits, tid=None) -> StepOutput:
        if tid is None:
            tid = self._pick(seq, logits)
        seq.out_ids.append(tid)
        reason = None
        text = ""
        if tid in seq.stops:
            reason = "stop"
        else:
            if seq.text is not None:
                text = seq.text.feed(tid)
                if seq.text.stopped:
                    reason = "stop"
            if reason is None and len(seq.out_ids) >= seq.max_new:
                reason = "length"
        if reason is not None:
            if seq.text is not None:
                text += seq.text.finish()
            self._seqs.pop(seq.id, None)
            self._free.append(seq.slot)
        return StepOutput(id=seq.id, token_id=tid, text=text, finished=reason is not None,
                          finish_reason=reason, prompt_tokens=len(seq.prompt),
                          completion_tokens=len(seq.out_ids),
                          logits=logits.copy() if self.return_logits else None)

    # ------------------------------------------------------------------ one request
    def outputs(self, prompt_ids, params: SamplingParams | None = None):
        """Yield the StepOutputs of one request until it finishes (closing early cancels it)."""
        rid = self.add(GenerationRequest(list(prompt_ids), params or SamplingParams()))
        yield from self._drive(rid)

    def stream(self, prompt_ids, params: SamplingParams | None = None):
        """Yield the text pieces of one request (other queued requests advance too)."""
        rid = self.add(GenerationRequest(list(prompt_ids), params or SamplingParams()))
        for out in self._drive(rid):
            if out.text:
                yield out.text

    def generate(self, prompt_ids, params: SamplingParams | None = None) -> Completion:
        """Run one request to the end; ``text`` == "".join(stream(...)) for the same settings."""
        rid = self.add(GenerationRequest(list(prompt_ids), params or SamplingParams()))
        stops = self._seqs[rid].stops
        pieces, ids, last = [], [], None
        for out in self._drive(rid):
            pieces.append(out.text)
            ids.append(out.token_id)
            last = out
        if last.finish_reason == "stop" and ids[-1] in stops:
            ids.pop()                      # the stop token is not part of the reply
        return Completion(text="".join(pieces), token_ids=ids, finish_reason=last.finish_reason,
                          prompt_tokens=last.prompt_tokens, completion_tokens=last.completion_tokens)

    def _drive(self, rid: str):
        """Step the engine until request ``rid`` finishes, yielding its outputs."""
        try:
            while rid in self._seqs:
                for out in self.step():
                    if out.id == rid:
                        yield out
        finally:
            self.cancel(rid)      # a consumer that stops early frees the slot
