"""Weight-only int8 / int4 quantization of a GPT, and quantized checkpoints.

What is quantized (``QuantConfig``, every choice configurable):
* the four matmul weights of every block — attn.c_attn, attn.c_proj, mlp.c_fc, mlp.c_proj
  (``kinds``): 85 M of GPT-2 124M's 124 M parameters;
* the output layer ``lm_head`` (``lm_head=True``, default): tied to wte, it is one more matmul
  (V x C, 38.6 M parameters on GPT-2: 31 % of the bytes a float32 decode step reads) —
  quantized as its own copy, so the embedding lookup keeps the float32 table;
* the token-embedding table itself only with ``embeddings=True`` (requires ``lm_head``): the
  file then stores wte once, as the lm_head's quantized rows, and the lookup table is
  dequantized at load time. This saves file size, not decode time (a lookup reads one row);
* never: LayerNorm weights, biases and wpe (0.1 % of the parameters; LayerNorm gains scale
  whole channels, where a quantization error is not averaged out over a dot product).
Activations (``act_quant=True``, default): in decode steps (up to 32 rows per matmul) each
linear's input row is also quantized to int8, per block of 32 features with one float32 scale
(llama.cpp's Q8_0 activations), and the block products run in integers — about 2.4x faster
matrix-vector products (ops/quantized_matmul.py). Its price: each activation moves by at most
half its block's step, measured on the demo model in chapters/ch3.md §3.2.4. Prefills and
batches of more than 32 rows keep float32 activations. ``act_quant=False`` is the weight-only
path; checkpoints written before this option existed load with it off (what they computed).
Arithmetic and packed layouts: scratchgpt/ops/quantized_matmul.py.

Checkpoint (a directory, never pickle):
* ``config.json``: {"scratchgpt_model": "gpt-quantized", "scratchgpt_config": GPTConfig,
  "quantization": QuantConfig + format version, "weights_sha256": hash of model.safetensors}.
  ``GPT.load`` refuses it by name (it is not a float GPT), and so does HF (no model_type).
* ``model.safetensors``: float tensors under their GPT-2 names, and per quantized linear
  ``<name>.qweight`` (int8 (N, Kp) or uint8 (N, Kp/2)), ``<name>.scales`` (float32 (N, Kp/G)),
  ``<name>.bias`` (float32, when the model has biases).
* ``tokenizer.json``.
Loading checks the hash first (a corrupted or swapped file is refused), then every expected
tensor's name, dtype and shape (a file from another config is refused naming the tensor).
"""
from __future__ import annotations

import hashlib
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .. import ops
from ..autograd import Tensor, no_grad
from ..errors import CheckpointError, ConfigError
from ..models import GPT, GPTConfig
from ..models import checkpoint as ckpt
from ..models.gpt import IGNORE_INDEX, masked_targets
from ..ops.quantized_matmul import (DEFAULT_GROUP_SIZE, check_group_size, dequantize_int4_ref,
                                    dequantize_int8_ref, int4_matmul, int8_matmul, quantize_int4,
                                    quantize_int8)

MODEL_KIND = "gpt-quantized"
FORMAT_VERSION = 1
BLOCK_KINDS = ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")
TOKENIZER_FILE = "tokenizer.json"


@dataclass(frozen=True)
class QuantConfig:
    bits: int = 8
    group_size: int = DEFAULT_GROUP_SIZE
    kinds: tuple = BLOCK_KINDS          # which block linears
    lm_head: bool = True                # quantize the (tied) output layer
    embeddings: bool = False            # store wte only in quantized form (needs lm_head)
    act_quant: bool = True              # decode rows: int8 activations x int8/int4 weights in integers

    def __post_init__(self):
        if self.bits not in (8, 4) or isinstance(self.bits, bool):
            raise ConfigError(f"bits must be 8 or 4, got {self.bits!r}")
        check_group_size(self.group_size, self.bits)
        object.__setattr__(self, "kinds", tuple(self.kinds))
        bad = [k for k in self.kinds if k not in BLOCK_KINDS]
        if bad:
            raise ConfigError(f"unknown linear kind(s) {bad}; expected some of {list(BLOCK_KINDS)}")
        if self.embeddings and not self.lm_head:
            raise ConfigError("embeddings=True stores wte as the quantized lm_head, so it needs lm_head=True")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["kinds"] = list(self.kinds)
        return d


