"""Models: GPT (decoder-only, GPT-2 compatible) and Seq2SeqTransformer (encoder-decoder)."""
from .config import GPTConfig, Seq2SeqConfig
from .gpt import GPT
from .seq2seq import Seq2SeqTransformer

__all__ = ["GPT", "GPTConfig", "Seq2SeqTransformer", "Seq2SeqConfig"]
