"""What the user reads when a rank dies: one line naming the rank, instead of the launcher's banner.

A rank that *raises* prints its own line (``comm.guard_ranks``) and takes the job down with
MPI_Abort. A rank that is *killed* (SIGKILL, the out-of-memory killer, a lost node) prints
nothing; MPICH's ``mpiexec`` notices the exit, SIGKILLs the other ranks within moments (so no
rank hangs) and prints a banner naming only a PID:

    ===================================================================================
    =   BAD TERMINATION OF ONE OF YOUR APPLICATION PROCESSES
    =   PID 5790 RUNNING AT vm
    =   EXIT CODE: 9
    ...
    YOUR APPLICATION TERMINATED WITH THE EXIT STRING: Killed (signal 9)

(MPICH prints the banner on stdout, the rest on stderr.) The surviving ranks are SIGKILLed themselves, so no code of ours can speak from inside the job.
The supervisor (``python -m scratchgpt.dist.launch``) sits outside it: it runs mpiexec, every rank
announces ``@scratchgpt rank R of N pid P host H`` on stderr at start-up (only when
``SCRATCHGPT_SUPERVISED`` is set), and ``MpiexecOutput`` reads mpiexec's stderr line by line —
hiding those announcements and the launcher's banners, passing everything else through — and
at the end says what happened in one line:

    scratchgpt: rank 1 of 2 (pid 5790 on vm) was killed by signal 9 (SIGKILL); all ranks stopped

Open MPI's ``mpirun`` names the rank itself ("mpirun noticed that process rank 1 with PID ...
exited on signal 9"); that line is read the same way.
"""
from __future__ import annotations

import os
import re
import signal

ENV_FLAG = "SCRATCHGPT_SUPERVISED"
ANNOUNCE = re.compile(r"^@scratchgpt rank (\d+) of (\d+) pid (\d+) host (\S+)\s*$")
OUR_FAILURE = "failed, stopping all ranks"
HYDRA_PID = re.compile(r"^=\s+PID (\d+) RUNNING AT (\S+)")
HYDRA_CODE = re.compile(r"^=\s+EXIT CODE: (\d+)")
HYDRA_STRING = re.compile(r"^YOUR APPLICATION TERMINATED WITH THE EXIT STRING: .*\(signal (\d+)\)")
HYDRA_NOISE = ("This typically refers to a problem with your application.",
               "Please see the FAQ page for debugging suggestions")
HYDRA_BANNER = re.compile(r"^(={20,}|=   [A-Z].*)$")
MPIEXEC_NOTICE = re.compile(r"^\[mpiexec@\S+\] (Sending Ctrl-C to processes as requested|Press Ctrl-C again to force abort)")
MPICH_ABORT = re.compile(r"^Abort\(\d+\) on node \d+ \(rank (\d+) in comm \d+\): application called MPI_Abort")
OMPI_NOTICED = re.compile(r"^mpirun noticed that process rank (\d+) with PID (\d+) on node (\S+) "
                          r"exited on signal (\d+)")


def announce_line(rank: int, size: int) -> str:
    import socket
    return f"@scratchgpt rank {rank} of {size} pid {os.getpid()} host {socket.gethostname()}"


def signal_name(sig: int) -> str:
    try:
        return signal.Signals(sig).name
    except ValueError:
        return f"signal {sig}"