# ----------------------------------------------------------------------------- linears
class _QuantLinear:
    """Shared shape/bytes bookkeeping; subclasses set ``bits`` and the two functions."""

    bits = 0

    def __init__(self, qweight, scales, bias, in_features: int, act_quant: bool = False):
        self.qweight = np.ascontiguousarray(qweight)                     # (N, Kp) or (N, Kp/2)
        self.scales = np.ascontiguousarray(scales, dtype=np.float32)      # (N, ng)
        self.bias = None if bias is None else np.ascontiguousarray(bias, dtype=np.float32)
        self.in_features = int(in_features)
        self.out_features = int(self.qweight.shape[0])
        per_row = self.qweight.shape[1] * (8 // self.bits)
        self.group_size = per_row // self.scales.shape[1]
        self.nbytes = int(self.qweight.nbytes + self.scales.nbytes
                          + (0 if self.bias is None else self.bias.nbytes))
        self.act_quant = bool(act_quant)
        self._mm = self._matmul(self.qweight, self.scales, self.bias, self.in_features, self.act_quant)

    def __call__(self, x, out):                                          # x (M, in) -> out (M, out)
        return self._mm(x, out)

    def dequantized(self) -> np.ndarray:
        """W~ (in, out) float32: the weight this linear multiplies by."""
        return self._deq(self.qweight, self.scales, self.in_features).astype(np.float32)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.in_features}, {self.out_features}, group={self.group_size}, "
                f"bias={self.bias is not None}, act_quant={self.act_quant})")


class Int8Linear(_QuantLinear):
    bits = 8
    _matmul = staticmethod(int8_matmul)
    _deq = staticmethod(dequantize_int8_ref)

    @classmethod
    def from_weight(cls, w, bias=None, group_size: int = DEFAULT_GROUP_SIZE, act_quant: bool = False) -> "Int8Linear":
        """From GPT-2's (in, out) layout."""
        q, s = quantize_int8(w, group_size)
        return cls(q, s, bias, np.shape(w)[0], act_quant)


class Int4Linear(_QuantLinear):
    bits = 4
    _matmul = staticmethod(int4_matmul)
    _deq = staticmethod(dequantize_int4_ref)

    @classmethod
    def from_weight(cls, w, bias=None, group_size: int = DEFAULT_GROUP_SIZE, act_quant: bool = False) -> "Int4Linear":
        p, s = quantize_int4(w, group_size)
        return cls(p, s, bias, np.shape(w)[0], act_quant)


LINEAR_CLASSES = {8: Int8Linear, 4: Int4Linear}


