"""KV cache vs recomputation, measured (shared by ch3 §3.2.4 and ch9 Q5).

Without a cache, every new token runs the model over the whole sequence so far (``GPT.generate``
does exactly that): token t costs a forward over t positions, so a reply of N tokens after a
P-token prompt costs ~N·(P + N/2) position-forwards. With the KV cache (``scratchgpt.infer``) the
prompt is processed once and each new token is one position: it reads every weight once and
attends over the cached keys/values. Both give the same greedy tokens (checked here).
"""
from __future__ import annotations

import time

import numpy as np


def kv_vs_recompute(model, prompt_len: int, new_tokens: int, seed: int = 0, repeats: int = 3) -> dict:
    """Time greedy generation of ``new_tokens`` after a random ``prompt_len``-token prompt both ways
    (wall time of the whole generation, prompt included, per new token; best of ``repeats``)."""
    from ..infer import Engine, SamplingParams
    cfg = model.config
    n = min(new_tokens, cfg.block_size - prompt_len + 1)
    prompt = np.random.default_rng(seed).integers(0, cfg.vocab_size, prompt_len)
    model.eval()
    engine = Engine(model, None, max_batch_size=1)
    params = SamplingParams(max_new_tokens=n, ignore_eos=True)
    engine.generate([1, 2], SamplingParams(max_new_tokens=2, ignore_eos=True))       # load the kernels once
    model.generate(prompt[None, :2], 1, temperature=0.0)
    t_slow = t_fast = float("inf")
    for _ in range(repeats):            # best of a few: other processes on a shared machine only add time
        t0 = time.perf_counter()
        slow = model.generate(prompt[None], n, temperature=0.0)[0, prompt_len:].tolist()
        t1 = time.perf_counter()
        fast = engine.generate(prompt.tolist(), params).token_ids
        t2 = time.perf_counter()
        t_slow, t_fast = min(t_slow, t1 - t0), min(t_fast, t2 - t1)
    return {"prompt": prompt_len, "new": n, "recompute_ms_per_token": t_slow / n * 1e3,
            "kv_ms_per_token": t_fast / n * 1e3, "speedup": t_slow / t_fast, "same_tokens": slow == fast,
            "kv_cache_MB_per_sequence": engine.cache.nbytes / 1e6}


def batched_throughput(model, batch: int, prompt_len: int, new_tokens: int, repeats: int = 3) -> float:
    """Decode tokens/s with ``batch`` sequences generated together (one weight read serves all);
    best of ``repeats``."""
    from ..infer import Engine, GenerationRequest, SamplingParams
    engine = Engine(model, None, max_batch_size=batch)
    rng = np.random.default_rng(1)
    n = min(new_tokens, model.config.block_size - prompt_len + 1)
    p = SamplingParams(max_new_tokens=n, ignore_eos=True)
    best = 0.0
    for _ in range(repeats):
        engine.stats.__init__()
        for _ in range(batch):
            engine.add(GenerationRequest(rng.integers(0, model.config.vocab_size, prompt_len).tolist(), p))
        while engine.has_work():
            engine.step()
        st = engine.stats
        if st.decode_seconds:
            best = max(best, st.decode_tokens / st.decode_seconds)
    return best


def print_kv_table(model, prompt_lens, new_tokens: int) -> list:
    rows = [kv_vs_recompute(model, P, new_tokens) for P in prompt_lens]
    print(f"  {'prompt':>6} {'new':>4} {'recompute ms/token':>19} {'KV cache ms/token':>18} {'speed-up':>9} "
          f"{'same tokens':>11}")
    for r in rows:
        print(f"  {r['prompt']:6d} {r['new']:4d} {r['recompute_ms_per_token']:19.2f} {r['kv_ms_per_token']:18.2f} "
              f"{r['speedup']:8.1f}x {str(r['same_tokens']):>11}")
    print(f"  KV cache memory: {rows[0]['kv_cache_MB_per_sequence']:.2f} MB per sequence "
          f"(2 x layers x block_size x n_embd float32)")
    return rows
