"""Seq2SeqTransformer: the encoder-decoder the tutorial's §4.2 formulas describe.

    §4.2.1 input     x_i = Embed(w_i) + P_i                  (token + learned position embeddings)
    §4.2.2 encoder   h = h + SelfAttn(LN(h), LN(h))          bidirectional, padding masked
                     h = h + MLP(LN(h))
    §4.2.3 decoder   s = s + CausalSelfAttn(LN(s))
                     s = s + CrossAttn(LN(s), h_enc, h_enc)  queries from the decoder, keys/values
                     s = s + MLP(LN(s))                      from the encoder output
    §4.2.4 output    p(w_i) = softmax(LN(s_i) @ E^T)         "Dense" tied to the token embedding

The tutorial writes the decoder as one sum, SelfAttn(h) + CrossAttn(h, h_j, h_j); we apply the
two attentions one after the other with residuals and LayerNorm, as every working Transformer
does (the summed form lets the cross-attention query ignore what self-attention found).

Source and target share one vocabulary and one token embedding; each has its own positions.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .. import ops
from ..autograd import Tensor, no_grad
from ..errors import CheckpointError, ConfigError, DataError
from ..nn import DecoderBlock, Dropout, Embedding, EncoderBlock, LayerNorm, Module, ModuleList
from . import checkpoint as ckpt
from .config import Seq2SeqConfig
from .gpt import IGNORE_INDEX, check_token_ids, masked_targets


class _Encoder(Module):
    def __init__(self, cfg: Seq2SeqConfig, rng, proj_std: float):
        super().__init__()
        self.wpe = Embedding(cfg.block_size, cfg.n_embd, rng=rng)
        self.h = ModuleList(EncoderBlock(cfg.n_embd, cfg.n_head, cfg.dropout, cfg.bias, rng, proj_std,
                                         cfg.layer_norm_eps) for _ in range(cfg.n_encoder_layer))
        self.ln_f = LayerNorm(cfg.n_embd, eps=cfg.layer_norm_eps, bias=cfg.bias)


class _Decoder(Module):
    def __init__(self, cfg: Seq2SeqConfig, rng, proj_std: float):
        super().__init__()
        self.wpe = Embedding(cfg.block_size, cfg.n_embd, rng=rng)
        self.h = ModuleList(DecoderBlock(cfg.n_embd, cfg.n_head, cfg.dropout, cfg.bias, rng, proj_std,
                                         cfg.layer_norm_eps) for _ in range(cfg.n_decoder_layer))
        self.ln_f = LayerNorm(cfg.n_embd, eps=cfg.layer_norm_eps, bias=cfg.bias)


class Seq2SeqTransformer(Module):
    """``logits, loss = model(src, tgt_in, tgt_out=None, src_mask=None)``.

    src (B, Ts) ids, tgt_in (B, Tt) ids (BOS + target[:-1]), tgt_out (B, Tt) ids to predict
    (positions equal to -100 do not count), src_mask (B, Ts) 1/True on real tokens, 0 on padding.
    """

    def __init__(self, cfg: Seq2SeqConfig, seed: int | None = 0):
        super().__init__()
        if not isinstance(cfg, Seq2SeqConfig):
            raise ConfigError(f"Seq2SeqTransformer expects a Seq2SeqConfig, got {type(cfg).__name__}")
        self.config = cfg
        rng = np.random.default_rng(seed)
        proj_std = 0.02 / math.sqrt(2 * (cfg.n_encoder_layer + cfg.n_decoder_layer))
        self.wte = Embedding(cfg.vocab_size, cfg.n_embd, rng=rng)  # shared by both sides + output
        self.drop = Dropout(cfg.dropout, rng=rng)
        self.encoder = _Encoder(cfg, rng, proj_std)
        self.decoder = _Decoder(cfg, rng, proj_std)

    def _embed(self, ids, wpe) -> Tensor:
        return self.drop(ops.token_position_embedding(ids, self.wte.weight, wpe.weight))  # (B, T, C)

    def _check_mask(self, src_mask, shape):
        if src_mask is None:
            return None
        mask = np.asarray(src_mask)
        if mask.shape != tuple(shape):
            raise DataError(f"src_mask must have the shape of src {tuple(shape)}, got {mask.shape}")
        mask = mask.astype(bool)
        if not mask.any(axis=1).all():
            raise DataError("src_mask masks out every position of some source row")
        return mask

    def encode(self, src, src_mask=None) -> Tensor:
        """Encoder output (B, Ts, C)."""
        cfg = self.config
        src = check_token_ids(src, cfg.vocab_size, "src", cfg.block_size)
        mask = self._check_mask(src_mask, src.shape)
        x = self._embed(src, self.encoder.wpe)
        for block in self.encoder.h:
            x = block(x, mask)
        return self.encoder.ln_f(x)

    def decode(self, tgt_in, enc: Tensor, src_mask=None) -> Tensor:
        """Decoder hidden states after the final LayerNorm (B, Tt, C)."""
        cfg = self.config
        tgt_in = check_token_ids(tgt_in, cfg.vocab_size, "tgt_in", cfg.block_size)
        if tgt_in.shape[0] != enc.shape[0]:
            raise DataError(f"tgt_in has batch {tgt_in.shape[0]} but src has batch {enc.shape[0]}")
        mask = self._check_mask(src_mask, enc.shape[:2])
        x = self._embed(tgt_in, self.decoder.wpe)
        for block in self.decoder.h:
            x = block(x, enc, mask)
        return self.decoder.ln_f(x)

    def forward(self, src, tgt_in, tgt_out=None, src_mask=None):
        enc = self.encode(src, src_mask)
        x = self.decode(tgt_in, enc, src_mask)
        logits = ops.linear(x, ops.transpose(self.wte.weight))     # (B, Tt, V) tied output layer
        if tgt_out is None:
            return logits, None
        tgt = masked_targets(tgt_out, None, logits.shape[:2], name="tgt_out")
        return logits, ops.cross_entropy(logits, tgt, ignore_index=IGNORE_INDEX)

    def generate(self, src, max_new_tokens: int, bos_id: int, eos_id: int | None = None,
                 src_mask=None) -> np.ndarray:
        """Greedy decoding: (B, N) generated ids (BOS not included), N <= max_new_tokens.

        Rows that produced ``eos_id`` keep emitting eos_id until every row has; decoding stops
        early once all rows are done.
        """
        src = np.asarray(src)
        if src.ndim == 1:
            src = src[None]
        if max_new_tokens > self.config.block_size:
            raise DataError(f"max_new_tokens {max_new_tokens} > block_size {self.config.block_size}")
        was_training = self.training
        self.eval()
        try:
            with no_grad():
                enc = self.encode(src, src_mask)
                B = enc.shape[0]
                out = np.full((B, 1), bos_id, dtype=np.int64)
                done = np.zeros(B, dtype=bool)
                wte_t = self.wte.weight.data.T                          # (C, V)
                for _ in range(int(max_new_tokens)):
                    x = self.decode(out, enc, src_mask)
                    nxt = np.argmax(x.data[:, -1, :] @ wte_t, axis=-1)  # (B,)
                    if eos_id is not None:
                        nxt = np.where(done, eos_id, nxt)
                        done |= nxt == eos_id
                    out = np.concatenate([out, nxt[:, None].astype(np.int64)], axis=1)
                    if eos_id is not None and done.all():
                        break
        finally:
            self.train(was_training)
        return out[:, 1:]

    # ---------------------------------------------------------------- save/load
    def save(self, directory) -> Path:
        meta = {"scratchgpt_model": "seq2seq", "scratchgpt_config": self.config.to_dict()}
        return ckpt.save_model(self, directory, meta)

    @classmethod
    def load(cls, directory) -> "Seq2SeqTransformer":
        directory = Path(directory)
        meta = ckpt.load_json(directory / ckpt.CONFIG_NAME)
        if meta.get("scratchgpt_model") != "seq2seq" or "scratchgpt_config" not in meta:
            raise CheckpointError(f"{directory}: config.json does not describe a scratchgpt seq2seq model")
        model = cls(Seq2SeqConfig.from_dict(meta["scratchgpt_config"]), seed=0)
        ckpt.load_weights_into(model, directory)
        return model
