"""Every CUDA kernel against its op's float64 reference, on the simulator (tiny shapes: the
simulator runs each GPU thread as a Python thread). Shapes are drawn by hypothesis and include
sizes that are not multiples of the tiles (16 for matmul, 32 for the row kernels and transpose).
Backward kernels are also run in float64 and must then match the float64 reference to ~1e-11:
the same kernel code, promoted, so an indexing or formula error cannot hide in float32 noise."""
import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from cuda_sim import F32, F64, assert_close, dev, host
from scratchgpt.ops import adamw, attention, cross_entropy_op, elementwise, embedding_op, gelu_op, layernorm_op
from scratchgpt.ops import matmul_op, softmax_op
from scratchgpt.ops.adamw_cuda import adamw_update_cuda
from scratchgpt.ops.attention_cuda import causal_self_attention_backward_cuda, causal_self_attention_forward_cuda
from scratchgpt.ops.cross_entropy_cuda import cross_entropy_backward_cuda, cross_entropy_forward_cuda
from scratchgpt.ops.dropout_cuda import dropout_apply_cuda, dropout_uniforms_ref
from scratchgpt.ops.elementwise_cuda import AddCuda, mul_cuda
from scratchgpt.ops.embedding_cuda import (token_position_embedding_backward_cuda,
                                           token_position_embedding_forward_cuda)
from scratchgpt.ops.gelu_cuda import gelu_backward_cuda, gelu_forward_cuda
from scratchgpt.ops.layernorm_cuda import layernorm_backward_cuda, layernorm_forward_cuda
from scratchgpt.ops.matmul_cuda import linear_backward_cuda, linear_forward_cuda, matmul2d_cuda
from scratchgpt.ops.reductions_cuda import MeanCuda
from scratchgpt.ops.softmax_cuda import softmax_backward_cuda, softmax_forward_cuda
from scratchgpt.ops.views_cuda import transpose2d_cuda

FEW = settings(max_examples=3)
TOL = {np.float32: F32, np.float64: F64}
dtypes = st.sampled_from([np.float32, np.float64])


def _r(seed, shape, dt, scale=1.0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(dt)


@FEW
@given(n=st.integers(1, 150), seed=st.integers(0, 99))
def test_gelu(n, seed):
    x, g = _r(seed, n, np.float32, 3), _r(seed + 1, n, np.float32)
    y, cache = gelu_forward_cuda(dev(x))
    ref, rcache = gelu_op.gelu_forward_ref(x)
    assert_close(y, ref, **F32)
    assert_close(gelu_backward_cuda(dev(g), cache), gelu_op.gelu_backward_ref(g, rcache), **F32)


@FEW
@given(rows=st.integers(1, 3), C=st.integers(1, 70), bias=st.booleans(), dt=dtypes, seed=st.integers(0, 99))
def test_layernorm_forward_backward(rows, C, bias, dt, seed):
    x, w, b, g = _r(seed, (rows, C), dt, 2), _r(seed + 1, C, dt), _r(seed + 2, C, dt), _r(seed + 3, (rows, C), dt)
    y, cache = layernorm_forward_cuda(dev(x), dev(w), dev(b) if bias else None)
    ref, rcache = layernorm_op.layernorm_forward_ref(x, w, b if bias else None)
    assert_close(y, ref, **TOL[dt])
    dx, dw, db = layernorm_backward_cuda(dev(g), cache)
    rdx, rdw, rdb = layernorm_op.layernorm_backward_ref(g, rcache)
    for out, r in ((dx, rdx), (dw, rdw)) + (((db, rdb),) if bias else ()):
        assert_close(out, r, **TOL[dt])
    assert (db is None) == (not bias)


@FEW
@given(N=st.integers(1, 20), K=st.integers(1, 20), M=st.integers(1, 20), bias=st.booleans(), dt=dtypes,
       seed=st.integers(0, 99))
def test_linear_forward_backward(N, K, M, bias, dt, seed):
    x, w, b, g = _r(seed, (N, K), dt), _r(seed + 1, (K, M), dt), _r(seed + 2, M, dt), _r(seed + 3, (N, M), dt)
    y, cache = linear_forward_cuda(dev(x), dev(w), dev(b) if bias else None)
    ref, rcache = matmul_op.linear_forward_ref(x, w, b if bias else None)
    assert_close(y, ref, **TOL[dt])
    dx, dw, db = linear_backward_cuda(dev(g), cache)
    rdx, rdw, rdb = matmul_op.linear_backward_ref(g, rcache)
    for out, r in ((dx, rdx), (dw, rdw)) + (((db, rdb),) if bias else ()):
        assert_close(out, r, **TOL[dt])


def test_batched_matmul_by_a_matrix_through_autograd():
    from scratchgpt.autograd import Tensor
    from scratchgpt.ops import matmul
    a, b, g = _r(0, (2, 3, 5), np.float64), _r(1, (5, 4), np.float64), _r(2, (2, 3, 4), np.float64)
    ta, tb = Tensor(dev(a), requires_grad=True), Tensor(dev(b), requires_grad=True)
    y = matmul(ta, tb)
    y.backward(dev(g))
    assert_close(y.data, a @ b, **F64)
    assert_close(ta.grad, g @ b.T, **F64)
    assert_close(tb.grad, a.reshape(6, 5).T @ g.reshape(6, 4), **F64)


def test_matmul_transposed_operands_and_transpose_copy():
    a, b = _r(0, (17, 5), np.float32), _r(1, (33, 5), np.float32)
    assert_close(matmul2d_cuda(dev(a), dev(b), tb=True), a.astype(np.float64) @ b.T, **F32)
    assert_close(matmul2d_cuda(dev(a.T.copy()), dev(b.T.copy()), ta=True), a.astype(np.float64) @ b.T, **F32)
    x = _r(2, (33, 35), np.float32)
    np.testing.assert_array_equal(host(transpose2d_cuda(dev(x))), x.T)   # a copy: exact


@FEW
@given(B=st.integers(1, 2), T=st.integers(1, 5), V=st.integers(1, 9), seed=st.integers(0, 99))
def test_token_position_embedding(B, T, V, seed):
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, V, (B, T))
    wte, wpe, g = _r(seed, (V, 6), np.float64), _r(seed + 1, (T + 2, 6), np.float64), _r(seed + 2, (B, T, 6), np.float64)
    y, cache = token_position_embedding_forward_cuda(dev(idx), dev(wte), dev(wpe))
    ref, rcache = embedding_op.token_position_embedding_forward_ref(idx, wte, wpe)
    assert_close(y, ref, **F64)
    dwte, dwpe = token_position_embedding_backward_cuda(dev(g), cache)
    _, rdwte, rdwpe = embedding_op.token_position_embedding_backward_ref(g, rcache)
    assert_close(dwte, rdwte, **F64)             # repeated ids: atomics must add every row
    assert_close(dwpe, rdwpe, **F64)


