"""embedding and the fused token + position embedding: scatter-add backward, gradients, errors."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

from scratchgpt.autograd import Tensor, gradcheck
from scratchgpt.errors import DataError
from scratchgpt.ops import add, embedding, token_position_embedding
from scratchgpt.ops.embedding_op import (embedding_backward, embedding_backward_ref, embedding_forward,
                                      embedding_forward_ref, token_position_embedding_backward,
                                      token_position_embedding_backward_ref, token_position_embedding_forward,
                                      token_position_embedding_forward_ref)
from scratchgpt.ops._numba import force_build

GC = dict(atol=1e-8, rtol=1e-7)  # gather/scatter are linear: numeric gradient exact up to rounding


@given(B=st.integers(1, 3), T=st.integers(1, 4), V=st.integers(1, 6), C=st.integers(1, 4),
       seed=st.integers(0, 2**31 - 1))
def test_gradcheck(B, T, V, C, seed):
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, V, (B, T))  # small V: repeated ids, the scatter-add must sum them
    wte = rng.standard_normal((V, C))
    wpe = rng.standard_normal((T + 2, C))  # more positions than used: unused rows get grad 0
    gradcheck(embedding, [idx, wte], **GC)
    gradcheck(token_position_embedding, [idx, wte, wpe], **GC)


@given(parallel=st.booleans(), B=st.integers(1, 5), T=st.integers(1, 17), V=st.integers(1, 50), C=st.integers(1, 70),
       seed=st.integers(0, 2**31 - 1))
def test_numba_matches_ref_float32(B, T, V, C, seed, parallel):
    with force_build(parallel):  # both builds of every kernel must match the ref
        rng = np.random.default_rng(seed)
        idx = rng.integers(0, V, (B, T))
        wte = rng.standard_normal((V, C)).astype(np.float32)
        wpe = rng.standard_normal((T + 1, C)).astype(np.float32)
        g = rng.standard_normal((B, T, C)).astype(np.float32)
        y, c = embedding_forward(idx, wte)
        yr, cr = embedding_forward_ref(idx, wte)
        np.testing.assert_array_equal(y, yr.astype(np.float32))  # a gather is exact
        # dW rows sum up to B*T float32 gradients
        np.testing.assert_allclose(embedding_backward(g, c)[1], embedding_backward_ref(g, cr)[1], atol=1e-6 * B * T,
                                   rtol=1e-6)
        y, c = token_position_embedding_forward(idx, wte, wpe)
        yr, cr = token_position_embedding_forward_ref(idx, wte, wpe)
        np.testing.assert_allclose(y, yr, atol=1e-6, rtol=1e-7)  # one float32 add
        _, dwte, dwpe = token_position_embedding_backward(g, c)
        _, dwter, dwper = token_position_embedding_backward_ref(g, cr)
        np.testing.assert_allclose(dwte, dwter, atol=1e-6 * B * T, rtol=1e-6)
        np.testing.assert_allclose(dwpe, dwper, atol=1e-6 * B, rtol=1e-6)


@given(seed=st.integers(0, 2**31 - 1))
def test_fused_equals_two_embeddings_plus_add(seed):
    rng = np.random.default_rng(seed)
    B, T, V, C = 2, 5, 7, 3
    idx = rng.integers(0, V, (B, T))
    wte_a = Tensor(rng.standard_normal((V, C)), requires_grad=True)
    wpe_a = Tensor(rng.standard_normal((8, C)), requires_grad=True)
    wte_b = Tensor(wte_a.data.copy(), requires_grad=True)
    wpe_b = Tensor(wpe_a.data.copy(), requires_grad=True)
    r = Tensor(rng.standard_normal((B, T, C)))
    fused = token_position_embedding(idx, wte_a, wpe_a)
    composed = add(embedding(idx, wte_b), embedding(np.arange(T)[None, :], wpe_b))
    np.testing.assert_allclose(fused.data, composed.data, atol=1e-15)
    (fused * r).sum().backward()
    (composed * r).sum().backward()
    np.testing.assert_allclose(wte_a.grad, wte_b.grad, atol=1e-12)
    np.testing.assert_allclose(wpe_a.grad, wpe_b.grad, atol=1e-12)


def test_repeated_ids_accumulate_and_idx_gets_no_grad():
    w = Tensor(np.zeros((3, 2), dtype=np.float32), requires_grad=True)
    embedding(np.array([[2, 2, 0]]), w).sum().backward()
    np.testing.assert_array_equal(w.grad, [[1, 1], [0, 0], [2, 2]])


def test_bad_input_is_a_clear_error():
    w = Tensor(np.zeros((5, 2)))
    with pytest.raises(DataError, match=r"ids in \[0, 5\].*5 rows"):
        embedding(np.array([[0, 5]]), w)
    with pytest.raises(DataError, match="integer"):
        embedding(np.array([[0.0, 1.0]]), w)
    with pytest.raises(DataError, match="exceeds the 4 learned positions"):
        token_position_embedding(np.zeros((1, 5), dtype=np.int64), w, Tensor(np.zeros((4, 2))))