# ----------------------------------------------------------------------------- the model
@dataclass
class QuantizedGPT:
    """A GPT whose matmul weights are packed int8/int4. Runs in the engine (``decoder_weights``);
    ``simulated_gpt()`` gives a float GPT that computes with the same dequantized weights, for
    the training-side evaluation code (loss, perplexity)."""

    config: object                       # GPTConfig
    qconfig: QuantConfig
    floats: dict                         # GPT-2 name -> float32 array (wte unless embeddings, wpe, LN, unquantized linears)
    qlinears: dict                       # linear name -> Int8Linear / Int4Linear
    training: bool = field(default=False)

    def eval(self):
        return self

    def __call__(self, idx, targets=None, loss_mask=None):
        """(logits, loss) like GPT's forward, through the simulated float twin (built on first
        use: evaluation code that recomputes a context past the engine's window needs it)."""
        if getattr(self, "_simulated", None) is None:
            self._simulated = self.simulated_gpt()
        return self._simulated(idx, targets, loss_mask)

    def train(self, mode: bool = True):
        if mode:
            raise ConfigError("a quantized model cannot be trained; fine-tune the float32 model instead")
        return self

    # -- views
    def wte(self) -> np.ndarray:
        if "transformer.wte.weight" in self.floats:
            return self.floats["transformer.wte.weight"]
        return self.qlinears["lm_head"].dequantized().T.copy()            # (V, C)

    def linear_weight(self, name: str):
        """(W~ (in, out) float32, bias) of a block linear, quantized or not."""
        if name in self.qlinears:
            lin = self.qlinears[name]
            return lin.dequantized(), lin.bias
        return self.floats[f"{name}.weight"], self.floats.get(f"{name}.bias")

    @property
    def nbytes(self) -> int:
        return int(sum(a.nbytes for a in self.floats.values()) + sum(q.nbytes for q in self.qlinears.values()))

    def decoder_weights(self):
        """The engine's DecoderWeights with Int8Linear/Int4Linear objects (infer/weights.py)."""
        from .linear import DenseLinear
        from .weights import LINEAR_KINDS, DecoderWeights
        cfg = self.config
        C = cfg.n_embd
        zeros = np.zeros(C, dtype=np.float32)
        f = self.floats

        def ln(prefix):
            return f[f"{prefix}.weight"], f.get(f"{prefix}.bias", zeros)

        lns = {"transformer.ln_f": ln("transformer.ln_f")}
        lins = {}
        for i in range(cfg.n_layer):
            p = f"transformer.h.{i}"
            lns[f"{p}.ln_1"] = ln(f"{p}.ln_1")
            lns[f"{p}.ln_2"] = ln(f"{p}.ln_2")
            for kind in LINEAR_KINDS:
                name = f"{p}.{kind}"
                lins[name] = self.qlinears[name] if name in self.qlinears else \
                    DenseLinear.from_weight(f[f"{name}.weight"], f.get(f"{name}.bias"))
        wte = np.ascontiguousarray(self.wte(), dtype=np.float32)
        lins["lm_head"] = self.qlinears.get("lm_head") or DenseLinear(wte)
        smear = None
        if getattr(cfg, "smear", False):   # the smear gate stays float32 (2 small vectors)
            smear = (f["transformer.smear.weight"], f["transformer.smear.bias"])
        return DecoderWeights(n_layer=cfg.n_layer, n_head=cfg.n_head, n_embd=C, block_size=cfg.block_size,
                              vocab_size=cfg.vocab_size, eps=float(cfg.layer_norm_eps), wte=wte,
                              wpe=f["transformer.wpe.weight"], layernorms=lns, linears=lins,
                              kind=f"int{self.qconfig.bits}", head_dim=cfg.head_size, smear=smear)

    def simulated_gpt(self):
        """A float32 GPT with every quantized weight replaced by its dequantized value, whose
        output layer is the quantized lm_head: the same function the engine computes (up to
        float32 summation order) for weight-only models, for loss / perplexity with the
        training-side code. It keeps float32 activations: with ``act_quant`` the engine's decode
        steps also round each linear's input (see the module docstring)."""
        model = SimulatedQuantGPT(self.config, seed=0)
        head = self.qlinears.get("lm_head")
        if head is not None:       # weight-only even with act_quant: float activations, as everywhere here
            head = type(head)(head.qweight, head.scales, head.bias, head.in_features, act_quant=False)
        model._lm_head = head
        params = dict(model.named_parameters())
        for name, p in params.items():
            if name == "transformer.wte.weight":
                p.data[...] = self.wte()
            elif name in self.floats:
                p.data[...] = self.floats[name]
            else:                                       # <linear>.weight / .bias of a quantized linear
                lin_name, leaf = name.rsplit(".", 1)
                lin = self.qlinears[lin_name]
                p.data[...] = lin.dequantized() if leaf == "weight" else lin.bias
        model.eval()
        return model


