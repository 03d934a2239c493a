"""The caching device allocator (scratchgpt/cuda_pool.py) on a fake allocator, and its numba-cuda
EMM plugin (scratchgpt/cuda_memory.py) with fake device memory: no GPU needed.

The fake "driver" hands out address ranges and checks that no two live blocks overlap and
that nothing is freed twice; a model of the pool (which handles are live, which are cached)
is checked against the pool's stats after every operation of hypothesis-drawn sequences.
"""
import os
import subprocess
import sys
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scratchgpt.cuda_pool import LARGE, SMALL_STEP, BlockPool, size_class


class FakeDriver:
    """cuMemAlloc / cuMemFree over a bump allocator; ``capacity`` bytes at most in use."""

    def __init__(self, capacity=None):
        self.next = 4096
        self.live = {}                    # address -> size
        self.capacity = capacity
        self.allocs = self.frees = 0

    def alloc(self, n):
        if self.capacity is not None and sum(self.live.values()) + n > self.capacity:
            raise MemoryError("fake device full")
        addr = self.next
        self.next += n
        self.live[addr] = n
        self.allocs += 1
        return addr

    def free(self, addr):
        assert addr in self.live, f"driver free of {addr}: not allocated (double free)"
        del self.live[addr]
        self.frees += 1


def test_size_classes():
    assert [size_class(n) for n in (0, 1, 512, 513, 1000)] == [512, 512, 512, 1024, 1024]
    assert size_class(LARGE) == LARGE
    assert size_class(LARGE + 1) == LARGE + LARGE // 4                   # 1.25 MiB
    assert size_class(2 * LARGE) == 2 * LARGE
    assert size_class(2 * LARGE + 1) == 2 * LARGE + LARGE // 2           # 2.5 MiB
    assert size_class(154_389_504) == 167_772_160                        # GPT-2's wte: 160 MiB, not 256


@given(st.integers(0, 1 << 34))
def test_a_class_holds_the_request_and_wastes_little(n):
    c, n = size_class(n), max(n, 1)        # a request of 0 bytes gets the smallest block
    assert c >= n and c % SMALL_STEP == 0
    assert c - n < SMALL_STEP if n <= LARGE else c < 1.25 * n
    assert size_class(c) == c                                            # a class is its own class


SIZES = st.one_of(st.integers(0, 3 * LARGE), st.sampled_from([100, 1000, 4096, LARGE + 5]))   # repeats: reuse
OPS = st.lists(st.one_of(st.tuples(st.just("alloc"), SIZES),
                         st.tuples(st.just("free"), st.integers(0, 1000)),
                         st.tuples(st.just("empty"), st.just(0))), max_size=60)


@given(OPS, st.sampled_from([None, 8 * LARGE]), st.booleans())
def test_random_sequences_never_share_a_block_and_the_stats_add_up(ops, max_cached, caching):
    drv = FakeDriver()
    pool = BlockPool(drv.alloc, drv.free, max_cached_bytes=max_cached, caching=caching)
    live = {}                             # handle -> requested bytes (what the caller holds)
    cached = Counter()                    # the model's free lists: class -> blocks waiting
    n_alloc = n_free = 0
    for op, arg in ops:
        if op == "alloc":
            cls, driver_allocs = size_class(arg), drv.allocs
            h = pool.alloc(arg)
            assert h not in live, "a block handed out twice"
            assert h in drv.live and drv.live[h] >= arg                   # real memory, big enough
            # reuse: a waiting block of the class is taken, the driver is asked only otherwise
            assert (drv.allocs == driver_allocs) == (cached[cls] > 0)
            cached[cls] -= cached[cls] > 0
            live[h] = arg
            n_alloc += 1
        elif op == "free" and live:
            h = sorted(live)[arg % len(live)]
            cls = size_class(live.pop(h))
            pool.free(h)
            n_free += 1
            if caching and (max_cached is None or sum(c * n for c, n in cached.items()) + cls <= max_cached):
                cached[cls] += 1
        elif op == "empty":
            pool.empty_cache()
            cached.clear()
            assert pool.stats().cached_bytes == 0
        s = pool.stats()
        assert s.live_blocks == len(live)
        assert s.in_use_bytes == sum(size_class(n) for n in live.values())
        assert s.requested_bytes == sum(live.values())
        assert s.hits + s.misses == n_alloc and s.frees == n_free
        assert s.misses == drv.allocs and s.raw_frees == drv.frees
        # the driver holds exactly the live blocks and the cached ones
        assert sum(drv.live.values()) == s.in_use_bytes + s.cached_bytes == s.reserved_bytes
        assert s.cached_blocks == len(drv.live) - len(live) == sum(cached.values())
        if not caching:
            assert s.cached_bytes == 0 and s.hits == 0
        if max_cached is not None:
            assert s.cached_bytes <= max_cached
        assert s.peak_in_use_bytes >= s.in_use_bytes


