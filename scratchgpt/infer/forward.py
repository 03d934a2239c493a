"""One forward pass of the decoder over the rows of an engine step, with the KV cache.

A step is a list of rows; row r is token ``tokens[r]`` at model position ``positions[r]`` of
the sequence in cache slot ``slots[r]``. A prompt is P rows of one slot (positions 0..P-1: the
prefill, one forward over the whole prompt); a decode step is one row per live sequence; one
step may mix both. For every layer (GPT-2 pre-LN block)::

    x   = wte[tok] + wpe[pos]                                   (R, C)   first layer only
    x  += σ(x·w_s + b_s) · x_prev     (smear models only: x_prev is the previous position's
                                       embedding, from the row before or kept per slot)
    h   = LN_1(x);  qkv = h W_attn + b                          (R, 3C)
    y   = attention of each row over its slot's cache           (R, C)   (k, v written first)
    x  += y W_proj + b;  h = LN_2(x)                            fused add + LayerNorm
    f   = gelu(h W_fc + b);  x += f W_mlp_proj + b              (R, 4C)
    logits = LN_f(x[last rows]) wteᵀ                            (n_last, V)  only where needed

Row independence: each linear is called per *segment* of rows — one prompt's prefill, or at
most ``decode_chunk`` decode rows (32 on the CPU, 8 on the GPU) — and every kernel computes a
row the same way whatever else is in the step, so a sequence gets bit-identical logits alone or
batched (DenseLinear's kernel and the quantized row kernels compute each row on its own; a
prompt of P rows always meets the same P-row call).

Serial or parallel kernels: pure decode steps run in the mode ``BuildChooser`` measures to be
faster at the moment (infer/build_choice.py: under CPU contention a step's ~50 parallel
regions each wait for a busy core; both modes give the same bits).

All buffers are allocated once for ``max_rows`` rows and reused (grown only when a longer
prefill arrives), so the steady decode state allocates nothing per token.
"""
from __future__ import annotations

import numpy as np

from ..ops.decode_attention import cached_attention
from ..ops.decode_embedding import embed_rows
from ..ops.decode_gelu import gelu_inplace
from ..ops.decode_layernorm import add_layernorm_rows, layernorm_rows
from .build_choice import BuildChooser
from .kv_cache import KVCache
from .weights import DecoderWeights

DECODE_CHUNK = 8        # decode rows per linear call on the GPU (cuda_forward.py: its decode kernels)
CPU_DECODE_CHUNK = 32   # ... on the CPU: the float32 kernel's rows never depend on the batch
                        # (ops/decode_matmul._dot_rows_kernel), the int ones' neither up to
                        # ops/quantized_matmul.ROWS_MAX_M (= this) rows


def segments_for(n_decode: int, prompt_lens, chunk: int = DECODE_CHUNK) -> list:
    """Row ranges [(start, end)]: decode rows first in chunks of ``chunk``, then one range per prompt."""
    segs = [(a, min(a + chunk, n_decode)) for a in range(0, n_decode, chunk)]
    start = n_decode
    for P in prompt_lens:
        segs.append((start, start + P))
        start += P
    return segs


def _apply(lin, src, dst, segs):
    """dst = lin(src) segment by segment (see 'Row independence')."""
    if len(segs) == 1:
        lin(src, dst)
        return
    for a, b in segs:
        lin(src[a:b], dst[a:b])


def layer_weights(w: DecoderWeights) -> list:
    """Per layer: (ln_1, c_attn, c_proj, ln_2, c_fc, mlp c_proj, attn adapter, mlp adapter)."""
    layers = []
    for i in range(w.n_layer):
        p = f"transformer.h.{i}"
        layers.append((
            w.layernorms[f"{p}.ln_1"], w.linear(f"{p}.attn.c_attn"), w.linear(f"{p}.attn.c_proj"),
            w.layernorms[f"{p}.ln_2"], w.linear(f"{p}.mlp.c_fc"), w.linear(f"{p}.mlp.c_proj"),
            w.adapters.get(f"{p}.attn.adapter"), w.adapters.get(f"{p}.mlp.adapter")))
    return layers


