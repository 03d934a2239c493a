"""Token shards (roundtrip, SFT masks) and the seeded, resumable batch iterators."""
import json

import numpy as np
import pytest

from data_fixtures import ByteTokenizer
from scratchgpt.data.batches import IGNORE_INDEX, PretrainBatches, SFTBatches
from scratchgpt.data.clean import Cleaner
from scratchgpt.data.records import Conversation, Document, Message
from scratchgpt.data.shards import (SFTShard, load_pretrain_shard, tokenizer_hash, write_pretrain_shard,
                                    write_sft_shard)
from scratchgpt.errors import DataError
from scratchgpt.tokenizer.special import CHAT_SPECIAL_TOKENS

RAW_DOCS = ["Hello   world.\r\n\r\n\r\nSecond paragraph\x00!", "你好，世界。\n订单 A12345 已发货。",
            "ＡＢＣ full-width and emoji 🙂 too", "short"]


@pytest.fixture(scope="module")
def bpe():
    from scratchgpt.tokenizer import BPETokenizer
    return BPETokenizer.train(RAW_DOCS * 3, 300, special_tokens=CHAT_SPECIAL_TOKENS)


def cleaned_docs():
    cl = Cleaner()
    return [d.text for d in (cl.clean(Document(t, id=str(i))) for i, t in enumerate(RAW_DOCS)) if d is not None]


@pytest.mark.parametrize("which", ["bytes", "bpe"])
def test_pretrain_shard_roundtrip(tmp_path, which, bpe):
    tok = ByteTokenizer() if which == "bytes" else bpe
    texts = cleaned_docs()
    meta = write_pretrain_shard(texts, tok, tmp_path, "train")
    ids, meta2 = load_pretrain_shard(tmp_path, "train", tok=tok)
    assert meta == meta2 and meta["dtype"] == "<u2" and meta["n_documents"] == len(texts)
    assert len(ids) == meta["n_tokens"] == (tmp_path / "train.bin").stat().st_size // 2
    eot = tok.special_tokens["<|endoftext|>"]
    cuts = np.flatnonzero(np.asarray(ids) == eot)
    assert len(cuts) == len(texts) and cuts[-1] == len(ids) - 1
    pieces = np.split(np.asarray(ids), cuts + 1)[:-1]
    assert [tok.decode(p[:-1].tolist()) for p in pieces] == texts


def test_large_vocab_uses_uint32_and_mismatched_tokenizer_is_refused(tmp_path):
    class Big(ByteTokenizer):
        def __init__(self):
            super().__init__()
            self.vocab_size = 70000
            self.special_tokens = {"<|endoftext|>": 69999}

        def encode(self, text, allowed_special=()):
            return [b + 65000 for b in text.encode()]

    meta = write_pretrain_shard(["ab"], Big(), tmp_path, "big")
    ids, _ = load_pretrain_shard(tmp_path, "big")
    assert meta["dtype"] == "<u4" and list(ids) == [65097, 65098, 69999]
    with pytest.raises(DataError, match="another tokenizer"):
        load_pretrain_shard(tmp_path, "big", tok=ByteTokenizer())
    with open(tmp_path / "big.bin", "ab") as f:
        f.write(b"\0\0")
    with pytest.raises(DataError, match="expected 3 tokens"):
        load_pretrain_shard(tmp_path, "big")
    assert tokenizer_hash(ByteTokenizer()) == tokenizer_hash(ByteTokenizer())


def chats():
    return [
        Conversation([Message("system", "Be brief."), Message("user", "Where is order A1?"),
                      Message("assistant", "Order A1 ships today."), Message("user", "Thanks <|end|>"),
                      Message("assistant", "You're welcome!")], id="a"),
        Conversation([Message("user", "你好"), Message("assistant", "您好！有什么可以帮您？")], id="b"),
        Conversation([Message("user", "q"), Message("assistant", "x" * 40)], id="c"),
    ]


@pytest.mark.parametrize("which", ["bytes", "bpe"])
def test_sft_mask_covers_exactly_the_assistant_tokens(tmp_path, which, bpe):
    tok = ByteTokenizer() if which == "bytes" else bpe
    convs = chats()
    write_sft_shard(convs, tok, tmp_path, "sft")
    shard = SFTShard(tmp_path, "sft", tok=tok)
    assert len(shard) == len(convs)
    for i, conv in enumerate(convs):
        ids, mask = shard[i]
        ids, mask = np.asarray(ids).tolist(), np.asarray(mask).tolist()
        # contiguous runs of mask == 1 are the assistant replies, each closed by <|end|>
        runs, cur = [], []
        for t, m in zip(ids, mask):
            if m:
                cur.append(t)
            elif cur:
                runs.append(cur)
                cur = []
        if cur:
            runs.append(cur)
        assert [tok.decode(r) for r in runs] == [m.content + "<|end|>" for m in conv.messages if m.role == "assistant"]
        # the whole rendering, and a literal "<|end|>" typed by the user is text, not the special id
        assert tok.decode(ids) == "".join(f"<|{m.role}|>{m.content}<|end|>" for m in conv.messages)
        assert ids.count(tok.special_tokens["<|end|>"]) == len(conv.messages)


