"""Start N ranks of a Python program from Python (chapters, benchmarks, tests): ``mpiexec -n N``;
and the supervised launch for users:

    python -m scratchgpt.dist.launch -n 2 pretrain --dist dp --threads 1 ...
    python -m scratchgpt.dist.launch -n 2 chat MODEL_DIR --tp 2

which is ``mpiexec -n 2 scratchgpt ...`` plus one clear line when a rank dies (``supervise.py``:
"rank 1 of 2 (pid 5790 on vm) was killed by signal 9 (SIGKILL); all ranks stopped" instead of
the launcher's banner), a bound on how long the job may linger after a failure, and Ctrl+C
handed to every rank. A first argument ending in ``.py`` runs that script instead of the CLI.

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


def supervised_env(env: dict | None = None) -> dict:
    """``env`` (default: this process's) with the flag that makes ranks announce rank/pid/host."""
    from .supervise import ENV_FLAG
    return {**(env if env is not None else os.environ), ENV_FLAG: "1"}


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


def supervise(cmd: list, env: dict | None = None, grace: float = 10.0, out=None, err=None) -> int:
    """Run mpiexec ``cmd``: stdout and stderr pass through ``supervise.StreamFilter`` (which hides
    the launcher's banners and the ranks' announcements, and does not hold back partial lines: chat
    streams them); at the end, its one line about a dead rank. Once a
    failure is seen, mpiexec gets ``grace`` seconds to end the job before it is killed (every
    rank with it: mpiexec runs in a session of its own). SIGINT/SIGTERM are handed to mpiexec,
    which hands them to every rank. Returns mpiexec's exit code."""
    import threading
    import time

    from .supervise import MpiexecOutput, StreamFilter
    out = out or sys.stdout.buffer
    err = err or sys.stderr.buffer
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=supervised_env(env),
                            start_new_session=True)
    seen = MpiexecOutput()
    failed_at = []

    def pump(stream, sink):
        f = StreamFilter(seen)
        while True:
            chunk = os.read(stream.fileno(), 65536)
            data = f.feed(chunk) if chunk else f.close()
            if data:
                sink.write(data)
                sink.flush()
            if seen.saw_failure and not failed_at:
                failed_at.append(time.monotonic())
            if not chunk:
                return

    def forward(signum, _frame):
        try:
            proc.send_signal(signum)
        except OSError:
            pass

    previous = {}
    if threading.current_thread() is threading.main_thread():
        for s in (signal.SIGINT, signal.SIGTERM):
            previous[s] = signal.signal(s, forward)
    pumps = [threading.Thread(target=pump, args=a, daemon=True) for a in ((proc.stdout, out), (proc.stderr, err))]
    for t in pumps:
        t.start()
    try:
        while proc.poll() is None:
            if failed_at and time.monotonic() - failed_at[0] > grace:
                os.killpg(proc.pid, signal.SIGKILL)     # mpiexec did not end the job: we do
                break
            time.sleep(0.05)
        proc.wait()
        for t in pumps:
            t.join(timeout=5)
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
    line = seen.summary(proc.returncode)
    if line:
        err.write((line + "\n").encode("utf-8"))
        err.flush()
    return proc.returncode if proc.returncode > 0 else (1 if proc.returncode else 0)


def main(argv=None) -> int:
    import argparse
    ap = argparse.ArgumentParser(prog="python -m scratchgpt.dist.launch",
                                 description="mpiexec -n N scratchgpt COMMAND ..., with one clear line when a rank dies")
    ap.add_argument("-n", "--ranks", type=int, required=True, help="number of MPI ranks")
    ap.add_argument("--grace", type=float, default=10.0,
                    help="seconds the job may linger after a rank failed before it is killed (default 10)")
    ap.add_argument("command", nargs=argparse.REMAINDER, help="a scratchgpt command and its flags (or SCRIPT.py ...)")
    args = ap.parse_args(argv)
    if not args.command:
        ap.error("give the command to run on every rank, e.g. pretrain --dist dp ...")
    try:
        prog = [sys.executable] + ([] if args.command[0].endswith(".py") else ["-m", "scratchgpt.cli"])
        cmd = mpiexec_command(args.ranks) + prog + args.command
    except DistError as e:
        print(f"scratchgpt: {e}", file=sys.stderr)
        return 2
    return supervise(cmd, grace=args.grace)


if __name__ == "__main__":
    sys.exit(main())