class SimulatedQuantGPT(GPT):
    """GPT whose tied output layer may be a quantized linear (forward only, no gradients)."""

    _lm_head = None

    def forward(self, idx, targets=None, loss_mask=None):
        if self._lm_head is None:
            return super().forward(idx, targets, loss_mask)
        with no_grad():
            h = self.hidden_states(idx).data                             # (B, T, C)
        B, T, C = h.shape
        x = np.ascontiguousarray(h.reshape(B * T, C), dtype=np.float32)
        logits = np.empty((B * T, self.config.vocab_size), dtype=np.float32)
        self._lm_head(x, logits)                                         # (B*T, V)
        logits = Tensor(logits.reshape(B, T, -1))
        if targets is None:
            return logits, None
        tgt = masked_targets(targets, loss_mask, (B, T))
        return logits, ops.cross_entropy(logits, tgt, ignore_index=IGNORE_INDEX)


# ----------------------------------------------------------------------------- quantize
def quantize_gpt(model, qcfg: QuantConfig | None = None, progress: bool = False) -> QuantizedGPT:
    """Quantize a float GPT (LoRA merged first, if any: the engine would run the merged weight)."""
    qcfg = qcfg or QuantConfig()
    cfg = model.config
    if any(hasattr(m, "adapter") and m.adapter is not None for b in model.transformer.h
           for m in (b.attn, b.mlp)) or getattr(model.transformer.h[0].attn, "prefix_k", None) is not None:
        raise ConfigError("quantize: Adapter / Prefix-tuning models are not supported; "
                          "quantize a full or LoRA model")
    cls = LINEAR_CLASSES[qcfg.bits]
    floats, qlinears = {}, {}
    params = dict(model.named_parameters())
    todo = []
    for i, block in enumerate(model.transformer.h):
        for kind in BLOCK_KINDS:
            sub, leaf = kind.split(".")
            todo.append((f"transformer.h.{i}.{kind}", getattr(getattr(block, sub), leaf), kind))
    it = todo
    if progress:
        from tqdm import tqdm
        it = tqdm(todo, desc=f"int{qcfg.bits}", unit="matrix", dynamic_ncols=True, mininterval=0.5)
    for name, mod, kind in it:
        w = mod.weight.data                                              # (in, out)
        if hasattr(mod, "lora_A") and not mod.merged:                    # LoRA: the merged weight
            w = w + mod.delta()
        b = None if mod.bias is None else mod.bias.data                  # (out,)
        if kind in qcfg.kinds:
            qlinears[name] = cls.from_weight(w, b, qcfg.group_size, qcfg.act_quant)
        else:
            floats[f"{name}.weight"] = np.ascontiguousarray(w, dtype=np.float32)
            if b is not None:
                floats[f"{name}.bias"] = np.ascontiguousarray(b, dtype=np.float32)
    wte = params["transformer.wte.weight"].data                          # (V, C) = lm_head's Wᵀ
    if qcfg.lm_head:
        qlinears["lm_head"] = cls.from_weight(wte.T, None, qcfg.group_size, qcfg.act_quant)
    if not qcfg.embeddings:
        floats["transformer.wte.weight"] = np.ascontiguousarray(wte, dtype=np.float32)
    for name, p in params.items():                                       # wpe, LayerNorms
        if name == "transformer.wte.weight" or name.rsplit(".", 1)[0] in qlinears or name in floats:
            continue
        if any(name.startswith(f"{n}.") for n, _, _ in todo):
            continue
        floats[name] = np.ascontiguousarray(p.data, dtype=np.float32)
    return QuantizedGPT(cfg, qcfg, floats, qlinears)


