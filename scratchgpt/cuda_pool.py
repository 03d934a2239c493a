"""A caching allocator: device memory blocks served from size-class free lists.

    pool = BlockPool(raw_alloc, raw_free)     # raw_*: cuMemAlloc / cuMemFree on a GPU (cuda_memory.py)
    ptr = pool.alloc(nbytes)                  # a block of at least nbytes (its size class)
    pool.free(ptr)                            # back to its class's free list, not to the driver
    pool.empty_cache()                        # the cached blocks go back to the driver
    pool.stats()                              # PoolStats: bytes in use / cached, hits, misses ...

Why: every GPU op allocates its outputs (``cuda.device_array``), so a training step makes a
few hundred allocations and frees, the same sizes every step. On hardware each is a
``cuMemAlloc`` (tens of microseconds up to milliseconds) and each free a ``cuMemFree``, which
waits for the whole device to go idle — numba-cuda batches its frees to soften that, but the
step still pays a driver allocation for every array. Here a freed block waits on the free
list of its size class and the next request of that class takes it: after the first step a
training step or a decode step asks the driver for nothing.

Size classes (``size_class``): requests are rounded up to a multiple of 512 bytes up to 1 MiB,
and above that to quarter steps between powers of two (1, 1.25, 1.5, 1.75, 2, 2.5 ... MiB), so
a class wastes less than 25 % (whole powers of two would waste up to 50 %: GPT-2's 154 MB
token-embedding gradient and its two AdamW moments would each take 256 MB). Only blocks of
the same class are reused; a block is never split.

This module is pure Python and knows nothing about CUDA: the raw functions are parameters, so
the bookkeeping is tested on the CPU with a fake allocator (tests/test_cuda_pool.py). The thin
hardware layer, numba-cuda's External Memory Management plugin, is scratchgpt/cuda_memory.py.

``free`` may run inside the garbage collector (numba frees a device array's memory from a
finalizer), at any point of another call — even in the middle of ``alloc`` in the same thread.
So ``free`` takes no lock and touches no counter: it only takes the block out of the live
table (one atomic dict.pop) and appends it to a pending queue (an atomic deque.append). Every
other method takes the lock and first moves the pending blocks to their free lists (``_drain``).
"""
from __future__ import annotations

import collections
import threading
from dataclasses import asdict, dataclass

SMALL_STEP = 512            # bytes: the rounding of blocks up to LARGE
LARGE = 1 << 20             # 1 MiB: above it, quarter steps between powers of two


