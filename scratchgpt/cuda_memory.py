"""The caching allocator on a real GPU: a numba-cuda External Memory Management (EMM) plugin.

numba-cuda lets a program replace how device memory is allocated: a subclass of
``HostOnlyCUDAMemoryManager`` whose ``memalloc(size)`` returns a ``MemoryPointer``, made the
memory manager of every CUDA context created afterwards by ``cuda.set_memory_manager``. Ours,
``CachingMemoryManager``, takes its blocks from a ``cuda_pool.BlockPool`` (the bookkeeping,
tested on the CPU) over ``cuMemAlloc`` / ``cuMemFree``, and the block goes back to the pool when
the last numba device array using it (the array itself or any view of it) is gone.

``backend.cuda_module()`` installs it (``install``) the first time numba.cuda is imported, on a
real GPU — before any CUDA context exists, since a context keeps the memory manager it was
created with. ``SCRATCHGPT_CUDA_POOL=0`` keeps numba's own manager (cuMemAlloc per array, frees
batched). Never under the simulator: the simulator has no EMM interface (its "device arrays"
are NumPy arrays), so there is nothing to plug into.

Reusing a block as soon as its last array is freed is safe because everything in scratchgpt
runs on the default stream, which executes kernels and copies in order: a kernel launched
later that writes into the reused block runs after every kernel that read it before. With
per-thread default streams (``NUMBA_CUDA_PER_THREAD_DEFAULT_STREAM=1``) two threads could
overlap, so ``install`` then leaves numba's manager in place.

    from scratchgpt import cuda_memory
    cuda_memory.pool_stats()     # PoolStats of the current context's pool (None: not installed)
    cuda_memory.empty_cache()    # cached blocks back to the driver (e.g. before handing the GPU
                                 # to another library)
"""
from __future__ import annotations

import contextlib
import os
import weakref

from .cuda_pool import BlockPool

ENV = "SCRATCHGPT_CUDA_POOL"       # "0": numba's own memory manager
_installed = False
_decided = False
_cuda = None                       # the numba.cuda module install() was given (backend.cuda_module's)
status = "not installed yet"      # one line for backend.describe()


def pool_enabled() -> bool:
    return os.environ.get(ENV, "1") != "0"


def memory_manager_class(raw_alloc=None, raw_free=None):
    """The EMM plugin class. ``raw_alloc`` / ``raw_free`` default to the driver's cuMemAlloc /
    cuMemFree; the tests pass fakes (with a fake context) to check the lifetime of views."""
    from numba.cuda.cudadrv import driver as drv     # the real driver module (not the simulator's)

    def cu_alloc(nbytes):
        try:
            return int(drv.driver.cuMemAlloc(nbytes))
        except drv.CudaAPIError as e:
            if e.code == drv.binding.CUresult.CUDA_ERROR_OUT_OF_MEMORY:
                raise MemoryError(f"CUDA out of memory allocating {nbytes} bytes") from e
            raise

    def cu_free(handle):
        drv.driver.cuMemFree(drv.binding.CUdeviceptr(handle))

    alloc, free = raw_alloc or cu_alloc, raw_free or cu_free

    class CachingMemoryManager(drv.GetIpcHandleMixin, drv.HostOnlyCUDAMemoryManager):
        """Device memory from a BlockPool; pinned / mapped host memory as numba does it."""

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.pool = BlockPool(alloc, free)

        def initialize(self):
            # the capacity numba's pending host deallocations are measured against (as its own
            # manager sets it); device blocks do not go through that queue
            if self.deallocations.memory_capacity == drv._SizeNotSet:
                self.deallocations.memory_capacity = self.get_memory_info().total

        def memalloc(self, size):
            handle = self.pool.alloc(size)
            allocations, pool = self.allocations, self.pool

            def finalizer():
                allocations.pop(handle, None)
                pool.free(handle)

            # As numba's own manager does: an AutoFreePointer kept in ``allocations`` and handed
            # out through ``own()``. Every view of the array takes a reference on it, and the
            # finalizer runs when the last reference goes — a plain MemoryPointer would be freed
            # with the array object while a slice of it is still in use.
            mem = drv.AutoFreePointer(weakref.proxy(self.context), drv.binding.CUdeviceptr(handle), size,
                                      finalizer=finalizer)
            self.allocations[handle] = mem
            return mem.own()

        def get_memory_info(self):
            free_b, total = drv.driver.cuMemGetInfo()
            return drv.MemoryInfo(free=free_b, total=total)

        def reset(self):
            super().reset()
            self.pool.empty_cache()

        @contextlib.contextmanager
        def defer_cleanup(self):
            with super().defer_cleanup():      # pinned host memory; pool frees need no deferring
                yield

        @property
        def interface_version(self):
            return 1

    return CachingMemoryManager


def install(cuda) -> bool:
    """Make the caching manager numba-cuda's memory manager (real GPU only; see the module doc).
    Returns whether it is installed. Decided on the first call; later calls return that answer."""
    global _installed, _decided, _cuda, status
    if _decided:                 # decided once, at the first import: later contexts must not differ
        return _installed
    _decided = True
    import numba
    if not pool_enabled():
        status = f"off ({ENV}=0): numba-cuda's own memory manager"
    elif getattr(numba.config, "ENABLE_CUDASIM", False) or not hasattr(cuda, "set_memory_manager"):
        status = "off: the simulator has no memory managers"
    elif getattr(numba.config, "CUDA_PER_THREAD_DEFAULT_STREAM", False):
        status = "off: per-thread default streams (a freed block could still be read by another stream)"
    else:
        try:
            from numba.cuda.cudadrv import driver as drv
            if not hasattr(getattr(drv, "binding", None), "CUdeviceptr"):
                raise ImportError("numba.cuda without the cuda-python bindings (numba's old built-in copy)")
            cuda.set_memory_manager(memory_manager_class())
        except Exception as e:        # noqa: BLE001 - never let the pool stop the GPU from working
            status = f"off: {type(e).__name__}: {e}"[:200]
            return False
        _installed, _cuda = True, cuda
        status = "on: caching allocator (scratchgpt/cuda_pool.py)"
    return _installed


def installed() -> bool:
    return _installed


def current_pool():
    """The BlockPool of the current CUDA context, or None (simulator, opt-out, numba's manager)."""
    if not _installed:
        return None
    return getattr(_cuda.current_context().memory_manager, "pool", None)


def pool_stats():
    pool = current_pool()
    return None if pool is None else pool.stats()


def empty_cache() -> int:
    pool = current_pool()
    return 0 if pool is None else pool.empty_cache()