# ----------------------------------------------------------------------------- save / load
def _sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def param_shapes(cfg) -> dict:
    """GPT parameter name -> shape, from the config alone (no 0.5 GB model built to ask it)."""
    C, A, H = cfg.n_embd, cfg.attn_dim, cfg.mlp_dim
    shapes = {"transformer.wte.weight": (cfg.vocab_size, C), "transformer.wpe.weight": (cfg.block_size, C)}

    def lin(name, k, n):
        shapes[f"{name}.weight"] = (k, n)
        if cfg.bias:
            shapes[f"{name}.bias"] = (n,)

    def ln(name):
        shapes[f"{name}.weight"] = (C,)
        if cfg.bias:
            shapes[f"{name}.bias"] = (C,)

    for i in range(cfg.n_layer):
        p = f"transformer.h.{i}"
        ln(f"{p}.ln_1")
        lin(f"{p}.attn.c_attn", C, 3 * A)
        lin(f"{p}.attn.c_proj", A, C)
        ln(f"{p}.ln_2")
        lin(f"{p}.mlp.c_fc", C, H)
        lin(f"{p}.mlp.c_proj", H, C)
    ln("transformer.ln_f")
    if getattr(cfg, "smear", False):
        shapes["transformer.smear.weight"] = (C,)
        shapes["transformer.smear.bias"] = (1,)
    return shapes


