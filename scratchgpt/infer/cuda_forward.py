"""The engine's forward pass on the GPU: the same rows, cache and math as forward.py, with every
weight, activation and the KV cache in device memory.

    Engine(model, tok, device="cuda")      # or a GPT already moved with model.to("cuda")

What crosses between host and device per step: the step's row indices in (tokens, positions,
cache slots, the smear bookkeeping and the rows whose logits are wanted: one small int64 copy),
and the logits of those last rows out (B, V) for the sampler — or, when every row of the step
decodes greedily, only the argmax of each row (``forward_greedy``: B int64, the argmax taken on
the device). Nothing else: weights are uploaded
once when the engine is built (or used in place when the GPT already lives on the GPU), the
cache is allocated once.

Per layer (forward.py's order, each step a kernel of ops/*_cuda.py):
    x = wte[tok] + wpe[pos]                   decode_embedding_cuda      (smear: smear_cuda rows)
    h = LN_1(x) (+ the previous MLP output)   decode_layernorm_cuda      fused add + LayerNorm
    qkv = h W + b                             decode_matmul_cuda / quantized_matmul_cuda rows;
                                              matmul_cuda's tiled kernel for a prefill of > 8 rows
    y = attention over the slot's cache       decode_attention_cuda      (k, v written first; the
                                              cache split into chunks for a long-context decode)
    x += y W_proj + b; h = LN_2(x); f = gelu(h W_fc + b); x += f W_mlp + b
    logits = LN_f(x[last rows]) wteᵀ          views_cuda.take_rows_cuda, then the lm_head rows

The linear protocol of infer/linear.py holds on the device too: ``CudaDenseLinear`` /
``CudaQuantLinear`` have in_features, out_features, nbytes and ``__call__(x, out)`` on device
arrays, so ``DecoderWeights`` (with device arrays inside) describes a GPU model as well.
Row independence as on the CPU: each row's result is computed the same way whatever else the
call holds (the row kernels give each (row, output) to one block row; the tiled kernel sums
each output over K in the same order for any M), so batched == single holds on the GPU too.
"""
from __future__ import annotations

import numpy as np

from ..backend import check_device, is_device_array, to_device, to_host
from ..errors import ConfigError
from .forward import DECODE_CHUNK, DecoderRunner, _apply, segments_for
from .linear import DenseLinear
from .weights import LINEAR_KINDS, DecoderWeights, as_decoder_weights


def _cuda():
    """The CUDA op modules, imported on first use (importing scratchgpt.infer never loads numba.cuda)."""
    check_device("cuda")
    from .. import cuda_arrays
    from ..ops import (decode_attention_cuda, decode_embedding_cuda, decode_layernorm_cuda, decode_matmul_cuda,
                       gelu_cuda, matmul_cuda, quantized_matmul_cuda, smear_cuda, views_cuda)
    return cuda_arrays, decode_attention_cuda, decode_embedding_cuda, decode_layernorm_cuda, decode_matmul_cuda, \
        gelu_cuda, matmul_cuda, quantized_matmul_cuda, smear_cuda, views_cuda


def _dev(a, dtype=np.float32):
    if a is None or is_device_array(a):
        return a
    return to_device(np.ascontiguousarray(a, dtype=dtype), "cuda")


# ----------------------------------------------------------------------------- linears
class CudaDenseLinear:
    """float32 y = x Wᵀ + b on the GPU, W output-major (``wt`` (out, in) device array)."""

    kind = "float32"

    def __init__(self, wt, bias=None):
        self.wt = _dev(wt)
        self.bias = _dev(bias)
        self.out_features, self.in_features = (int(s) for s in self.wt.shape)
        self.nbytes = int(self.wt.size * 4 + (0 if self.bias is None else self.bias.size * 4))

    def __call__(self, x, out):                          # x (M, in) -> out (M, out), device arrays
        from ..ops.decode_matmul_cuda import dense_rows_cuda
        from ..ops.matmul_cuda import matmul2d_cuda
        if x.shape[0] > DECODE_CHUNK:                    # a prefill: shared-memory tiles reuse W across rows
            return matmul2d_cuda(x, self.wt, tb=True, bias=self.bias, out=out)
        return dense_rows_cuda(x, self.wt, self.bias, out)

    def __repr__(self) -> str:
        return f"CudaDenseLinear({self.in_features}, {self.out_features}, bias={self.bias is not None})"


