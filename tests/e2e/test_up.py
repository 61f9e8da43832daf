"""`solidarity up` as a newcomer runs it: a subprocess on free ports, over HTTP."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from shared.nats_server import free_port
from tests.support import contact_body, wait_for

BIN = Path(sys.executable).parent / "solidarity"

pytestmark = pytest.mark.e2e


def _descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    out: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.add(child)
            todo.append(child)
    return out


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


class Up:
    def __init__(self, data_dir: Path, port: int) -> None:
        self.env = {**os.environ, "SOLIDARITY_DATA_DIR": str(data_dir),
                    "SOLIDARITY_RELAY_POLL_INTERVAL_S": "0.2"}
        self.env.pop("SOLIDARITY_NATS_URL", None)
        self.env.pop("SOLIDARITY_DATABASE_URL", None)
        self.port = port
        self.log = data_dir.parent / f"up-{port}-{time.monotonic_ns()}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Up:
        self.proc = subprocess.Popen(
            [str(BIN), "up", "--port", str(self.port)],
            env=self.env, stdout=self.log.open("wb"), stderr=subprocess.STDOUT,
        )

        def healthy() -> bool:
            assert self.proc is not None and self.proc.poll() is None, self.output()
            try:
                return all(
                    httpx.get(f"{self.url}/{s}/health", timeout=1).status_code == 200
                    for s in ("shift", "contact", "outreach", "reporting")
                )
            except httpx.HTTPError:
                return False

        wait_for(healthy, timeout=60, interval=0.2, what="solidarity up to answer")
        return self

    def token(self) -> str:
        out = subprocess.run([str(BIN), "token", "--role", "coordinator"], env=self.env,
                             capture_output=True, check=True, timeout=60)
        return out.stdout.decode().strip()

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def interrupt(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGINT)
        return self.proc.wait(60)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            for pid in _descendants(self.proc.pid):
                os.kill(pid, signal.SIGKILL)
            self.proc.kill()
            self.proc.wait(10)


def test_up_serves_the_slice_and_stops_cleanly(tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    up = Up(data_dir, free_port()).start()
    try:
        banner = up.output()
        assert f"{up.url}/docs" in banner and "coordinator token" in banner
        auth = {"Authorization": f"Bearer {up.token()}"}
        r = httpx.post(f"{up.url}/contact/contacts", json=contact_body(), headers=auth)
        assert r.status_code == 201, r.text

        def counted() -> int:
            r = httpx.get(f"{up.url}/reporting/monthly", params={"month": "2026-11"},
                          headers=auth)
            return int(r.json()["contacts"])

        wait_for(lambda: counted() == 1, what="reporting to count the contact")
        children = _descendants(up.proc.pid)  # type: ignore[union-attr]
        assert children, "the NATS child should be running"
        assert up.interrupt() == 0, up.output()
        wait_for(lambda: not any(_alive(p) for p in children), timeout=10,
                 what="no child process left")
    finally:
        up.kill()
    assert (data_dir / "contact.sqlite").exists() and (data_dir / "nats").is_dir()

    # Start again: every event is still there, and nothing is counted twice.
    again = Up(data_dir, free_port()).start()
    try:
        auth = {"Authorization": f"Bearer {again.token()}"}
        events = httpx.get(f"{again.url}/contact/events", headers=auth).json()["items"]
        assert [e["type"] for e in events] == ["ContactLogged"]
        time.sleep(1.0)
        r = httpx.get(f"{again.url}/reporting/monthly", params={"month": "2026-11"},
                      headers=auth)
        assert r.json()["contacts"] == 1
        assert again.interrupt() == 0
    finally:
        again.kill()