@FEW
@given(rows=st.integers(1, 3), n=st.integers(1, 70), dt=dtypes, seed=st.integers(0, 99))
def test_softmax(rows, n, dt, seed):
    x, g = _r(seed, (rows, n), dt, 4), _r(seed + 1, (rows, n), dt)
    y, cache = softmax_forward_cuda(dev(x))
    ref, rcache = softmax_op.softmax_forward_ref(x)
    assert_close(y, ref, **TOL[dt])
    assert_close(softmax_backward_cuda(dev(g), cache), softmax_op.softmax_backward_ref(g, rcache), **TOL[dt])


@FEW
@example(B=1, T=35, NH=1, HS=2, dt=np.float32, seed=0)     # two query tiles of 32, the second partial
@given(B=st.integers(1, 2), T=st.integers(1, 6), NH=st.integers(1, 2), HS=st.integers(1, 4), dt=dtypes,
       seed=st.integers(0, 99))
def test_causal_attention(B, T, NH, HS, dt, seed):
    C = NH * HS
    qkv, g = _r(seed, (B, T, 3 * C), dt), _r(seed + 1, (B, T, C), dt)
    ref, rcache = attention.causal_self_attention_forward_ref(qkv, NH)
    y, cache = causal_self_attention_forward_cuda(dev(qkv), NH, version="simple")
    assert_close(y, ref, **TOL[dt])
    yt, cache_t = causal_self_attention_forward_cuda(dev(qkv), NH, version="tiled")
    assert_close(yt, ref, **TOL[dt])
    assert_close(cache_t[2], host(cache[2]), **TOL[dt])            # the same lse for the backward
    rg = attention.causal_self_attention_backward_ref(g, rcache)
    assert_close(causal_self_attention_backward_cuda(dev(g), cache, version="simple"), rg, **TOL[dt])
    assert_close(causal_self_attention_backward_cuda(dev(g), cache, version="tiled"), rg, **TOL[dt])


@FEW
@given(N=st.integers(1, 5), V=st.integers(1, 40), reduction=st.sampled_from(["mean", "sum"]), dt=dtypes,
       seed=st.integers(0, 99))
