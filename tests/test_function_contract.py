"""Function's contract and device registry: forward -> (out, cache), the cache kept only when a
graph is recorded, and each device's body receiving only arrays of its own device."""
import gc
import weakref

import numpy as np
import pytest

from scratchgpt import backend

from scratchgpt.autograd import Function, Tensor, no_grad
from scratchgpt.autograd.function import IMPLEMENTATIONS, register
from scratchgpt.errors import DeviceError
from scratchgpt import ops


class FakeDeviceArray:
    """Stands in for a GPU array (CuPy, numba-cuda): it has __cuda_array_interface__, and any
    attempt to read it as a NumPy array (np.asarray, np.ascontiguousarray) fails loudly."""
    __cuda_array_interface__ = {"shape": (3,), "typestr": "<f4", "data": (0, False), "version": 3}
    shape = (3,)
    dtype = np.dtype(np.float32)
    size = 3
    ndim = 1

    def __array__(self, *a, **k):
        raise AssertionError("a NumPy body tried to read a device array")


class FakeSimulatorArray:
    """Like numba's CUDA-simulator FakeCUDAArray: only the __cuda_ndarray__ marker, and an
    __array__ that would hand NumPy a host copy without a word."""
    __cuda_ndarray__ = True
    shape = (3,)
    dtype = np.dtype(np.float32)
    size = 3
    ndim = 1

    def __array__(self, *a, **k):
        return np.ones(3, dtype=np.float32)


@pytest.mark.parametrize("kind", [FakeDeviceArray, FakeSimulatorArray])
def test_gpu_arrays_stay_gpu_arrays_in_a_tensor(kind):
    class CpuOnly(Function):
        @staticmethod
        def forward(ctx, x):
            raise AssertionError("the NumPy body got a GPU array")

        @staticmethod
        def backward(ctx, g):
            return (g,)

    t = Tensor(kind())
    assert t.device == "cuda" and isinstance(t.data, kind)      # not silently copied to the host
    with pytest.raises(DeviceError, match="no implementation for device 'cuda'"):
        CpuOnly.apply(t)


class BigCache(Function):
    """forward keeps a large array as cache; weakref tells whether anyone still holds it."""
    last = None

    @staticmethod
    def forward(ctx, x):
        cache = np.ones(1 << 16, dtype=np.float32)
        BigCache.last = weakref.ref(cache)
        return x * 2, cache

    @staticmethod
    def backward(ctx, g):
        assert ctx.cache is not None and ctx.cache.size == 1 << 16
        return (g * 2,)


def test_cache_is_dropped_under_no_grad_and_kept_when_recording():
    x = Tensor(np.ones(3, dtype=np.float32), requires_grad=True)
    with no_grad():
        y = BigCache.apply(x)
    gc.collect()
    assert BigCache.last() is None          # nothing holds the cache: y keeps no graph
    assert y._ctx is None and not y.requires_grad
    z = BigCache.apply(x)
    gc.collect()
    assert BigCache.last() is not None      # recorded: the node holds it until backward
    z.backward(np.ones(3, dtype=np.float32))
    gc.collect()
    assert BigCache.last() is None          # backward frees it
    np.testing.assert_allclose(x.grad, [2, 2, 2])


def test_cache_is_dropped_when_no_input_needs_grad():
    BigCache.apply(Tensor(np.ones(3, dtype=np.float32)))
    gc.collect()
    assert BigCache.last() is None


@pytest.mark.parametrize("make", [
    lambda x: ops.gelu(x),
    lambda x: ops.layernorm(x, Tensor(np.ones(4, np.float32), requires_grad=True)),
    lambda x: ops.mul(x, x),
    lambda x: ops.smear(ops.reshape(x, (1, 2, 4)), Tensor(np.ones(4, np.float32), requires_grad=True),
                        np.zeros(1, np.float32)),
    lambda x: ops.reshape(x, (4, 2)),
    lambda x: ops.linear(x, Tensor(np.ones((4, 3), np.float32), requires_grad=True)),
])
def test_real_ops_keep_no_graph_under_no_grad(make):
    x = Tensor(np.random.default_rng(0).standard_normal((2, 4)).astype(np.float32), requires_grad=True)
    with no_grad():
        y = make(x)
    assert y._ctx is None and not y.requires_grad
    y = make(x)
    assert y._ctx is not None and y._ctx[1].cache is not None