def size_class(nbytes: int) -> int:
    """The block size a request of ``nbytes`` gets (see the module doc). 0 gets the smallest."""
    n = max(int(nbytes), 1)
    if n <= LARGE:
        step = SMALL_STEP
    else:
        step = (1 << ((n - 1).bit_length() - 1)) // 4      # a quarter of the power of two below n
    return -(-n // step) * step


@dataclass
class PoolStats:
    in_use_bytes: int = 0         # blocks handed out and not freed (their class sizes)
    requested_bytes: int = 0      # what those blocks were asked for (in_use - requested: rounding)
    cached_bytes: int = 0         # blocks on the free lists, held from the driver
    peak_in_use_bytes: int = 0
    live_blocks: int = 0
    cached_blocks: int = 0
    hits: int = 0                 # allocs served from a free list
    misses: int = 0               # allocs that called raw_alloc
    frees: int = 0                # blocks given back to the pool
    raw_frees: int = 0            # blocks given back to the driver

    @property
    def reserved_bytes(self) -> int:
        """Everything the pool holds from the driver."""
        return self.in_use_bytes + self.cached_bytes

    def as_dict(self) -> dict:
        return {**asdict(self), "reserved_bytes": self.reserved_bytes}


class BlockPool:
    """Size-class free lists over ``raw_alloc(nbytes) -> handle`` and ``raw_free(handle)``.

    A handle is anything hashable the raw functions agree on (a device pointer as an int).
    ``raw_alloc`` raises MemoryError when the device is full: the pool then gives its cached
    blocks back and tries once more. ``max_cached_bytes``: a freed block that would take the
    cache above it goes straight back to the driver (None: no limit). ``caching=False`` turns
    the pool into a pass-through — every alloc a raw_alloc, every free a raw_free — which is
    what benchmarks/gpu_check.py compares against."""

    def __init__(self, raw_alloc, raw_free, max_cached_bytes: int | None = None, caching: bool = True):
        self._raw_alloc = raw_alloc
        self._raw_free = raw_free
        self.max_cached_bytes = max_cached_bytes
        self.caching = bool(caching)
        self._lock = threading.Lock()
        self._free_lists: dict[int, list] = collections.defaultdict(list)   # class -> handles
        self._live: dict = {}                                              # handle -> (class, nbytes)
        self._pending: collections.deque = collections.deque()             # freed, not yet filed
        self._s = PoolStats()

    # ---------------------------------------------------------------- the two hot calls
    def alloc(self, nbytes: int):
        """A handle of a block of ``size_class(nbytes)`` bytes, from the free list when it has one."""
        cls = size_class(nbytes)
        with self._lock:
            self._drain()
            s = self._s
            blocks = self._free_lists.get(cls)
            if blocks:
                handle = blocks.pop()
                s.hits += 1
                s.cached_bytes -= cls
                s.cached_blocks -= 1
            else:
                handle = self._raw_alloc_or_retry(cls)
                s.misses += 1
            if handle in self._live:           # the raw allocator handed out a live block: never serve it
                raise RuntimeError(f"BlockPool: block {handle!r} is already in use")
            self._live[handle] = (cls, int(nbytes))
            s.in_use_bytes += cls
            s.requested_bytes += int(nbytes)
            s.live_blocks += 1
            s.peak_in_use_bytes = max(s.peak_in_use_bytes, s.in_use_bytes)
            return handle

    def free(self, handle) -> None:
        """Give a block back (safe inside a finalizer: no lock, see the module doc). A handle that is
        not live (freed twice, or never from this pool) raises ValueError."""
        try:
            cls, nbytes = self._live.pop(handle)
        except KeyError:
            raise ValueError(f"BlockPool.free: {handle!r} is not a live block of this pool (freed twice?)") from None
        self._pending.append((handle, cls, nbytes))

    # ---------------------------------------------------------------- the rest
    def empty_cache(self) -> int:
        """Give every cached block back to the driver; returns the bytes released. Live blocks stay."""
        with self._lock:
            self._drain()
            return self._release_cached()

    def stats(self) -> PoolStats:
        with self._lock:
            self._drain()
            return PoolStats(**asdict(self._s))

    def is_live(self, handle) -> bool:
        return handle in self._live

    # ---------------------------------------------------------------- under the lock
    def _drain(self) -> None:
        """File the pending frees: onto their free lists, or back to the driver when not caching or
        when the cache would pass max_cached_bytes."""
        s = self._s
        while True:
            try:
                handle, cls, nbytes = self._pending.popleft()
            except IndexError:
                return
            s.frees += 1
            s.in_use_bytes -= cls
            s.requested_bytes -= nbytes
            s.live_blocks -= 1
            full = self.max_cached_bytes is not None and s.cached_bytes + cls > self.max_cached_bytes
            if not self.caching or full:
                self._raw_free(handle)
                s.raw_frees += 1
            else:
                self._free_lists[cls].append(handle)
                s.cached_bytes += cls
                s.cached_blocks += 1

    def _release_cached(self) -> int:
        s, released = self._s, 0
        for cls, blocks in self._free_lists.items():
            while blocks:
                self._raw_free(blocks.pop())
                s.raw_frees += 1
                s.cached_bytes -= cls
                s.cached_blocks -= 1
                released += cls
        self._free_lists.clear()
        return released

    def _raw_alloc_or_retry(self, cls: int):
        try:
            return self._raw_alloc(cls)
        except MemoryError:
            if not self._release_cached():
                raise                          # nothing cached to give back: really out of memory
            return self._raw_alloc(cls)
