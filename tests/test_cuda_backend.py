"""The device backend: detection, one-line errors, device arrays in Tensor/Module, no hidden copies."""
import numpy as np
import pytest

from cuda_sim import dev, host  # noqa: F401
from scratchgpt import backend
from scratchgpt.autograd import Tensor
from scratchgpt.errors import ConfigError, DeviceError
from scratchgpt.models import GPT, GPTConfig
from scratchgpt.ops import gelu, linear
from scratchgpt.ops.gelu_cuda import GELUCuda


def test_backend_says_what_runs_cuda():
    assert backend.cuda_kind() == ("simulator" if backend.simulator_enabled() else "gpu")
    assert backend.describe()["cuda"] == backend.cuda_kind()


def test_cuda_without_a_gpu_is_one_line_error(monkeypatch):
    monkeypatch.setattr(backend, "cuda_kind", lambda: None)
    with pytest.raises(ConfigError) as e:
        backend.check_device("cuda")
    assert "\n" not in str(e.value) and "--device cuda" in str(e.value) and "gpu" in str(e.value)
    with pytest.raises(ConfigError):
        backend.check_device("tpu")


def test_host_array_in_a_cuda_op_body_raises():
    # a NumPy array reaching a CUDA body would be copied to the GPU and back on every launch
    with pytest.raises(DeviceError, match="host NumPy array"):
        GELUCuda.forward(None, np.ones(4, np.float32))


def test_mixed_devices_raise_before_any_body_runs():
    x = Tensor(dev(np.ones((2, 3), np.float32)))
    w = Tensor(np.ones((3, 4), np.float32))
    with pytest.raises(DeviceError, match="several devices"):
        linear(x, w)


def test_tensor_keeps_gpu_arrays_and_backward_stays_there():
    x = Tensor(dev(np.linspace(-2, 2, 6, dtype=np.float32).reshape(2, 3)), requires_grad=True)
    assert x.device == "cuda"
    y = gelu(x)
    assert y.device == "cuda"
    (y * y).sum().backward()                  # mul, sum, gelu backward and the seed all on the GPU
    assert backend.array_device(x.grad) == "cuda"


def test_model_to_cuda_and_back_is_bit_identical():
    cfg = GPTConfig(vocab_size=7, block_size=4, n_layer=1, n_head=1, n_embd=8)
    cpu = GPT(cfg, seed=3)
    gpu = GPT(cfg, seed=3, device="cuda")
    assert gpu.device == "cuda" and all(p.device == "cuda" for p in gpu.parameters())
    a, b = cpu.state_dict(), gpu.state_dict()           # state_dict copies GPU weights to the host
    assert all(np.array_equal(a[k], b[k]) and isinstance(b[k], np.ndarray) for k in a)
    b2 = {k: v + 1 for k, v in b.items()}
    gpu.load_state_dict(b2)                              # a host checkpoint loads into GPU weights
    assert all(np.array_equal(gpu.state_dict()[k], b2[k]) for k in b2)
    gpu.to("cpu")
    assert gpu.device == "cpu" and all(np.array_equal(gpu.state_dict()[k], b2[k]) for k in b2)


@pytest.mark.gpu
def test_real_gpu_is_not_the_simulator():
    assert backend.cuda_kind() == "gpu" and backend.cuda_module().is_available()