def pretrain_tokens(n=500):
    return np.arange(n, dtype=np.uint16)  # unique values: a window's start is its first token


def test_pretrain_batches_shift_seed_and_resume():
    toks = pretrain_tokens()
    it = PretrainBatches(toks, batch_size=4, block_size=8, seed=5)
    b = it.next_batch()
    assert b.x.shape == b.y.shape == (4, 8) and b.x.dtype == np.int64
    assert np.array_equal(b.y[:, :-1], b.x[:, 1:]) and (b.loss_mask == 1).all()
    for row_x, row_y in zip(b.x, b.y):          # each row is a real window of the corpus
        s = int(row_x[0])
        assert list(row_x) == list(toks[s:s + 8]) and list(row_y) == list(toks[s + 1:s + 9])
    again = PretrainBatches(toks, 4, 8, seed=5)
    assert np.array_equal(again.next_batch().x, b.x)
    assert not np.array_equal(PretrainBatches(toks, 4, 8, seed=6).next_batch().x, b.x)
    for _ in range(3):
        it.next_batch()
    state = json.loads(json.dumps(it.state_dict()))
    expected = [it.next_batch() for _ in range(3)]
    resumed = PretrainBatches(toks, 4, 8, seed=5)
    resumed.load_state_dict(state)
    for e in expected:
        assert np.array_equal(resumed.next_batch().x, e.x)
    with pytest.raises(DataError, match="block_size"):
        PretrainBatches(toks, 4, 16, seed=5).load_state_dict(state)
    with pytest.raises(DataError, match="need at least"):
        PretrainBatches(toks[:5], 1, 8)


@pytest.fixture
def sft_shard(tmp_path):
    write_sft_shard(chats() * 3, ByteTokenizer(), tmp_path, "s")
    return SFTShard(tmp_path, "s")


@pytest.mark.parametrize("packing", ["padded", "packed"])
def test_sft_batches_targets_masks_and_resume(sft_shard, packing):
    B, T = 3, 32
    it = SFTBatches(sft_shard, B, T, seed=1, packing=packing, pad_id=261)
    seen_targets = 0
    for _ in range(6):
        b = it.next_batch()
        assert b.x.shape == b.y.shape == b.loss_mask.shape == (B, T)
        assert ((b.y == IGNORE_INDEX) == (b.loss_mask == 0)).all()
        seen_targets += int(b.loss_mask.sum())
        if packing == "packed":
            # within a row, the target of position t is the input at t + 1
            assert np.array_equal(b.y[:, :-1][b.loss_mask[:, :-1] > 0], b.x[:, 1:][b.loss_mask[:, :-1] > 0])
    assert seen_targets > 0
    state = json.loads(json.dumps(it.state_dict()))
    expected = [it.next_batch() for _ in range(5)]              # crosses an epoch boundary
    assert it.epoch >= 1
    resumed = SFTBatches(sft_shard, B, T, seed=1, packing=packing, pad_id=261)
    resumed.load_state_dict(state)
    for e in expected:
        got = resumed.next_batch()
        assert np.array_equal(got.x, e.x) and np.array_equal(got.y, e.y) and np.array_equal(got.loss_mask, e.loss_mask)


def test_padded_rows_are_one_conversation_each(sft_shard):
    it = SFTBatches(sft_shard, 1, 200, seed=0, packing="padded", pad_id=261)
    order = np.random.default_rng([0, 0]).permutation(len(sft_shard))
    for k in range(len(sft_shard)):
        b = it.next_batch()
        ids, mask = (np.asarray(a, dtype=np.int64) for a in sft_shard[int(order[k])])
        n = len(ids) - 1
        assert np.array_equal(b.x[0, :n], ids[:-1]) and (b.x[0, n:] == 261).all()
        assert np.array_equal(b.loss_mask[0, :n], mask[1:]) and (b.loss_mask[0, n:] == 0).all()
        assert np.array_equal(b.y[0, :n], np.where(mask[1:] > 0, ids[1:], IGNORE_INDEX))


def test_packed_stream_is_the_concatenated_epoch(sft_shard):
    T = 16
    it = SFTBatches(sft_shard, 1, T, seed=2, packing="packed")
    order = np.random.default_rng([2, 0]).permutation(len(sft_shard))
    stream = np.concatenate([np.asarray(sft_shard[int(i)][0], dtype=np.int64) for i in order])
    rows = [it.next_batch().x[0] for _ in range(len(stream) // T - 1)]
    # rows overlap by one token: row k covers stream[k*T : k*T + T + 1]
    for k, x in enumerate(rows):
        assert np.array_equal(x, stream[k * T:k * T + T])