class DecoderRunner:
    """Runs ``DecoderWeights`` over step rows against a ``KVCache`` (see module docstring)."""

    decode_chunk = CPU_DECODE_CHUNK      # decode rows per linear call (segments_for)

    def __init__(self, w: DecoderWeights, cache: KVCache, max_rows: int, max_last: int,
                 chooser: BuildChooser | None = None):
        self.w = w
        self.chooser = chooser or BuildChooser()
        self.cache = cache
        self.max_last = int(max_last)
        self._layers = layer_weights(w)
        self._ln_f = w.layernorms["transformer.ln_f"]
        self._lm_head = w.linear("lm_head")
        self._hidden = self._layers[0][4].out_features if self._layers else 4 * w.n_embd
        self._adapter_size = max((d.out_features for d, _ in w.adapters.values()), default=0)
        self.rows = 0
        self._grow(max(1, int(max_rows)))
        self.logits_buf = np.empty((self.max_last, w.vocab_size), dtype=np.float32)   # (B, V)
        self.last_h = np.empty((self.max_last, w.n_embd), dtype=np.float32)           # (B, C)
        self.last_x = np.empty((self.max_last, w.n_embd), dtype=np.float32)           # (B, C)
        if w.smear is not None:
            # pre-smear embedding of each slot's latest position (what its next token mixes in)
            self.smear_prev = np.zeros((cache.n_slots, w.n_embd), dtype=np.float32)  # (S, C)

    def _grow(self, rows: int) -> None:
        if rows <= self.rows:
            return
        C, T, A = self.w.n_embd, self.cache.k.shape[3], self.w.attn_width
        f32 = np.float32
        self.x = np.empty((rows, C), f32)                     # residual stream (R, C)
        self.h = np.empty((rows, C), f32)                     # LayerNorm output (R, C)
        self.qkv = np.empty((rows, 3 * A), f32)               # (R, 3A), A = NH * HS (= C unpruned)
        self.y = np.empty((rows, A), f32)                     # attention output (R, A)
        self.a = np.empty((rows, C), f32)                     # sub-layer output (R, C)
        self.f = np.empty((rows, self._hidden), f32)          # MLP hidden (R, 4C)
        self.ad = np.empty((rows, max(self._adapter_size, 1)), f32)  # adapter bottleneck
        self.ad_out = np.empty((rows, C), f32)
        self.scores = np.empty((rows * self.w.n_head, T), f32)          # attention scratch
        self.scores_ibuf = np.empty((rows * self.w.n_head, T), np.int32)  # its exp scratch
        self.cache_pos = np.empty(rows, np.int64)
        self.rows = rows

    def _adapter(self, adapter, a, R, segs):
        """a <- a + up(gelu(down(a))) (Adapter after a sub-layer, nn/peft.py)."""
        down, up = adapter
        d = self.ad[:R, :down.out_features]
        _apply(down, a, d, segs)
        gelu_inplace(d)
        u = self.ad_out[:R]
        _apply(up, d, u, segs)
        a += u

    def _smear(self, x, tokens, positions, slots):
        """x[r] += σ(x[r]·w + b) · x_prev[r] on pre-smear embeddings (ops/smear.py), row by row.

        x_prev[r] is row r-1's embedding when that row is the same sequence's previous position
        (inside a prefill), else the one kept for the slot from an earlier step; position 0 has
        none. Afterwards each slot keeps its last row's pre-smear embedding."""
        R = x.shape[0]
        w, b = self.w.smear
        x0 = x.copy()                                                        # (R, C)
        same = np.zeros(R, dtype=bool)
        same[1:] = (slots[1:] == slots[:-1]) & (positions[1:] == positions[:-1] + 1)
        prev = self.smear_prev[slots]                                        # (R, C)
        prev[same] = x0[:-1][same[1:]]
        # per-row sums, not x0 @ w: BLAS gemv may sum a row differently depending on R, and a
        # row's result must not depend on the other rows (batched == single, bit for bit)
        gate = 1.0 / (1.0 + np.exp(-((x0 * w).sum(axis=1) + b[0])))           # (R,)
        gate[positions == 0] = 0.0
        x += gate.astype(np.float32)[:, None] * prev
        last = {}
        for r, sl in enumerate(slots.tolist()):       # rows are in position order within a slot
            last[sl] = r
        for sl, r in last.items():
            self.smear_prev[sl] = x0[r]

    def forward(self, tokens, positions, slots, last_rows, segs=None):
        """tokens, positions, slots (R,) int64; last_rows (B,) int64 rows whose logits are wanted;
        segs: row ranges for the linears (``segments_for``; default: all rows in one call).

        Returns logits (B, V) float32 — a view of a reused buffer, valid until the next call.
        """
        R = tokens.shape[0]
        B = last_rows.shape[0]
        if R == B:                       # every row is a last row: a pure decode step
            with self.chooser.run(R):
                return self._forward(tokens, positions, slots, last_rows, segs, R, B)
        return self._forward(tokens, positions, slots, last_rows, segs, R, B)

    def _forward(self, tokens, positions, slots, last_rows, segs, R, B):
        segs = segs or [(0, R)]
        self._grow(R)
        w = self.w
        eps = w.eps
        x, h, qkv, y, a, f = (self.x[:R], self.h[:R], self.qkv[:R], self.y[:R], self.a[:R], self.f[:R])
        cache_pos = self.cache_pos[:R]
        np.add(positions, self.cache.prefix_len, out=cache_pos)
        embed_rows(w.wte, w.wpe, tokens, positions, x)
        if w.smear is not None:
            self._smear(x, tokens, positions, slots)
        kc, vc = self.cache.k, self.cache.v
        for li, (ln1, c_attn, c_proj, ln2, c_fc, m_proj, ad_attn, ad_mlp) in enumerate(self._layers):
            if li == 0:
                layernorm_rows(x, ln1[0], ln1[1], eps, h)
            else:                                                # the previous MLP output joins here
                add_layernorm_rows(x, a, ln1[0], ln1[1], eps, h)
            _apply(c_attn, h, qkv, segs)
            cached_attention(qkv, kc[li], vc[li], slots, cache_pos, self.scores, y, self.scores_ibuf)
            _apply(c_proj, y, a, segs)
            if ad_attn is not None:
                self._adapter(ad_attn, a, R, segs)
            add_layernorm_rows(x, a, ln2[0], ln2[1], eps, h)
            _apply(c_fc, h, f, segs)
            gelu_inplace(f)
            _apply(m_proj, f, a, segs)
            if ad_mlp is not None:
                self._adapter(ad_mlp, a, R, segs)
        # final residual add + LN_f, only on the rows whose next token is wanted
        lx, lh = self.last_x[:B], self.last_h[:B]
        # mode="clip": with the default mode="raise" NumPy buffers ``out`` (a fresh (B, C) array
        # every step); last_rows are the engine's own row numbers, always < R
        np.take(x, last_rows, axis=0, out=lx, mode="clip")
        np.take(a, last_rows, axis=0, out=lh, mode="clip")
        add_layernorm_rows(lx, lh, self._ln_f[0], self._ln_f[1], eps, lh)
        logits = self.logits_buf[:B]
        _apply(self._lm_head, lh, logits, segments_for(B, (), self.decode_chunk))
        return logits