def test_cross_entropy_ignore_index(N, V, reduction, dt, seed):
    rng = np.random.default_rng(seed)
    z = _r(seed, (N, V), dt, 3)
    t = rng.integers(0, V, N)
    t[rng.random(N) < 0.4] = -100                      # some rows ignored (possibly all)
    loss, cache = cross_entropy_forward_cuda(dev(z), dev(t), -100, reduction)
    ref, rcache = cross_entropy_op.cross_entropy_forward_ref(z, t, -100, reduction)
    assert host(loss).shape == ()
    assert_close(loss, ref, **TOL[dt])
    d = np.array(0.5, dtype=dt)
    assert_close(cross_entropy_backward_cuda(dev(d), cache), cross_entropy_op.cross_entropy_backward_ref(0.5, rcache),
                 **TOL[dt])


def test_add_mul_mean():
    a, b = _r(0, (3, 7), np.float32), _r(1, (3, 7), np.float32)
    y, _ = AddCuda.forward(None, dev(a), dev(b))
    assert_close(y, elementwise.add_forward_ref(a, b)[0], **F32)
    assert_close(mul_cuda(dev(a), dev(b)), elementwise.mul_forward_ref(a, b)[0], **F32)
    m, cache = MeanCuda.forward(None, dev(a))
    assert_close(m, a.astype(np.float64).mean(), **F32)
    (dx,) = MeanCuda.backward(type("Ctx", (), {"cache": cache}), dev(np.array(2.0, np.float32)))
    assert_close(dx, np.full(a.shape, 2.0 / a.size), **F32)


@FEW
@given(n=st.integers(1, 150), step=st.integers(1, 5), wd=st.sampled_from([0.0, 0.1]), seed=st.integers(0, 99))
def test_adamw_update(n, step, wd, seed):
    p, g, m = _r(seed, n, np.float32), _r(seed + 1, n, np.float32), _r(seed + 2, n, np.float32, 0.1)
    v = np.abs(_r(seed + 3, n, np.float32, 0.1))
    dp, dm, dv = dev(p), dev(m), dev(v)
    adamw_update_cuda(dp, dev(g), dm, dv, step, 1e-2, 0.9, 0.999, 1e-8, wd)
    rp, rm, rv = adamw.adamw_update_ref(p, g, m, v, step, 1e-2, 0.9, 0.999, 1e-8, wd)
    for out, r in ((dp, rp), (dm, rm), (dv, rv)):
        assert_close(out, r, atol=1e-6, rtol=1e-5)


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")  # the simulator's uint64 maths
def test_dropout_mask_is_the_counter_hash_and_backward_reuses_it():
    n, p, seed = 300, 0.3, 2024
    x = _r(0, n, np.float32)
    keep = dropout_uniforms_ref(seed, n) >= np.float32(p)
    y = host(dropout_apply_cuda(dev(x), seed, p))
    np.testing.assert_array_equal(y != 0, keep & (x != 0))
    assert_close(y, np.where(keep, x / (1 - p), 0.0), **F32)
    assert 0.6 < keep.mean() < 0.8                                      # p = 0.3 drops ~30 %
    assert not np.array_equal(dropout_uniforms_ref(seed + 1, n) >= p, keep)


@pytest.mark.gpu
@pytest.mark.parametrize("shape", [(512, 768, 768), (1000, 1000, 333)])
def test_matmul_full_size_on_real_gpu(shape):
    M, K, N = shape
    a, b = _r(0, (M, K), np.float32), _r(1, (K, N), np.float32)
    out = host(matmul2d_cuda(dev(a), dev(b)))
    ref = a.astype(np.float64) @ b
    assert np.linalg.norm(out - ref) / np.linalg.norm(ref) < 1e-5


@pytest.mark.parametrize("causal, masked", [(False, True), (True, False)])
def test_cross_attention_against_the_reference(causal, masked):
    from scratchgpt.autograd import Tensor
    from scratchgpt.ops import cross_attention
    from scratchgpt.ops.cross_attention_op import cross_attention_backward_ref, cross_attention_forward_ref
    rng = np.random.default_rng(7)
    B, Tq, Tk, C, NH = 2, 3, 4, 4, 2
    q = rng.standard_normal((B, Tq, C))
    kv = rng.standard_normal((B, Tk, 2 * C))
    mask = None
    if masked:
        mask = np.ones((B, Tk), dtype=bool)
        mask[0, 1:] = False             # batch 0 keeps one key
        mask[1, :] = False              # batch 1 keeps none: output 0, gradients 0, no NaN
    tq, tkv = Tensor(dev(q), requires_grad=True), Tensor(dev(kv), requires_grad=True)
    y = cross_attention(tq, tkv, NH, kv_mask=None if mask is None else dev(mask), causal=causal)
    ry, cache = cross_attention_forward_ref(q, kv, NH, kv_mask=mask, causal=causal)
    assert_close(y.data, ry, **F64)
    g = rng.standard_normal(ry.shape)
    y.backward(dev(g))
    rdq, rdkv = cross_attention_backward_ref(g, cache)
    assert_close(tq.grad, rdq, **F64)
    assert_close(tkv.grad, rdkv, **F64)