def _expected(cfg, qcfg: QuantConfig) -> dict:
    """name -> (dtype, shape) of every tensor a quantized checkpoint of this config holds."""
    shapes = param_shapes(cfg)
    qdtype = np.int8 if qcfg.bits == 8 else np.uint8
    per_byte = 8 // qcfg.bits
    out = {}
    lin_names = {f"transformer.h.{i}.{k}" for i in range(cfg.n_layer) for k in qcfg.kinds}
    if qcfg.lm_head:
        lin_names.add("lm_head")
    for n, shape in shapes.items():
        base, leaf = n.rsplit(".", 1)
        if base in lin_names:
            if leaf == "weight":
                k, nout = shape
                ng = -(-k // qcfg.group_size)
                out[f"{base}.qweight"] = (qdtype, (nout, ng * qcfg.group_size // per_byte))
                out[f"{base}.scales"] = (np.float32, (nout, ng))
            else:
                out[n] = (np.float32, shape)
        elif n == "transformer.wte.weight":
            if not qcfg.embeddings:
                out[n] = (np.float32, shape)
        else:
            out[n] = (np.float32, shape)
    if qcfg.lm_head:
        v, c = shapes["transformer.wte.weight"]
        ng = -(-c // qcfg.group_size)
        out["lm_head.qweight"] = (qdtype, (v, ng * qcfg.group_size // per_byte))
        out["lm_head.scales"] = (np.float32, (v, ng))
    return out


def save_quantized(qmodel: QuantizedGPT, directory, tokenizer=None) -> Path:
    """Write config.json + model.safetensors (+ tokenizer.json: a path to copy, or an object with
    ``save``). The hash of the weights file goes into config.json, written last."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = dict(qmodel.floats)
    for name, lin in qmodel.qlinears.items():
        tensors[f"{name}.qweight"] = lin.qweight
        tensors[f"{name}.scales"] = lin.scales
        if lin.bias is not None:
            tensors[f"{name}.bias"] = lin.bias
    meta = {"format": "scratchgpt-quantized", "bits": qmodel.qconfig.bits,
            "group_size": qmodel.qconfig.group_size}
    wpath = directory / ckpt.WEIGHTS_NAME
    ckpt.save_safetensors(wpath, tensors, metadata=meta)
    if tokenizer is not None:
        if isinstance(tokenizer, (str, Path)):
            if Path(tokenizer).resolve() != (directory / TOKENIZER_FILE).resolve():
                shutil.copyfile(tokenizer, directory / TOKENIZER_FILE)
        else:
            tokenizer.save(str(directory / TOKENIZER_FILE))
    ckpt.save_json(directory / ckpt.CONFIG_NAME, {
        "scratchgpt_model": MODEL_KIND,
        "scratchgpt_config": qmodel.config.to_dict(),
        "quantization": {"format_version": FORMAT_VERSION, **qmodel.qconfig.to_dict()},
        "weights_sha256": _sha256(wpath),
    })
    return directory


def is_quantized_dir(path) -> bool:
    path = Path(path)
    cfg = path / ckpt.CONFIG_NAME
    if not cfg.is_file():
        return False
    try:
        return ckpt.load_json(cfg).get("scratchgpt_model") == MODEL_KIND
    except CheckpointError:
        return False


def read_quantized(directory) -> QuantizedGPT:
    """Load a directory written by ``save_quantized``; refuse anything that does not match."""
    directory = Path(directory)
    meta = ckpt.load_json(directory / ckpt.CONFIG_NAME)
    if meta.get("scratchgpt_model") != MODEL_KIND:
        raise CheckpointError(f"{directory}: not a quantized model directory (config.json has "
                              f"scratchgpt_model={meta.get('scratchgpt_model')!r})")
    q = dict(meta.get("quantization") or {})
    if q.pop("format_version", None) != FORMAT_VERSION:
        raise CheckpointError(f"{directory}/config.json: quantization format version is not {FORMAT_VERSION}")
    q.setdefault("act_quant", False)     # written before the option: weight-only, as they ran then
    try:
        cfg = GPTConfig.from_dict(meta["scratchgpt_config"])
        qcfg = QuantConfig(**q)
    except (KeyError, TypeError, ConfigError) as e:
        raise CheckpointError(f"{directory}/config.json: bad model or quantization config ({e})") from None
    wpath = directory / ckpt.WEIGHTS_NAME
    if not wpath.is_file():
        raise CheckpointError(f"{wpath}: missing")
    digest = _sha256(wpath)
    if digest != meta.get("weights_sha256"):
        raise CheckpointError(f"{wpath}: contents do not match config.json (sha256 {digest[:12]}... vs "
                              f"{str(meta.get('weights_sha256'))[:12]}...): the file is corrupted or "
                              "belongs to another model")
    tensors = ckpt.load_safetensors(wpath)
    expected = _expected(cfg, qcfg)
    ckpt.check_tensors(tensors, {n: s for n, (_, s) in expected.items()}, where=wpath.name)
    for n, (dt, _) in expected.items():
        if tensors[n].dtype != dt:
            raise CheckpointError(f"{wpath.name}: tensor {n!r} has dtype {tensors[n].dtype}, expected "
                                  f"{np.dtype(dt).name} (int{qcfg.bits} checkpoint)")
    cls = LINEAR_CLASSES[qcfg.bits]
    qlinears, floats = {}, {}
    lin_names = sorted({n.rsplit(".", 1)[0] for n in tensors if n.endswith(".qweight")})
    shapes = param_shapes(cfg)
    for base in lin_names:
        k = cfg.n_embd if base == "lm_head" else shapes[f"{base}.weight"][0]
        qlinears[base] = cls(tensors.pop(f"{base}.qweight"), tensors.pop(f"{base}.scales"),
                             tensors.pop(f"{base}.bias", None), k, qcfg.act_quant)
    floats.update(tensors)
    return QuantizedGPT(cfg, qcfg, floats, qlinears)


def load_quantized(directory):
    """(QuantizedGPT, tokenizer) — the hook ``infer.load.load_for_inference`` calls."""
    from ..tokenizer import load_tokenizer   # not via infer.load, which imports this module
    directory = Path(directory)
    model = read_quantized(directory)
    tok = load_tokenizer(directory)
    if tok.vocab_size != model.config.vocab_size:
        raise CheckpointError(f"{directory}: tokenizer has {tok.vocab_size} tokens but the model's "
                              f"vocab_size is {model.config.vocab_size}")
    return model, tok
