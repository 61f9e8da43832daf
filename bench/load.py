"""The stack under load, from a client: warm-up, the paced run and the burst."""

from __future__ import annotations

import argparse
import asyncio
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from bench.common import ms, percentile, say
from services.reporting.handlers import london_month
from shared.messaging.envelope import IntegrationEvent
from tests.support import Up

CONTACT_CONSUMER = "reporting-from-contact"


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
        return int(r.json()["contacts"]["total"])

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


async def paced_run(client: Client, stack: Up, rate: float, duration: float,
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


async def burst_run(client: Client, stack: Up, n: int, concurrency: int) -> dict[str, Any]:
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


async def run_stack_phases(args: argparse.Namespace, stack: Up) -> dict[str, Any]:
    # C connections for both runs: more requests on the wire only make the client (httpx)
    # spend CPU that the stack needs on a 2-core machine.
    limits = httpx.Limits(max_connections=args.concurrency,
                          max_keepalive_connections=args.concurrency)
    async with httpx.AsyncClient(base_url=stack.url, timeout=30.0, limits=limits) as http:
        http.headers["Authorization"] = "Bearer " + stack.token(sub="bench-coordinator")
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