class CudaQuantLinear:
    """Weight-only int8 / int4 y = x W~ + b on the GPU, from the packed weights of an
    Int8Linear / Int4Linear (infer/quantize.py), uploaded as they are. The CPU's ``act_quant``
    (int8 activations in decode) is not used here: the GPU keeps float32 activations."""

    def __init__(self, lin):
        self.bits = int(lin.bits)
        self.qweight = _dev(lin.qweight, lin.qweight.dtype)
        self.scales = _dev(lin.scales)
        self.bias = _dev(lin.bias)
        self.in_features, self.out_features = int(lin.in_features), int(lin.out_features)
        self.group_size = lin.group_size
        self.nbytes = int(lin.nbytes)

    def __call__(self, x, out):
        from ..ops.quantized_matmul_cuda import int4_linear_cuda, int8_linear_cuda
        fn = int8_linear_cuda if self.bits == 8 else int4_linear_cuda
        return fn(x, self.qweight, self.scales, self.bias, out=out)

    def __repr__(self) -> str:
        return f"CudaQuantLinear(int{self.bits}, {self.in_features}, {self.out_features}, group={self.group_size})"


def cuda_linear(lin):
    """The GPU twin of an engine linear (DenseLinear, Int8Linear, Int4Linear)."""
    if isinstance(lin, (CudaDenseLinear, CudaQuantLinear)):
        return lin
    if isinstance(lin, DenseLinear):
        return CudaDenseLinear(lin.wt, lin.bias)
    if getattr(lin, "bits", None) in (4, 8) and hasattr(lin, "qweight"):
        return CudaQuantLinear(lin)
    raise ConfigError(f"--device cuda: the engine has no GPU kernel for {type(lin).__name__} linears")


def to_cuda_weights(w: DecoderWeights) -> DecoderWeights:
    """A copy of host ``DecoderWeights`` with every array and linear on the GPU (uploaded once)."""
    _cuda()
    pair = lambda p: (_dev(p[0]), _dev(p[1]))                               # noqa: E731
    return DecoderWeights(
        n_layer=w.n_layer, n_head=w.n_head, n_embd=w.n_embd, block_size=w.block_size, vocab_size=w.vocab_size,
        eps=w.eps, wte=_dev(w.wte), wpe=_dev(w.wpe),
        layernorms={k: pair(v) for k, v in w.layernorms.items()},
        linears={k: cuda_linear(v) for k, v in w.linears.items()},
        adapters={k: (cuda_linear(d), cuda_linear(u)) for k, (d, u) in w.adapters.items()},
        prefixes={k: (np.asarray(to_host(pk)), np.asarray(to_host(pv))) for k, (pk, pv) in w.prefixes.items()},
        prefix_len=w.prefix_len, kind=w.kind, head_dim=w.head_dim,
        smear=None if w.smear is None else pair(w.smear))


