"""The one process walker: processes read from /proc (Linux), for the launcher, the
e2e tests and the benchmark (descendants, liveness, process groups, CPU and memory)."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")
PROC = Path("/proc")


@dataclass(frozen=True)
class ProcInfo:
    pid: int
    comm: str
    state: str
    ppid: int
    pgrp: int
    cpu_s: float  # user + system time so far

    @property
    def alive(self) -> bool:
        """Running or sleeping: a zombie (exited, not yet reaped) is not."""
        return self.state not in ("Z", "X")


def read_proc(pid: int) -> ProcInfo | None:
    """One process from /proc/<pid>/stat (None if it is gone)."""
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command name is in parentheses and may hold spaces and ")" itself.
    head, _, rest = text.rpartition(")")
    f = rest.split()
    # After the ")": state ppid pgrp session tty tpgid flags minflt cminflt majflt
    # cmajflt utime stime ...
    return ProcInfo(
        pid=pid,
        comm=head.partition("(")[2],
        state=f[0],
        ppid=int(f[1]),
        pgrp=int(f[2]),
        cpu_s=(int(f[11]) + int(f[12])) / CLK_TCK,
    )


def all_procs() -> list[ProcInfo]:
    out = []
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            info = read_proc(int(entry.name))
            if info is not None:
                out.append(info)
    return out


def alive(pid: int) -> bool:
    """Whether the process exists and is not a zombie."""
    info = read_proc(pid)
    return info is not None and info.alive


def descendants(pid: int) -> list[ProcInfo]:
    """Children, grandchildren and so on of ``pid`` (zombies included), parents first."""
    children: dict[int, list[ProcInfo]] = {}
    for p in all_procs():
        children.setdefault(p.ppid, []).append(p)
    out: list[ProcInfo] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(0), []):
            out.append(child)
            todo.append(child.pid)
    return out


def group_members(pgrp: int) -> list[ProcInfo]:
    """The processes of a process group that are still running (zombies are not)."""
    return [p for p in all_procs() if p.pgrp == pgrp and p.alive]


def cpu_seconds(pid: int) -> float:
    """CPU time so far of one process (0 if it is gone)."""
    info = read_proc(pid)
    return info.cpu_s if info is not None else 0.0


def rss_mb(pid: int) -> float | None:
    """Resident memory of one process in MiB (None if it is gone)."""
    with contextlib.suppress(OSError, ValueError):
        for line in (PROC / str(pid) / "status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024.0, 1)
    return None
