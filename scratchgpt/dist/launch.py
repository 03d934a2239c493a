"""Start N ranks of a Python program from Python (chapters, benchmarks, tests): ``mpiexec -n N``.

The MPI library is the one mpi4py was built against; with the ``dist`` extra that is the
``mpich`` wheel, whose ``mpiexec`` sits beside the Python executable. We look there first, then
on PATH. Open MPI refuses to run as root without ``--allow-run-as-root`` (CI runs as root);
MPICH needs nothing.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from ..errors import DistError


def find_mpiexec() -> str:
    beside = Path(sys.executable).parent / "mpiexec"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("mpiexec") or shutil.which("mpirun")
    if not found:
        raise DistError("no mpiexec found: pip install 'scratchgpt[dist]' (mpi4py + the mpich wheel, "
                        "which brings mpiexec)")
    return found


def mpiexec_command(n: int) -> list:
    exe = find_mpiexec()
    cmd = [exe, "-n", str(int(n))]
    try:
        version = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        version = ""
    if "Open MPI" in version or "OpenRTE" in version:
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            cmd.append("--allow-run-as-root")
        cmd += ["--oversubscribe"]
    return cmd


def one_thread_env(extra: dict | None = None) -> dict:
    """The environment for ranks sharing a small machine: one BLAS/Numba thread each."""
    env = dict(os.environ)
    for v in ("NUMBA_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env[v] = "1"
    env.update(extra or {})
    return env


def run_ranks(n: int, argv: list, timeout: float = 600, env: dict | None = None, cwd=None) -> subprocess.CompletedProcess:
    """Run ``python *argv`` as ``n`` MPI ranks and wait (output captured). A DistError if it does not
    finish within ``timeout`` seconds (the whole job is killed)."""
    cmd = mpiexec_command(n) + [sys.executable, *argv]
    # a session of its own, so a timeout can end mpiexec *and* every rank it started (killing only
    # mpiexec with SIGKILL would leave the ranks running)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env or one_thread_env(), cwd=cwd, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise DistError(f"{' '.join(cmd)} did not finish within {timeout:g} s") from None
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)
