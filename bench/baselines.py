"""The two raw baselines the pipeline is measured against, on the same machine."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import nats
from nats.js.api import RetentionPolicy, StorageType, StreamConfig

from bench.common import ms, percentile
from services.contact.app import ContactApplication
from services.contact.domain import Contact
from shared.config import Settings
from shared.eventstore.store import eventsourcing_env
from shared.kernel import acting
from shared.messaging.envelope import IntegrationEvent
from shared.messaging.nats_server import NatsServer
from tests.support import procs


def raw_save_baseline(store_dir: Path, n: int, warmup: int) -> dict[str, Any]:
    """The eventsourcing library's own save rate for Contact, fresh SQLite file."""
    settings = Settings(data_dir=store_dir, database_url=None)
    app = ContactApplication(env=eventsourcing_env(settings, "contact"))
    try:

        def one() -> None:
            with acting("bench"):  # as the web layer sets it for each command
                app.save(
                    Contact.log(
                        channel="phone",
                        started_at=datetime.now(UTC) - timedelta(minutes=1),
                        issues=["housing"],
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
    return procs.cpu_seconds(server.proc.pid)