def gpt_cuda_weights(model) -> DecoderWeights:
    """DecoderWeights of a GPT whose parameters already live on the GPU, without a trip to the
    host: embeddings, LayerNorms and biases are used in place; each linear weight (in, out) is
    transposed once on the device into the output-major layout the row kernels read."""
    cu = _cuda()
    cuda_arrays, views_cuda = cu[0], cu[-1]
    cfg = model.config
    tr = model.transformer
    C = cfg.n_embd
    if _has_peft(model):
        return to_cuda_weights(_host_decoder_weights(model))

    def ln(mod):
        b = mod.bias.data if mod.bias is not None else cuda_arrays.zeros(C)
        return mod.weight.data, b

    def lin(mod):
        b = None if mod.bias is None else mod.bias.data
        return CudaDenseLinear(views_cuda.transpose2d_cuda(mod.weight.data), b)

    lns = {"transformer.ln_f": ln(tr.ln_f)}
    lins = {}
    for i, block in enumerate(tr.h):
        p = f"transformer.h.{i}"
        lns[f"{p}.ln_1"] = ln(block.ln_1)
        lns[f"{p}.ln_2"] = ln(block.ln_2)
        for kind in LINEAR_KINDS:
            sub, leaf = kind.split(".")
            lins[f"{p}.{kind}"] = lin(getattr(getattr(block, sub), leaf))
    wte = tr.wte.weight.data
    lins["lm_head"] = CudaDenseLinear(wte)               # tied: wte (V, C) is already output-major
    smear = None
    if getattr(cfg, "smear", False):
        smear = (tr.smear.weight.data, tr.smear.bias.data)
    return DecoderWeights(n_layer=cfg.n_layer, n_head=cfg.n_head, n_embd=C, block_size=cfg.block_size,
                          vocab_size=cfg.vocab_size, eps=float(cfg.layer_norm_eps), wte=wte, wpe=tr.wpe.weight.data,
                          layernorms=lns, linears=lins, head_dim=getattr(cfg, "head_size", C // cfg.n_head),
                          smear=smear)


def _has_peft(model) -> bool:
    return any(hasattr(mod, "lora_A") or getattr(mod, "prefix_k", None) is not None
               or getattr(mod, "adapter", None) is not None for _, mod in model.named_modules())


def _host_decoder_weights(model) -> DecoderWeights:
    """Host DecoderWeights of a GPU model with PEFT layers (LoRA folded in, adapters, prefixes):
    each parameter is copied to the host once, read by ``decoder_weights``, and the model gets its
    own device arrays back untouched — the copy happens once, when the engine is built."""
    from .weights import decoder_weights
    params = model.parameters()
    kept = [p.data for p in params]
    try:
        for p in params:
            p.data = to_host(p.data).copy()
        return decoder_weights(model)
    finally:
        for p, d in zip(params, kept):
            p.data = d


def model_device(model) -> str:
    """"cuda" for a module whose parameters live on the GPU, else "cpu"."""
    try:
        return "cuda" if getattr(model, "device", "cpu") == "cuda" else "cpu"
    except Exception:
        return "cpu"


def cuda_decoder_weights(model) -> DecoderWeights:
    """DecoderWeights on the GPU for a GPT (on either device), a quantized model or host weights."""
    if model_device(model) == "cuda" and hasattr(model, "transformer"):
        return gpt_cuda_weights(model)
    return to_cuda_weights(as_decoder_weights(model))


# ----------------------------------------------------------------------------- cache
class CudaKVCache:
    """kv_cache.KVCache's layout (n_layer, n_slots, n_head, prefix_len + block_size, head_dim), in
    device memory; learned prefixes written once into every slot."""

    def __init__(self, n_layer, n_slots, n_head, block_size, head_dim, prefixes=None, prefix_len=0):
        cuda_arrays = _cuda()[0]
        self.prefix_len = int(prefix_len)
        self.block_size = int(block_size)
        T = self.prefix_len + self.block_size
        shape = (n_layer, n_slots, n_head, T, head_dim)
        if self.prefix_len:
            k = np.zeros(shape, np.float32)
            v = np.zeros(shape, np.float32)
            for layer, (pk, pv) in (prefixes or {}).items():
                k[layer, :, :, :self.prefix_len] = pk[None]
                v[layer, :, :, :self.prefix_len] = pv[None]
            self.k, self.v = _dev(k), _dev(v)
        else:
            self.k, self.v = cuda_arrays.zeros(shape), cuda_arrays.zeros(shape)
        self.shape = shape

    @property
    def n_slots(self) -> int:
        return self.shape[1]

    @property
    def nbytes(self) -> int:
        return int(2 * np.prod(self.shape) * 4)


# ----------------------------------------------------------------------------- the runner
class CudaDecoderRunner(DecoderRunner):
    """forward.DecoderRunner's interface on the GPU: ``forward(tokens, positions, slots,
    last_rows, segs)`` with host int arrays in, host logits (B, V) float32 out (``logits_buf``, the
    host buffer the base class allocates, receives them). Its other buffers live on the device.

    Every buffer a step uses is allocated here, once (and again only when a step has more rows
    than any before, ``_grow``): activations, the logits and greedy picks, the step's row indices
    (``meta_dev``, filled by one copy from ``meta_host``) and the split attention kernel's
    partial results (``att_scratch``). So a decode step allocates no device memory at all
    (tests/test_cuda_transfers.py counts it) — on hardware no memalloc, pool or not."""

    decode_chunk = DECODE_CHUNK          # its decode kernels take up to 8 rows; more go to the tiles

    def __init__(self, w: DecoderWeights, cache: CudaKVCache, max_rows: int, max_last: int):
        (self._ca, self._att, self._emb, self._ln, self._mm, self._gelu, _, _, self._smear,
         self._views) = _cuda()
        super().__init__(w, cache, max_rows, max_last)      # calls this class's _grow: device buffers
        empty = self._ca.empty
        self.logits_dev = empty((self.max_last, w.vocab_size))                   # (B, V)
        self.last_h = empty((self.max_last, w.n_embd))                           # (B, C)
        self.last_x = empty((self.max_last, w.n_embd))
        self.picks_dev = self._ca.empty(self.max_last, np.int64)                  # greedy picks (B,)
        self.picks_host = np.empty(self.max_last, np.int64)                       # ... copied here
        if w.smear is not None:
            self.smear_prev = self._ca.zeros((cache.n_slots, w.n_embd))         # (S, C)

    def _grow(self, rows: int) -> None:
        if rows <= self.rows:
            return
        C, A, empty = self.w.n_embd, self.w.attn_width, self._ca.empty
        self.x = empty((rows, C))                     # residual stream (R, C)
        self.h = empty((rows, C))                     # LayerNorm output
        self.qkv = empty((rows, 3 * A))
        self.y = empty((rows, A))                     # attention output
        self.a = empty((rows, C))                     # sub-layer output
        self.f = empty((rows, self._hidden))          # MLP hidden
        self.ad = empty((rows, max(self._adapter_size, 1)))
        self.ad_out = empty((rows, C))
        if self.w.smear is not None:
            self.x0 = empty((rows, C))                # pre-smear embeddings
            self.gate = empty(rows)
        # the step's row indices: tokens, positions, cache positions, slots (+ smear src, keep)
        # (R each), then the last rows (B): filled on the host, one copy to the device per step
        n_meta = (6 if self.w.smear is not None else 4) * rows + self.max_last
        self.meta_host = np.empty(n_meta, np.int64)
        self.meta_dev = empty(n_meta, np.int64)
        # the split attention kernel's partial results, for as many rows as it takes (it runs only
        # while rows x heads <= SPLIT_MAX_PAIRS) and the whole cache length
        nh = self.w.n_head
        split_rows = min(rows, max(1, self._att.SPLIT_MAX_PAIRS // nh))
        self.att_scratch = empty(self._att.split_scratch_size(split_rows, nh, self.cache.k.shape[3],
                                                               self.cache.k.shape[4]))
        self.rows = rows

    def _adapter(self, adapter, a, R, segs):
        down, up = adapter
        width = down.out_features                     # <= the widest adapter's: the front of ad, contiguous
        d = self._ca.flat(self.ad)[:R * width].reshape((R, width))
        _apply(down, a, d, segs)
        self._gelu.gelu_inplace_cuda(d)
        u = self.ad_out[:R]
        _apply(up, d, u, segs)
        self._ca.add_into(a, u)

    @staticmethod
    def _smear_rows(slots, positions):
        """src[r]: the row of the previous position in this step, -1 (the slot's kept one) or -2
        (position 0); keep[r]: 1 on each slot's last row."""
        R = slots.shape[0]
        same = np.zeros(R, dtype=bool)
        same[1:] = (slots[1:] == slots[:-1]) & (positions[1:] == positions[:-1] + 1)
        src = np.where(same, np.arange(R) - 1, -1)
        src[positions == 0] = -2
        keep = np.zeros(R, np.int64)
        last = {}
        for r, sl in enumerate(slots.tolist()):
            last[sl] = r
        keep[list(last.values())] = 1
        return src, keep

    def forward(self, tokens, positions, slots, last_rows, segs=None):
        """Host int arrays (R,) and last_rows (B,); returns logits (B, V) float32 on the host (a view
        of a reused buffer, valid until the next call)."""
        logits = self._forward_device(tokens, positions, slots, last_rows, segs)
        out = self.logits_buf[:logits.shape[0]]
        logits.copy_to_host(out)                        # the one device -> host copy of the step
        return out

    def forward_greedy(self, tokens, positions, slots, last_rows, segs=None):
        """The same step for rows that all decode greedily: the argmax of each row's logits is
        taken on the device (ops/argmax_rows_cuda.py) and only those B int64 cross to the host —
        8 bytes a row instead of 4·V. A row whose logits have no finite maximum comes back -1;
        ``logits_to_host`` then gives the step's logits for the sampler to report it."""
        from ..ops.argmax_rows_cuda import argmax_rows_cuda
        logits = self._forward_device(tokens, positions, slots, last_rows, segs)
        B = logits.shape[0]
        ids = argmax_rows_cuda(logits, out=self.picks_dev[:B])
        return ids.copy_to_host(self.picks_host[:B])   # a view of a reused buffer, like forward's logits

    def logits_to_host(self, B: int):
        out = self.logits_buf[:B]
        self.logits_dev[:B].copy_to_host(out)
        return out

    def _forward_device(self, tokens, positions, slots, last_rows, segs=None):
        R = int(tokens.shape[0])
        B = int(last_rows.shape[0])
        segs = segs or [(0, R)]
        self._grow(R)
        w = self.w
        eps = w.eps
        # the step's row indices: one host -> device copy into the preallocated meta_dev
        n_parts = 6 if w.smear is not None else 4
        mh = self.meta_host
        mh[:R] = tokens
        mh[R:2 * R] = positions
        np.add(mh[R:2 * R], self.cache.prefix_len, out=mh[2 * R:3 * R])
        mh[3 * R:4 * R] = slots
        if w.smear is not None:
            mh[4 * R:5 * R], mh[5 * R:6 * R] = self._smear_rows(np.asarray(slots), np.asarray(positions))
        mh[n_parts * R:n_parts * R + B] = last_rows
        meta = self.meta_dev[:n_parts * R + B]
        meta.copy_to_device(mh[:n_parts * R + B])
        tok, pos, cpos, slot = (meta[i * R:(i + 1) * R] for i in range(4))
        last = meta[n_parts * R:n_parts * R + B]
        x, h, qkv, y, a, f = (self.x[:R], self.h[:R], self.qkv[:R], self.y[:R], self.a[:R], self.f[:R])
        self._emb.embed_rows_cuda(w.wte, w.wpe, tok, pos, x)
        if w.smear is not None:
            src, keep = meta[4 * R:5 * R], meta[5 * R:6 * R]
            x0 = self.x0[:R]
            self._ca.launch1(self._ca._copy, x.size, self._ca.flat(x), self._ca.flat(x0))
            self._smear.smear_rows_cuda(x, x0, src, slot, self.smear_prev, w.smear[0], w.smear[1], self.gate)
            self._smear.keep_rows_cuda(x0, keep, slot, self.smear_prev)
        kc, vc = self.cache.k, self.cache.v
        max_len = int(np.max(positions)) + 1 + self.cache.prefix_len if R else 1   # the longest cache read
        ln_rows, add_ln_rows = self._ln.layernorm_rows_cuda, self._ln.add_layernorm_rows_cuda
        for li, (ln1, c_attn, c_proj, ln2, c_fc, m_proj, ad_attn, ad_mlp) in enumerate(self._layers):
            if li == 0:
                ln_rows(x, ln1[0], ln1[1], eps, out=h)
            else:                                                # the previous MLP output joins here
                add_ln_rows(x, a, ln1[0], ln1[1], eps, out=h)
            _apply(c_attn, h, qkv, segs)
            self._att.cached_attention_cuda(qkv, kc[li], vc[li], slot, cpos, w.n_head, out=y, max_len=max_len,
                                            scratch=self.att_scratch)
            _apply(c_proj, y, a, segs)
            if ad_attn is not None:
                self._adapter(ad_attn, a, R, segs)
            add_ln_rows(x, a, ln2[0], ln2[1], eps, out=h)
            _apply(c_fc, h, f, segs)
            self._gelu.gelu_inplace_cuda(f)
            _apply(m_proj, f, a, segs)
            if ad_mlp is not None:
                self._adapter(ad_mlp, a, R, segs)
        lx = self._views.take_rows_cuda(x, last, out=self.last_x[:B])
        lh = self._views.take_rows_cuda(a, last, out=self.last_h[:B])
        add_ln_rows(lx, lh, self._ln_f[0], self._ln_f[1], eps, out=lh)
        logits = self.logits_dev[:B]
        _apply(self._lm_head, lh, logits, segments_for(B, (), self.decode_chunk))
        return logits


def cuda_engine_parts(model, n_slots: int, max_rows: int, max_last: int):
    """(DecoderWeights on the GPU, CudaKVCache, CudaDecoderRunner) for ``Engine(device="cuda")``."""
    w = cuda_decoder_weights(model)
    cache = CudaKVCache(w.n_layer, n_slots, w.n_head, w.block_size, w.head_dim, w.prefixes, w.prefix_len)
    return w, cache, CudaDecoderRunner(w, cache, max_rows=max_rows, max_last=max_last)
