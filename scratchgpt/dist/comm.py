"""The MPI world as this package uses it: who am I, how many are we, and waiting that cannot hang.

Everything collective goes through MPI (mpi4py); nothing here is a home-made transport. What we
add is discipline around it:

- ``world()`` imports mpi4py only when a multi-process run asks for it, so ``import scratchgpt``
  and every one-process command work without the ``dist`` extra;
- ``wait(request)`` waits for a non-blocking collective, polling hot for half a millisecond and
  then *sleeping* between polls, with a deadline. MPICH's blocking calls spin a core at 100 %
  however long they wait — on a 2-core machine that steals the other rank's CPU — and they wait
  forever when a peer is gone. A deadline
  turns "a peer died without the launcher noticing" into an error naming this rank, instead
  of a hang;
- ``guard_ranks(fn)`` runs one rank's work: any exception becomes one line naming the rank,
  then ``MPI_Abort`` — the launcher (``mpiexec``) ends every other rank at once. Without it a
  rank that raises leaves its peers blocked in their next allreduce forever;
- ``allgather_json`` exchanges small JSON-able values (configs, fingerprints) as UTF-8 bytes:
  mpi4py's lower-case methods would pickle them, and this project never pickles.
"""
from __future__ import annotations

import json
import os
import sys
import time

import numpy as np

from ..errors import DistError, ScratchGPTError

# How long a collective may wait for its peers before this rank gives up (seconds). Generous:
# a step of a big model on a slow node must never trip it; a dead peer is usually reported by
# mpiexec much sooner (it sees the process exit).
DEFAULT_TIMEOUT = float(os.environ.get("SCRATCHGPT_DIST_TIMEOUT", "300"))
# Poll without sleeping for this long first: tensor-parallel decoding waits on two small
# allreduces per layer per token, and sleeping from the first poll made each one ~1 ms (measured
# 1240 us vs 71 us blocking, 2 ranks on a loaded 2-core machine).
SPIN_SECONDS = 5e-4


def mpi():
    """The ``mpi4py.MPI`` module, or a DistError saying how to get it."""
    try:
        from mpi4py import MPI
    except ImportError as err:
        raise DistError(f"multi-process runs need mpi4py and an MPI library: pip install 'scratchgpt[dist]' "
                        f"(mpi4py + the mpich wheel) ({err})") from None
    return MPI


def launched_by_mpi() -> bool:
    """True when this process was started by an MPI launcher (so ``world()`` may import MPI)."""
    return any(v in os.environ for v in ("PMI_RANK", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_RANK"))


class World:
    """COMM_WORLD with the rank/size a caller needs, and the polling waits described above."""

    def __init__(self, comm=None, timeout: float = DEFAULT_TIMEOUT):
        MPI = mpi()
        self.MPI = MPI
        self.comm = comm if comm is not None else MPI.COMM_WORLD
        self.rank = self.comm.Get_rank()
        self.size = self.comm.Get_size()
        self.timeout = float(timeout)
        if comm is None:
            _announce(self.rank, self.size)

    @property
    def is_root(self) -> bool:
        return self.rank == 0

    # ---------------------------------------------------------------- waiting with a deadline
    def wait(self, request, what: str = "a collective") -> None:
        """Wait for a non-blocking request, sleeping between polls; DistError after ``timeout``."""
        t0 = time.perf_counter()
        pause = 0.0
        while not request.Test():
            waited = time.perf_counter() - t0
            if waited < SPIN_SECONDS:
                continue                   # a small collective answers within microseconds: poll hot
            if waited > self.timeout:
                raise DistError(f"rank {self.rank}: no answer from the other ranks for {waited:.0f} s during "
                                f"{what} (a rank died or hangs; SCRATCHGPT_DIST_TIMEOUT={self.timeout:g})")
            # then back off from 50 us to 2 ms: a long wait (a peer still computing) costs no CPU
            pause = min(2e-3, pause * 2 if pause else 5e-5)
            time.sleep(pause)

    def allreduce_(self, buf: np.ndarray, what: str = "allreduce") -> np.ndarray:
        """In-place sum over ranks of a contiguous NumPy buffer (Iallreduce + ``wait``)."""
        self.wait(self.comm.Iallreduce(self.MPI.IN_PLACE, buf, op=self.MPI.SUM), what)
        return buf

    def allreduce_sum(self, values, what: str = "allreduce") -> np.ndarray:
        """Sum of a small float64 vector over ranks (a new array)."""
        buf = np.array(values, dtype=np.float64).reshape(-1).copy()
        return self.allreduce_(buf, what)

    def barrier(self, what: str = "barrier") -> None:
        self.wait(self.comm.Ibarrier(), what)

    def bcast_(self, buf: np.ndarray, root: int = 0, what: str = "broadcast") -> np.ndarray:
        self.wait(self.comm.Ibcast(buf, root=root), what)
        return buf

    def allgather_json(self, obj, what: str = "allgather") -> list:
        """Every rank's ``obj`` (JSON-able), in rank order, exchanged as UTF-8 bytes."""
        data = np.frombuffer(json.dumps(obj, sort_keys=True).encode("utf-8"), dtype=np.uint8)
        sizes = np.zeros(self.size, dtype=np.int64)
        self.wait(self.comm.Iallgather(np.array([data.size], dtype=np.int64), sizes), what)
        out = np.zeros(int(sizes.sum()), dtype=np.uint8)
        displs = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        self.wait(self.comm.Iallgatherv(data, [out, sizes, displs, self.MPI.BYTE]), what)
        return [json.loads(out[d:d + s].tobytes().decode("utf-8")) for d, s in zip(displs, sizes)]

    def abort(self, code: int = 1) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        self.comm.Abort(code)


_announced = False


def write_line_once(line: str) -> None:
    """``line`` to stderr in one write(2): mpiexec interleaves the ranks' output chunk by chunk, and
    ``print`` may send the text and its newline separately."""
    sys.stderr.flush()
    os.write(2, (line + "\n").encode("utf-8"))


def _announce(rank: int, size: int) -> None:
    """Under ``python -m scratchgpt.dist.launch``: tell the supervisor this rank's pid and host, so
    that it can name the rank when mpiexec reports a dead process by its PID (dist/supervise.py)."""
    global _announced
    from .supervise import ENV_FLAG, announce_line
    if not _announced and os.environ.get(ENV_FLAG):
        write_line_once(announce_line(rank, size))
        _announced = True


def failure_line(rank: int, size: int, err: BaseException) -> str:
    """The one line a failing rank prints before it takes the job down."""
    what = " ".join(str(err).split()) if isinstance(err, ScratchGPTError) else f"{type(err).__name__}: {err}"
    return f"scratchgpt: rank {rank} of {size} failed, stopping all ranks: {what}"


def guard_ranks(world: World, fn, *args):
    """Run ``fn(*args)`` on this rank. Any exception (or Ctrl+C) prints ``failure_line`` and calls
    MPI_Abort, so the other ranks end within moments instead of waiting in a collective forever.
    Exit code 2 for user errors (as the one-process CLI), 1 for anything else."""
    try:
        return fn(*args)
    except BaseException as err:  # noqa: BLE001 - every failure must take the whole job down
        if isinstance(err, SystemExit) and not err.code:
            raise
        if os.environ.get("SCRATCHGPT_DEBUG"):
            import traceback
            traceback.print_exc()
        write_line_once(failure_line(world.rank, world.size, err))
        world.abort(2 if isinstance(err, ScratchGPTError) else 1)