def test_a_freed_block_is_reused_by_the_same_class_only():
    drv = FakeDriver()
    pool = BlockPool(drv.alloc, drv.free)
    a = pool.alloc(1000)
    pool.free(a)
    assert pool.alloc(600) == a                      # 600 and 1000 are both the 1024 class
    b = pool.alloc(3000)                             # another class: a new block
    assert b != a and drv.allocs == 2
    s = pool.stats()
    assert (s.hits, s.misses) == (1, 2)
    # a training step's pattern: the same sizes every step -> the driver is asked only in step 1
    for _ in range(3):
        hs = [pool.alloc(n) for n in (4096, 4096, 123_456, 5_000_000)]
        for h in hs:
            pool.free(h)
    assert drv.allocs == 2 + 4


def test_double_free_and_foreign_blocks_raise():
    pool = BlockPool(FakeDriver().alloc, FakeDriver().free)
    h = pool.alloc(10)
    pool.free(h)
    with pytest.raises(ValueError, match="freed twice"):
        pool.free(h)
    with pytest.raises(ValueError):
        pool.free(123)


def test_out_of_memory_gives_the_cache_back_and_retries():
    drv = FakeDriver(capacity=3 * 1024)
    pool = BlockPool(drv.alloc, drv.free)
    small = [pool.alloc(1024) for _ in range(3)]     # the device is full
    for h in small:
        pool.free(h)                                 # ... of cached blocks
    big = pool.alloc(2048)                           # another class: the cache is released first
    assert drv.live == {big: 2048}
    assert pool.stats().cached_bytes == 0
    with pytest.raises(MemoryError):
        pool.alloc(4096)                             # nothing cached: really out of memory


def test_free_from_a_finalizer_in_the_middle_of_alloc():
    """numba frees from the garbage collector, which can run inside ``alloc`` of the same
    thread: ``free`` must neither deadlock on the pool's lock nor corrupt its counters."""
    pool = None
    victims = []

    def raw_alloc(n):
        if victims:
            pool.free(victims.pop())                 # a "finalizer" firing inside alloc
        return drv.alloc(n)

    drv = FakeDriver()
    pool = BlockPool(raw_alloc, drv.free)
    victims.append(pool.alloc(512))
    h = pool.alloc(4096)                             # frees the first block on the way
    s = pool.stats()
    assert (s.live_blocks, s.in_use_bytes, s.cached_blocks, s.frees) == (1, 4096, 1, 1)
    assert pool.alloc(100) != h and pool.stats().hits == 1


PLUGIN_CHECK = r"""
import gc, json
from numba import cuda
from scratchgpt import cuda_memory
drv = {"next": 4096, "live": set(), "freed": []}
def alloc(n):
    drv["next"] += n
    drv["live"].add(drv["next"] - n)
    return drv["next"] - n
def free(h):
    drv["live"].remove(h); drv["freed"].append(h)
class Ctx: pass
ctx = Ctx()
MM = cuda_memory.memory_manager_class(alloc, free)
mm = MM(context=ctx)
out = {}
base = mm.memalloc(1000)                      # what a device array holds as its gpu_data
view = base.view(40, 80)                      # a slice of it holds a view ...
inner = view.view(8, 16)                      # ... and a slice of the slice
out["ptr"] = int(base.device_ctypes_pointer.value)
del base; gc.collect()
out["live_after_base"] = mm.pool.stats().live_blocks
del view; gc.collect()
out["live_after_view"] = mm.pool.stats().live_blocks
del inner; gc.collect()
s = mm.pool.stats()
out["after_all"] = [s.live_blocks, s.cached_blocks, len(mm.allocations)]
again = mm.memalloc(600)
out["reused"] = [int(again.device_ctypes_pointer.value) == out["ptr"], mm.pool.stats().hits]
out["raw_frees"] = len(drv["freed"])
out["interface_version"] = mm.interface_version
from numba.cuda.cudadrv import driver as d
cuda.set_memory_manager(MM)                   # numba checks the plugin's interface version
out["set"] = d._memory_manager is MM
d._memory_manager = None                      # back to "nothing chosen yet"
# installed by the backend on the first import of numba.cuda, outside the simulator ...
from scratchgpt import backend
backend.cuda_module()
m = d._memory_manager
out["installed"] = [cuda_memory.installed(), None if m is None else m.__name__, cuda_memory.status]
print(json.dumps(out))
"""