def test_device_flag_errors_are_one_line_exit_2(monkeypatch, capsys):
    from scratchgpt.cli import main
    monkeypatch.setattr(backend, "cuda_kind", lambda: None)
    assert main(["pretrain", "--data", "nowhere", "--tokenizer", "x", "--device", "cuda"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no CUDA GPU" in err
    assert main(["pretrain", "--data", "nowhere", "--tokenizer", "x", "--sim"]) == 2
    assert "--sim simulates the GPU" in capsys.readouterr().err
    monkeypatch.undo()
    # generate has a GPU path (tests/test_cuda_engine.py): past the device check, the missing model is the error
    assert main(["generate", "somewhere", "--prompt", "hi", "--device", "cuda"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no such directory" in err


def test_scaling_a_gpu_tensor_by_a_number_stays_on_the_gpu():
    x = Tensor(dev(np.arange(4, dtype=np.float32)), requires_grad=True)
    y = (x * 3.0).sum()
    y.backward()
    assert y.device == "cuda"
    np.testing.assert_array_equal(host(y.data), 18.0)
    np.testing.assert_array_equal(host(x.grad), np.full(4, 3.0, np.float32))


def test_clip_grad_norm_on_gpu_gradients_matches_cpu():
    from scratchgpt.optim import clip_grad_norm
    rng = np.random.default_rng(0)
    grads = [rng.standard_normal(s).astype(np.float32) for s in ((3, 4), (5,))]
    cpu = [Tensor(np.zeros_like(g), requires_grad=True) for g in grads]
    gpu = [Tensor(dev(np.zeros_like(g)), requires_grad=True) for g in grads]
    for t, g in zip(cpu, grads):
        t.grad = g.copy()
    for t, g in zip(gpu, grads):
        t.grad = dev(g)
    n_cpu, n_gpu = clip_grad_norm(cpu, 1.0), clip_grad_norm(gpu, 1.0)
    assert abs(n_cpu - n_gpu) < 1e-5 * n_cpu and n_cpu > 1.0
    for a, b in zip(cpu, gpu):
        np.testing.assert_allclose(host(b.grad), a.grad, rtol=1e-6, atol=1e-7)


cuda = backend.cuda_module()      # kernels below: the simulator swaps the global named `cuda`


@cuda.jit
def reverse_sum(x, out):                  # each block: reverse its 8 values through shared memory, then sum
    buf = cuda.shared.array(8, dtype=np.float64)
    t = cuda.threadIdx.x
    i = cuda.blockIdx.x * 8 + t
    buf[t] = x[i]
    cuda.syncthreads()
    v = buf[7 - t]
    cuda.syncthreads()
    buf[t] = v * (t + 1)
    cuda.syncthreads()
    if t == 0:
        s = 0.0
        for k in range(8):
            s += buf[k]
        out[cuda.blockIdx.x] = s


@cuda.jit
def fails(out):
    t = cuda.threadIdx.x
    cuda.syncthreads()
    if t == 5:
        out[100] = 1.0                    # out of bounds: the launch raises, naming the thread
    cuda.syncthreads()


@pytest.mark.parametrize("runner", ["GreenletBlockManager", "PooledBlockManager"])
def test_simulator_block_runners_keep_barriers_shared_memory_and_errors(runner, monkeypatch):
    # backend installs scratchgpt/cuda_simulator.py's block runner (greenlets when the package is
    # there, else pooled threads): barriers, shared memory and errors behave as in numba's own
    # simulator (which started a thread per CUDA thread and polled them)
    if not backend.simulator_enabled():
        pytest.skip("simulator only")
    from numba.cuda.simulator import kernel as simkernel

    from scratchgpt import cuda_simulator
    assert simkernel.BlockManager in (cuda_simulator.PooledBlockManager, cuda_simulator.GreenletBlockManager)
    monkeypatch.setattr(simkernel, "BlockManager", getattr(cuda_simulator, runner))
    x = np.arange(24, dtype=np.float64)
    out = dev(np.zeros(3))
    reverse_sum[3, 8](dev(x), out)
    want = [sum(x[b * 8 + 7 - t] * (t + 1) for t in range(8)) for b in range(3)]
    np.testing.assert_array_equal(host(out), want)

    with pytest.raises(IndexError, match=r"tid=\[5, 0, 0\] ctaid=\[0, 0, 0\]"):
        fails[2, 8](dev(np.zeros(4)))
    reverse_sum[3, 8](dev(x), out)            # the runner still works after an aborted block
    np.testing.assert_array_equal(host(out), want)


def test_simulated_device_arrays_refuse_what_real_ones_lack():
    # the simulator's arrays are NumPy arrays in disguise: without this, `.copy()` on a GPU array
    # passed every simulator test and failed on a GPU (nn/peft.py's peft_state_dict did)
    if not backend.simulator_enabled():
        pytest.skip("simulator only")
    a = dev(np.arange(6, dtype=np.float32).reshape(2, 3))
    assert a.shape == (2, 3) and a.T.shape == (3, 2) and host(a.reshape(3, 2))[2, 1] == 5
    for name in ("copy", "astype", "sum", "mean"):
        with pytest.raises(AttributeError, match=f"no attribute '{name}'"):
            getattr(a, name)
