"""``--dist`` for the training commands: one process, or one rank of an MPI data-parallel run.

    mpiexec -n 2 scratchgpt pretrain --dist dp --threads 1 ...

Every rank runs the same command line. Rank 0 checks the run directory, prints, and writes every
file; the others compute. Any failure on any rank is one line naming the rank, and the whole job
stops (``dist.comm.guard_ranks``). MPI (the ``dist`` extra) is imported only with ``--dist dp``.
"""
from __future__ import annotations

import os

from ..errors import ConfigError


def add_dist(parser) -> None:
    parser.add_argument("--dist", choices=["none", "dp"], default="none",
                        help="dp: data parallel over the ranks of `mpiexec -n N` (--batch-size stays the "
                             "global batch; give each rank --threads 1 on a small machine); default none")
    parser.add_argument("--zero", type=int, choices=[0, 1], default=0,
                        help="with --dist dp: 1 = ZeRO stage 1, AdamW's moments sharded over the ranks (1/N of the "
                             "optimizer state each; checkpoints hold the full state); default 0")


def mpi_ranks_from_env() -> int:
    """How many ranks the launcher started, from its environment (1 outside mpiexec)."""
    for var in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE"):
        if os.environ.get(var, "").isdigit():
            return int(os.environ[var])
    return 1


def note_once(message: str) -> None:
    """``print`` on rank 0 of an MPI launch only (notes made before the MPI world exists: every rank
    runs the same command line, and the user should read each note once)."""
    for var in ("PMI_RANK", "OMPI_COMM_WORLD_RANK"):
        if os.environ.get(var, "0") not in ("", "0"):
            return
    print(message)


def run_training(args, body) -> int:
    """Call ``body(parallel, log, is_root)`` — parallel None for one process — under the rules above."""
    if args.dist == "none":
        if getattr(args, "zero", 0):
            raise ConfigError("--zero 1 shards the optimizer over data-parallel ranks: add --dist dp "
                              "(and run under mpiexec -n N)")
        n = mpi_ranks_from_env()
        if n > 1:
            raise ConfigError(f"started by mpiexec with {n} ranks but without --dist dp: every rank would train "
                              "the same model into the same --out; add --dist dp")
        return body(None, print, True)
    from ..dist.comm import World, guard_ranks
    from ..dist.data_parallel import DataParallel
    world = World()
    dp = DataParallel(world, zero=getattr(args, "zero", 0))
    return guard_ranks(world, body, dp, dp.log, world.is_root)


def add_tp(parser) -> None:
    parser.add_argument("--tp", type=int, default=1, metavar="N",
                        help="tensor parallel over N ranks: run as `mpiexec -n N scratchgpt ... --tp N` (each rank "
                             "holds 1/N of every block's weights; same tokens as one process); default 1")


def run_tensor_parallel(args, body) -> int:
    """Load this rank's share of ``args.model`` and call ``body(args, weights, tok, world)`` on
    every rank; failures stop all ranks (``dist.comm.guard_ranks``)."""
    n = mpi_ranks_from_env()
    if args.tp < 1:
        raise ConfigError(f"--tp expects a positive number of ranks, got {args.tp}")
    if n != args.tp:
        raise ConfigError(f"--tp {args.tp} needs {args.tp} MPI ranks: run it as `mpiexec -n {args.tp} scratchgpt ... "
                          f"--tp {args.tp}` (this is {n} rank{'s' if n != 1 else ''})")
    from ..dist.comm import World, guard_ranks
    from ..dist.tensor_parallel import load_tensor_parallel
    world = World()

    def rank_body():
        if getattr(args, "seed", 0) is None:
            # sampling without --seed: every rank must still draw the same tokens (each computes the
            # full logits and samples itself), so rank 0 picks the seed and sends it to the others
            import numpy as np
            seed = np.array([np.random.SeedSequence().entropy % 2 ** 31 if world.is_root else 0], dtype=np.int64)
            args.seed = int(world.bcast_(seed, what="sampling seed")[0])
        share, tok, info = load_tensor_parallel(args.model, world)
        everyone = world.allgather_json(info, "memory report")
        if getattr(args, "verbose", False) and world.is_root:
            import sys
            for r, i in enumerate(everyone):
                print(f"[rank {r}] block weights {i['rank_block_bytes'] / 1e6:.2f} of {i['full_block_bytes'] / 1e6:.2f} MB, "
                      f"replicated embeddings {i['replicated_bytes'] / 1e6:.2f} MB, resident {i['rss_bytes'] / 1e6:.0f} MB",
                      file=sys.stderr)
        return body(args, share, tok, world)
    return guard_ranks(world, rank_body)