@pytest.mark.parametrize("sa, sb", [((2, 3, 4), (4,)), ((2, 1, 3), (4, 1)), ((1, 2, 3, 2), (2, 2, 1, 1))])
def test_broadcasting_add_sub_mul_forward_backward(sa, sb):
    from scratchgpt import ops
    from scratchgpt.autograd import Tensor
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal(sa), rng.standard_normal(sb)
    for fn, ref in ((ops.add, elementwise.add_forward_ref), (ops.sub, elementwise.sub_forward_ref),
                    (ops.mul, elementwise.mul_forward_ref)):
        ta, tb = Tensor(dev(a), requires_grad=True), Tensor(dev(b), requires_grad=True)
        y = fn(ta, tb)
        ry, cache = ref(a, b)
        assert_close(y.data, ry, **F64)
        g = rng.standard_normal(ry.shape)
        y.backward(dev(g))
        bwd = {elementwise.add_forward_ref: elementwise.add_backward_ref, elementwise.sub_forward_ref:
               elementwise.sub_backward_ref, elementwise.mul_forward_ref: elementwise.mul_backward_ref}[ref]
        rda, rdb = bwd(g, cache)
        assert_close(ta.grad, rda, **F64)
        assert_close(tb.grad, rdb, **F64)


def test_getitem_concat_and_nd_transpose_through_autograd():
    from scratchgpt import ops
    from scratchgpt.autograd import Tensor
    from scratchgpt.ops import views
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 3, 5))
    for index in [(slice(None), slice(None), slice(1, 4)), (1, slice(None, None, -2)), (Ellipsis, None, 2)]:
        t = Tensor(dev(x), requires_grad=True)
        y = ops.getitem(t, index)
        ry, cache = views.getitem_forward_ref(x, index)
        assert_close(y.data, ry, atol=0, rtol=0)
        g = rng.standard_normal(ry.shape)
        y.backward(dev(g))
        assert_close(t.grad, views.getitem_backward_ref(g, cache), atol=0, rtol=0)
    parts = [rng.standard_normal((2, n, 3)) for n in (1, 3)]
    ts = [Tensor(dev(p), requires_grad=True) for p in parts]
    y = ops.concat(ts, axis=1)
    ry, cache = views.concat_forward_ref(parts, axis=1)
    assert_close(y.data, ry, atol=0, rtol=0)
    g = rng.standard_normal(ry.shape)
    y.backward(dev(g))
    for t, rg in zip(ts, views.concat_backward_ref(g, cache)):
        assert_close(t.grad, rg, atol=0, rtol=0)
    x4 = rng.standard_normal((2, 3, 2, 4))
    t = Tensor(dev(x4), requires_grad=True)
    y = ops.transpose(t, (0, 2, 1, 3))
    assert_close(y.data, x4.transpose(0, 2, 1, 3), atol=0, rtol=0)
    g = rng.standard_normal((2, 2, 3, 4))
    y.backward(dev(g))
    assert_close(t.grad, g.transpose(0, 2, 1, 3), atol=0, rtol=0)


@pytest.mark.gpu
def test_row_reductions_with_warp_shuffles_on_a_real_gpu():
    # cuda_arrays.block_sum / block_max as shfl_xor butterflies (off under the simulator)
    from scratchgpt import cuda_arrays
    from scratchgpt.ops.argmax_rows import argmax_rows_ref
    from scratchgpt.ops.argmax_rows_cuda import argmax_rows_cuda
    assert cuda_arrays.WARP_SHUFFLE
    rng = np.random.default_rng(9)
    x = rng.standard_normal((7, 1000)).astype(np.float32)
    y, _ = softmax_forward_cuda(dev(x))
    assert_close(y, softmax_op.softmax_forward_ref(x)[0], **F32)
    w, b = rng.standard_normal(1000).astype(np.float32), rng.standard_normal(1000).astype(np.float32)
    out, _ = layernorm_forward_cuda(dev(x), dev(w), dev(b))
    assert_close(out, layernorm_op.layernorm_forward_ref(x, w, b)[0], atol=1e-4, rtol=1e-4)
    np.testing.assert_array_equal(host(argmax_rows_cuda(dev(x))), argmax_rows_ref(x))