def test_forward_must_return_out_and_cache():
    class OldStyle(Function):
        @staticmethod
        def forward(ctx, x):
            return x

        @staticmethod
        def backward(ctx, g):
            return (g,)
    with pytest.raises(TypeError, match=r"\(out, cache\)"):
        OldStyle.apply(Tensor(np.ones(3)))


def test_no_numpy_op_body_ever_receives_a_device_array(monkeypatch):
    """Every registered CPU implementation: a Tensor on "cuda" stops at apply, before the body."""
    calls = []
    if backend.cuda_available():
        backend.load_cuda_ops()   # register the CUDA implementations first: the rest must refuse
    all_cpu = [op for (op, device) in list(IMPLEMENTATIONS) if device == "cpu"
               and op.__module__.startswith("scratchgpt.ops")]
    assert len(all_cpu) >= 15   # all the ops' Functions are registered
    cpu_ops = [op for op in all_cpu if (op, "cuda") not in IMPLEMENTATIONS]
    assert cpu_ops
    for op in cpu_ops:
        monkeypatch.setattr(op, "forward", staticmethod(lambda ctx, *a, **k: calls.append(a)))
    dev = Tensor(FakeDeviceArray())
    assert dev.device == "cuda"
    for op in cpu_ops:
        with pytest.raises(DeviceError, match="no implementation for device 'cuda'"):
            op.apply(dev)
    assert calls == []


def test_each_device_body_receives_its_own_arrays():
    seen = []

    class Twice(Function):
        @staticmethod
        def forward(ctx, x):
            seen.append(("cpu", type(x)))
            return x * 2, None

        @staticmethod
        def backward(ctx, g):
            return (g * 2,)

    @register(Twice, "cuda")
    class TwiceCuda:
        @staticmethod
        def forward(ctx, x):
            seen.append(("cuda", type(x)))
            return x, None

        @staticmethod
        def backward(ctx, g):
            return (g,)

    Twice.apply(Tensor(np.ones(3, dtype=np.float32)))
    out = Twice.apply(Tensor(FakeDeviceArray(), requires_grad=True))
    assert seen == [("cpu", np.ndarray), ("cuda", FakeDeviceArray)]
    assert out.device == "cuda"
    assert out._ctx[0] is TwiceCuda          # backward will run the CUDA body too
    with pytest.raises(DeviceError, match="several devices"):
        Twice.apply(Tensor(np.ones(3, dtype=np.float32)), FakeDeviceArray())


def test_registering_a_device_body_must_not_inherit_the_cpu_one():
    class Op(Function):
        @staticmethod
        def forward(ctx, x):
            return x, None

        @staticmethod
        def backward(ctx, g):
            return (g,)

    with pytest.raises(TypeError, match="must define its own backward"):
        @register(Op, "cuda")
        class Half(Op):   # noqa: F811 - inherits backward from the CPU class
            @staticmethod
            def forward(ctx, x):
                return x, None


def test_plain_array_arguments_count_for_the_device():
    """A NumPy target array next to a device Tensor is a mix of devices, not silently copied."""
    with pytest.raises(DeviceError):
        ops.cross_entropy(Tensor(FakeDeviceArray()), np.zeros(3, dtype=np.int64))


def test_op_modules_and_functions_have_different_names():
    """ops.<name> is always what ops/__init__ binds: a function, or a module whose name no function has."""
    import importlib
    import types
    for name in ops.__all__:
        assert not isinstance(ops.__dict__[name], types.ModuleType)
        assert name.isupper() or callable(ops.__dict__[name])   # constants (IGNORE_INDEX) or functions
    for mod in ("attention", "gelu_op", "layernorm_op", "matmul_op", "softmax_op", "dropout_op",
                "embedding_op", "cross_entropy_op", "cross_attention_op", "elementwise", "views"):
        assert mod not in ops.__all__
        assert importlib.import_module(f"scratchgpt.ops.{mod}") is getattr(ops, mod)
    import scratchgpt.ops.gelu_op as gelu_module
    assert isinstance(gelu_module, types.ModuleType) and gelu_module.gelu is ops.gelu
