"""Distributed scratchgpt over MPI (mpi4py, the ``dist`` extra): data-parallel training and
tensor-parallel inference.

    mpiexec -n 2 scratchgpt pretrain --dist dp ...     # --batch-size stays the global batch
    mpiexec -n 2 scratchgpt generate MODEL_DIR --tp 2 ...

- ``comm.py``            the MPI world, waits with a deadline, one-line failures + MPI_Abort
- ``sharding.py``        each rank's rows of every global batch (exact partition, resumable)
- ``allreduce.py``       bucketed gradient allreduce over flat preallocated buffers
- ``data_parallel.py``   the hooks ``train.Trainer(parallel=...)`` calls; start-up agreement check
- ``tensor_parallel.py`` Megatron-style split of a GPT for inference
- ``zero.py``            ZeRO-1: AdamW with its moments sharded across ranks (standalone, not in Trainer)
- ``launch.py``          ``mpiexec -n N`` from Python (chapters, benchmarks, tests)
- ``cost_model.py``      the alpha-beta model of ring allreduce; projections to many ranks
- ``measure.py``         one MPI launch measuring all of the above on this machine (ch9 --dist)

Importing this package does not import mpi4py; ``comm.World()`` does, with a one-line error
naming the extra when it is missing. Nothing below ``dist`` imports it.
"""
