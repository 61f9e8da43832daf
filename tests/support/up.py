"""``solidarity up`` as a child process, the way a newcomer runs it: for the e2e tests
and the benchmark.

The child runs in a process group of its own (its nats-server child with it), on a data
directory of the caller's and a free port, with none of the caller's SOLIDARITY_
settings (no PostgreSQL, no outside NATS) unless passed in ``env``. ``stop()`` sends
SIGINT and waits; whatever of the group is still running after that is killed, by the
group's id, and named in ``leftovers``. The child also gets SIGTERM if its parent dies.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import httpx

from services.registry import SERVICES
from tests.support import procs

ROOT = Path(__file__).resolve().parents[2]


def venv_bin(name: str) -> str:
    """A console script of this virtualenv (the one running this interpreter)."""
    candidate = Path(sys.executable).parent / name
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"{name} not found next to {sys.executable} nor on PATH")
    return found


def _die_with_parent() -> None:  # in the child, between fork and exec
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Up:
    """``solidarity up --port <port>`` on ``data_dir``, in its own process group."""

    def __init__(self, data_dir: Path, port: int, *, env: Mapping[str, str] | None = None,
                 log: Path | None = None, say: Callable[[str], None] | None = None) -> None:
        self.data_dir = data_dir
        self.port = port
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("SOLIDARITY_")}
        self.env.update(SOLIDARITY_DATA_DIR=str(data_dir), PYTHONUNBUFFERED="1")
        self.env.update(env or {})
        # stdout and stderr, interleaved; a new file for each start on the same data dir.
        self.log = log or data_dir.parent / f"up-{port}-{time.monotonic_ns()}.log"
        self.say = say or (lambda _message: None)
        self.proc: subprocess.Popen[bytes] | None = None
        self.returncode: int | None = None
        self.leftovers: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None, "not started"
        return self.proc.pid

    # ---------------------------------------------------------------- start and wait

    def start(self, *, wait: bool = True, within_s: float = 60.0) -> Up:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [venv_bin("solidarity"), "up", "--port", str(self.port)],
                cwd=ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: pgrp == pid
                preexec_fn=_die_with_parent,
            )
        if wait:
            self.wait_ready(within_s=within_s)
        return self

    def check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(
                f"solidarity up exited with {self.proc.returncode}:\n{self.log_tail()}"
            )

    def wait_ready(self, services: Sequence[str] = SERVICES, within_s: float = 60.0) -> None:
        """Until every service's /health answers 200 with status ok (NATS connected)."""
        deadline = time.monotonic() + within_s
        waiting = list(services)
        with httpx.Client(base_url=self.url, timeout=2.0) as http:
            while waiting:
                self.check_alive()
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"solidarity up was not ready within {within_s} s: {waiting}\n"
                        + self.log_tail()
                    )
                with contextlib.suppress(httpx.HTTPError, ValueError):
                    r = http.get(f"/{waiting[0]}/health")
                    if r.status_code == 200 and r.json().get("status") == "ok":
                        waiting.pop(0)
                        continue
                time.sleep(0.1)

    def token(self, role: str = "coordinator", sub: str | None = None) -> str:
        """A bearer token from ``solidarity token``, on this stack's data directory."""
        command = [venv_bin("solidarity"), "token", "--role", role]
        if sub is not None:
            command += ["--sub", sub]
        out = subprocess.run(command, cwd=ROOT, env=self.env, capture_output=True,
                             text=True, check=True, timeout=60)
        return out.stdout.strip()

    # ------------------------------------------------------------------- looking at it

    def output(self) -> str:
        """Everything it printed so far (stdout and stderr)."""
        with contextlib.suppress(OSError):
            return self.log.read_text(errors="replace")
        return ""

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.output().splitlines()[-lines:])

    def children(self) -> list[procs.ProcInfo]:
        """Its descendants now (the nats-server child among them)."""
        return procs.descendants(self.pid) if self.proc is not None else []

    def cpu(self) -> dict[str, float]:
        """CPU seconds so far of its Python processes ("server") and nats-server ("nats")."""
        result = {"server": 0.0, "nats": 0.0}
        if self.proc is None:
            return result
        result["server"] = procs.cpu_seconds(self.proc.pid)
        for child in procs.descendants(self.proc.pid):
            result["nats" if "nats" in child.comm else "server"] += child.cpu_s
        return result

    def rss_mb(self) -> float | None:
        """Resident memory of its Python process, in MiB."""
        return procs.rss_mb(self.proc.pid) if self.proc is not None else None

    # -------------------------------------------------------------------------- stop

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGINT and wait; then SIGTERM and SIGKILL to the group if it will not go, and
        SIGKILL to anything of the group left running. Returns its exit code (again if
        it has stopped already)."""
        proc = self.proc
        if proc is None:
            return None
        pgrp = proc.pid
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.say("solidarity up did not stop on SIGINT; sending SIGTERM to its group")
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pgrp, signal.SIGTERM)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(pgrp, signal.SIGKILL)
                    proc.wait(10)
        self.returncode = proc.returncode
        # Its nats-server child is in the same group: nothing of the group may remain.
        deadline = time.monotonic() + 10
        while procs.group_members(pgrp) and time.monotonic() < deadline:
            time.sleep(0.1)
        left = procs.group_members(pgrp)
        if left:
            self.leftovers += [f"{p.pid} {p.comm}" for p in left]
            self.say(f"killing what solidarity up left running: {', '.join(self.leftovers)}")
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgrp, signal.SIGKILL)
            time.sleep(0.5)
            if procs.group_members(pgrp):
                raise RuntimeError(f"processes of group {pgrp} are still running")
        return self.returncode

    def __enter__(self) -> Up:
        return self.start() if self.proc is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()