class MpiexecOutput:
    """Filter for mpiexec's stderr lines; ``summary()`` is the one line about a dead rank (or None)."""

    def __init__(self):
        self.ranks = {}                   # pid -> (rank, host)
        self.size = None
        self.reported = False             # a rank already printed its own failure line
        self.dead_pid = self.dead_host = None
        self.dead_rank = None
        self.exit_code = None
        self.signal = None

    def feed(self, line: str):
        """The line to show (``line`` unchanged), or None to hide it."""
        bare = line.rstrip("\r\n")
        m = ANNOUNCE.match(bare)
        if m:
            rank, size, pid, host = int(m[1]), int(m[2]), int(m[3]), m[4]
            self.ranks[pid] = (rank, host)
            self.size = size
            return None
        if OUR_FAILURE in bare and bare.startswith("scratchgpt: rank "):
            self.reported = True
            return line
        m = OMPI_NOTICED.match(bare)
        if m:
            self.dead_rank, self.dead_pid, self.dead_host, self.signal = int(m[1]), int(m[2]), m[3], int(m[4])
            return None
        if MPICH_ABORT.match(bare):
            return None                   # the aborting rank said why on the line before
        if MPIEXEC_NOTICE.match(bare):
            return None                   # Ctrl+C handed to the ranks (chat stops its reply)
        if HYDRA_BANNER.match(bare):      # the banner: keep the first dead process it names
            m = HYDRA_PID.match(bare)
            if m and self.dead_pid is None:
                self.dead_pid, self.dead_host = int(m[1]), m[2]
            m = HYDRA_CODE.match(bare)
            if m and self.exit_code is None:
                self.exit_code = int(m[1])
            return None
        m = HYDRA_STRING.match(bare)
        if m:
            self.signal = int(m[1])
            return None
        if bare.startswith("YOUR APPLICATION TERMINATED") or bare in HYDRA_NOISE:
            return None
        return line

    @property
    def saw_failure(self) -> bool:
        """A rank died or failed: mpiexec is (or should be) ending the job."""
        return self.reported or self.dead_pid is not None or self.signal is not None

    def summary(self, returncode: int):
        """One line naming the dead rank, or None when a rank already said why (or all went well)."""
        if self.reported or (returncode == 0 and self.dead_pid is None):
            return None
        rank, host = self.ranks.get(self.dead_pid, (self.dead_rank, self.dead_host))
        who = "a rank" if rank is None else f"rank {rank}" + (f" of {self.size}" if self.size else "")
        where = [f"pid {self.dead_pid}" if self.dead_pid else None, f"on {host}" if host else None]
        where = " ".join(w for w in where if w)
        who = f"{who} ({where})" if where else who
        sig = self.signal                     # from the exit string: hydra's EXIT CODE alone is ambiguous
        if sig is not None:
            what = f"was killed by signal {sig} ({signal_name(sig)})"
        elif self.exit_code is not None:
            what = f"exited with code {self.exit_code}"
        else:
            what = f"ended the job with code {returncode}"
        return (f"scratchgpt: {who} {what}; all ranks stopped "
                "(a training run resumes from its last complete checkpoint with --resume)")


BANNER_STARTS = ("=", "YOUR APPLICATION TERMINATED", *HYDRA_NOISE, "Abort(", "mpirun noticed", "@scratchgpt ",
                 "[mpiexec@")
NOTICE_START = "[mpiexec@"        # the one notice mpiexec writes into the middle of a line (chat's reply)


class StreamFilter:
    """One output stream of mpiexec through ``MpiexecOutput``, as bytes in, bytes out, without
    delaying what the user must see at once: a partial line (a reply being streamed, a progress
    bar) is passed on at the end of every chunk unless it could be the start of a line to hide;
    an empty line is held back only within a chunk (the banner starts with one)."""

    def __init__(self, seen: MpiexecOutput):
        self.seen = seen
        self.partial = ""       # the current line so far
        self.shown = 0          # how much of it was already passed on
        self.blank = 0

    def feed(self, chunk: bytes) -> bytes:
        text = self.partial + chunk.decode("utf-8", "replace")
        shown = []
        while "\n" in text:
            ln, text = text.split("\n", 1)
            done, self.shown = self.shown, 0
            if done:                                  # began as a partial line: already on screen
                rest = ln[done:]
                if rest.startswith(NOTICE_START) and self.seen.feed(rest + "\n") is None:
                    text = ln[:done] + text           # mpiexec's notice inside a streamed line: the line
                    self.shown = done                 # goes on after it
                    continue
                self.seen.feed(ln + "\n")            # (read for what it says all the same)
                shown.append(rest + "\n")
                continue
            if ln.strip() == "":
                self.blank += 1
                continue
            keep = self.seen.feed(ln + "\n")
            if keep is None and HYDRA_BANNER.match(ln):
                self.blank = 0                        # the banner's leading empty line goes with it
            shown.append("\n" * self.blank)
            self.blank = 0
            if keep is not None:
                shown.append(keep)
        self.partial = text
        shown.append("\n" * self.blank)
        self.blank = 0
        rest = text[self.shown:]
        starts = (NOTICE_START,) if self.shown else BANNER_STARTS
        if rest and not any(b.startswith(rest) or rest.startswith(b) for b in starts):
            shown.append(rest)
            self.shown = len(text)
        return "".join(shown).encode("utf-8")

    def close(self) -> bytes:
        rest, done = self.partial, self.shown
        self.partial, self.shown = "", 0
        if not rest:
            return b""
        keep = self.seen.feed(rest)
        return rest[done:].encode("utf-8") if done or keep is not None else b""