def _plugin_run(env_extra):
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="0", **env_extra)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    res = subprocess.run([sys.executable, "-c", PLUGIN_CHECK], env=env, capture_output=True, text=True,
                         timeout=120, cwd=root)
    assert res.returncode == 0, res.stderr[-2000:]
    import json
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_the_emm_plugin_keeps_a_block_until_its_last_view_is_gone():
    """numba's real (non-simulator) driver module, with fake device memory: no GPU is touched."""
    pytest.importorskip("numba.cuda")
    out = _plugin_run({})
    assert out["live_after_base"] == 1 and out["live_after_view"] == 1      # a view keeps it alive
    assert out["after_all"] == [0, 1, 0]                                    # then cached, not freed
    assert out["reused"] == [True, 1] and out["raw_frees"] == 0
    assert out["interface_version"] == 1 and out["set"]
    assert out["installed"][:2] == [True, "CachingMemoryManager"], out["installed"]


def test_the_pool_can_be_switched_off_and_is_never_used_by_the_simulator(monkeypatch):
    out = _plugin_run({"SCRATCHGPT_CUDA_POOL": "0"})
    assert out["installed"][:2] == [False, None] and "SCRATCHGPT_CUDA_POOL=0" in out["installed"][2]
    # this process runs the simulator (conftest.py): no memory manager to plug into
    from scratchgpt import cuda_memory
    monkeypatch.setattr(cuda_memory, "_decided", False)
    monkeypatch.setattr(cuda_memory, "_installed", False)
    monkeypatch.setattr(cuda_memory, "status", "")
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
        from scratchgpt.backend import cuda_module
        assert cuda_memory.install(cuda_module()) is False and "simulator" in cuda_memory.status
        assert cuda_memory.current_pool() is None and cuda_memory.empty_cache() == 0


@pytest.mark.gpu
def test_the_pool_serves_device_arrays_on_a_real_gpu():
    import numpy as np

    from scratchgpt import backend, cuda_memory
    from scratchgpt.infer import Engine, GenerationRequest, SamplingParams
    from tests.infer_helpers import tiny_gpt
    cuda = backend.cuda_module()
    pool = cuda_memory.current_pool()
    assert pool is not None, cuda_memory.status
    a = cuda.to_device(np.arange(1000, dtype=np.float32))
    ptr = a.device_ctypes_pointer.value
    view = a[10:20]
    del a
    assert pool.is_live(ptr)                                      # the slice keeps the block
    np.testing.assert_array_equal(view.copy_to_host(), np.arange(10, 20, dtype=np.float32))
    del view
    hits = pool.stats().hits
    b = cuda.device_array(900, np.float32)                        # 3600 B: the same 4096 B class
    assert b.device_ctypes_pointer.value == ptr and pool.stats().hits == hits + 1
    # an engine decode step asks the pool for nothing (tests/test_cuda_allocations.py's twin)
    eng = Engine(tiny_gpt(seed=1, vocab=29, block=64, n_layer=2, n_embd=32), None, max_batch_size=2, device="cuda")
    for p in ([1, 2, 3], [4, 5]):
        eng.add(GenerationRequest(p, SamplingParams(max_new_tokens=10, ignore_eos=True)))
    eng.step()
    eng.step()
    before = pool.stats()
    for _ in range(3):
        eng.step()
    after = pool.stats()
    assert (after.hits + after.misses) == (before.hits + before.misses)
