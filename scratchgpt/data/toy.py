"""Toy sequence-to-sequence tasks: small, exact, and fast to learn — for checking that an
encoder-decoder works end to end (chapter 4's §4.3 case study, tests/test_seq2seq.py)."""
from __future__ import annotations

import numpy as np

from ..ops.cross_entropy_op import IGNORE_INDEX

# token ids of the digit-reversal task: digits are 0..9
PAD, BOS, EOS = 10, 11, 12
DIGITS_VOCAB = 13


def reverse_digits_batch(rng: np.random.Generator, n: int, min_len: int = 3, max_len: int = 6):
    """n random digit strings and their reversal, teacher-forcing layout.

    Returns (src (n, max_len) digits padded with PAD, src_mask (n, max_len) True on digits,
    tgt_in (n, max_len+1) = BOS + reversed (PAD after), tgt_out (n, max_len+1) = reversed + EOS
    (IGNORE_INDEX after), so tgt_out[t] is what the decoder must predict after reading tgt_in[:t+1]).
    """
    lens = rng.integers(min_len, max_len + 1, n)
    src = np.full((n, max_len), PAD, np.int64)
    tgt_in = np.full((n, max_len + 1), PAD, np.int64)
    tgt_out = np.full((n, max_len + 1), IGNORE_INDEX, np.int64)
    for i, L in enumerate(lens):
        digits = rng.integers(0, 10, L)
        src[i, :L] = digits
        tgt_in[i, 0] = BOS
        tgt_in[i, 1:L + 1] = digits[::-1]
        tgt_out[i, :L] = digits[::-1]
        tgt_out[i, L] = EOS
    return src, src != PAD, tgt_in, tgt_out
