"""The inference kernels on the (simulated) GPU: KV-cache attention and int8/int4 products from
the packed weights, against their float64 references."""
import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from cuda_sim import assert_close, dev, host
from scratchgpt.ops import decode_attention, quantized_matmul as qm
from scratchgpt.ops.decode_attention_cuda import cached_attention_cuda
from scratchgpt.ops.quantized_matmul_cuda import int4_linear_cuda, int8_linear_cuda


def test_cached_attention_prompt_then_decode():
    rng = np.random.default_rng(0)
    S, NH, Tmax, HS = 2, 2, 6, 3
    C = NH * HS
    K = rng.standard_normal((S, NH, Tmax, HS)).astype(np.float32)
    V = rng.standard_normal((S, NH, Tmax, HS)).astype(np.float32)
    # a 3-token prompt in slot 1 and a decode step of slot 0 at position 2, in one call
    slots = np.array([1, 1, 1, 0])
    positions = np.array([0, 1, 2, 2])
    qkv = rng.standard_normal((4, 3 * C)).astype(np.float32)
    dK, dV = dev(K), dev(V)
    y = cached_attention_cuda(dev(qkv), dK, dV, dev(slots), dev(positions), NH)
    ry, rK, rV = decode_attention.cached_attention_ref(qkv, K, V, slots, positions, NH)
    assert_close(y, ry, atol=2e-6, rtol=1e-5)
    np.testing.assert_array_equal(host(dK), rK.astype(np.float32))     # the rows were written
    np.testing.assert_array_equal(host(dV), rV.astype(np.float32))


@pytest.mark.parametrize("split", [True, False])
def test_split_cache_attention_equals_the_reference(split):
    # positions across three 32-position chunks, one row in chunk 0 only; the split kernel's
    # empty chunks must weigh nothing (the step's max_len covers all three)
    from scratchgpt.ops.decode_attention_cuda import CHUNK, choose_split
    rng = np.random.default_rng(3)
    S, NH, Tmax, HS = 2, 2, 70, 3
    C = NH * HS
    K = rng.standard_normal((S, NH, Tmax, HS)).astype(np.float32)
    V = rng.standard_normal((S, NH, Tmax, HS)).astype(np.float32)
    slots, positions = np.array([0, 1, 1]), np.array([69, 5, 40])
    qkv = (rng.standard_normal((3, 3 * C)) * 3).astype(np.float32)
    dK, dV = dev(K), dev(V)
    y = cached_attention_cuda(dev(qkv), dK, dV, dev(slots), dev(positions), NH, split=split, max_len=70)
    ry, rK, rV = decode_attention.cached_attention_ref(qkv, K, V, slots, positions, NH)
    assert_close(y, ry, atol=2e-6, rtol=1e-5)
    np.testing.assert_array_equal(host(dK), rK.astype(np.float32))
    assert CHUNK == 32 and choose_split(1, 12, 1024) and not choose_split(512, 12, 1024) and not choose_split(1, 12, 64)


def test_greedy_argmax_rows_on_the_device():
    from scratchgpt.ops.argmax_rows import argmax_rows_ref
    from scratchgpt.ops.argmax_rows_cuda import argmax_rows_cuda
    rng = np.random.default_rng(4)
    x = rng.standard_normal((6, 70)).astype(np.float32)
    x[1, [3, 40, 41]] = 9.0                          # ties: the first index wins
    x[2, 50] = np.nan                                # a NaN row goes back to the sampler (-1)
    x[3, :] = -np.inf                                # so does a row without a finite maximum
    x[4, 7] = np.inf
    x[5, :] = -np.inf
    x[5, 66] = -1.0
    want = argmax_rows_ref(x)
    assert want.tolist()[1:] == [3, -1, -1, -1, 66]
    np.testing.assert_array_equal(host(argmax_rows_cuda(dev(x))), want)


@settings(max_examples=3)
@example(M=2, K=70, N=3, G=64, bias=True, seed=1)     # two groups, the last one partial, int4 high nibbles
@given(M=st.integers(1, 2), K=st.integers(1, 70), N=st.integers(1, 5), G=st.sampled_from([32, 64]),
       bias=st.booleans(), seed=st.integers(0, 99))
def test_int8_and_int4_products_from_packed_weights(M, K, N, G, bias, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((M, K)).astype(np.float32)
    w = rng.standard_normal((K, N)).astype(np.float32)
    b = rng.standard_normal(N).astype(np.float32) if bias else None
    q, s = qm.quantize_int8(w, G)
    assert_close(int8_linear_cuda(dev(x), dev(q), dev(s), None if b is None else dev(b)),
                 qm.int8_linear_ref(x, q, s, b), atol=1e-5, rtol=1e-5)
    p, s4 = qm.quantize_int4(w, G)
    assert_close(int4_linear_cuda(dev(x), dev(p), dev(s4), None if b is None else dev(b)),
                 qm.int4_linear_ref(x, p, s4, b), atol=1e-5, rtol=1e-5)


def test_packed_product_refuses_host_weights():
    from scratchgpt.errors import DeviceError
    q, s = qm.quantize_int8(np.ones((32, 2), np.float32))
    with pytest.raises(DeviceError):
        int8_linear_cuda(dev(np.ones((1, 32), np.float32)), q, dev(s))


def test_gpu_check_kernels_run_on_the_simulator():
    # benchmarks/gpu_check.py's kernel part at its --sim sizes: the script stays runnable for the day a GPU comes
    from benchmark_modules import load_benchmark
    gpu_check = load_benchmark("gpu_check")
    rows = gpu_check.kernel_checks(sim=True, repeats=1, use_torch=False)
    assert {r["kernel"] for r in rows} == {"matmul", "layernorm", "gelu", "softmax", "attention", "attention_simple",
                                          "cross_entropy", "embedding", "adamw", "attention_bwd",
                                          "attention_bwd_simple", "cross_attention", "broadcast_add", "transpose4d",
                                          "smear", "dense_rows", "int8_rows", "int4_rows", "layernorm_rows",
                                          "decode_attention", "decode_attention_split", "argmax_rows"}
    assert all(r["rel_err"] < 1e-5 for r in rows), rows
    poisoned = {r["kernel"] for r in rows if r["poisoned_output"]}
    assert {"matmul", "layernorm", "dense_rows", "decode_attention", "decode_attention_split", "argmax_rows"} <= poisoned
    # its batch-1 decode part: the GPU engine, the CPU engine and the torch eager KV-cache loop agree
    dec = gpu_check.decode_check(sim=True, cpu_too=True, use_torch=False)
    assert dec["tokens_equal_cpu"] and dec["tokens_equal_torch"] is not False, dec
