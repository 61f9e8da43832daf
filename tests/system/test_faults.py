"""Faults of the platform a failing operator or network causes, each with a test that
would catch its return: the source log unreachable while the bus works, read tables
and schemas dropped under a running service, the database gone, two processes
starting at once, data files others can read.

Real NATS, real SQLite files and real PostgreSQL, real HTTP where the client sees it.
"""

from __future__ import annotations

import asyncio
import os
import stat
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from services.registry import SERVICES
from services.reporting.read_model import metadata as reporting_tables
from services.system import ServiceRuntime, System
from shared.config import Settings
from shared.eventstore.store import PostgresParams, drop_schemas
from shared.kernel import acting
from shared.logging import configure_logging
from shared.messaging.bus import Bus
from shared.messaging.consumer import Consumer
from shared.messaging.envelope import IntegrationEvent, envelope_id
from shared.messaging.nats_server import free_port
from shared.messaging.sources import HttpEventSource
from tests.support import Stack, contact_body, monthly_count, stack_settings, wait_for

Build = Callable[..., ServiceRuntime]


@pytest.fixture(autouse=True)
def _logs_to_a_live_stream() -> None:
    """The code under test logs warnings; a test before may have left the logs bound to
    a capture stream that is closed now (configure_logging under capsys or capfd)."""
    configure_logging("console", os.environ.get("SOLIDARITY_TEST_LOG_LEVEL", "WARNING"))


def _post(stack: Stack, n: int) -> list[str]:
    ids = []
    with stack.client() as c:
        for _ in range(n):
            r = c.post("/contact/contacts", json=contact_body())
            assert r.status_code == 201, r.text
            ids.append(r.json()["id"])
    return ids


async def _until(predicate: Callable[[], Any], within: float = 15.0, what: str = "") -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if await asyncio.to_thread(predicate):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


# -------------------------------------------- 3. the bus is read while /events is down


def test_bus_events_are_applied_while_the_source_log_is_unreachable(
        app_runtime: Build, nats_url: str) -> None:
    contact = app_runtime("contact")
    with acting("sup-1"):
        for _ in range(3):
            contact.app.log_contact(  # type: ignore[attr-defined]
                channel="phone", started_at=_recent(), issues=["housing"])
    events = contact.app.integration_events(0, 10)
    reporting = app_runtime("reporting")
    projection = reporting.projection
    # A real HTTP source on a port nobody listens on: every backfill fails to connect.
    closed = free_port()
    source = HttpEventSource(lambda _s: f"http://127.0.0.1:{closed}", lambda: "no-token")

    async def scenario() -> Consumer:
        bus = Bus(nats_url, name="faults")
        await bus.start()
        consumer = Consumer(projection, "contact", bus, source, reconcile_interval_s=0.2)
        try:
            await bus.wait_connected()
            await bus.ensure_stream("contact")
            await consumer.start()
            js = bus.jetstream()
            for ev in events:
                await js.publish(ev.subject, ev.to_bytes(), headers={"Nats-Msg-Id": ev.msg_id})
            await _until(lambda: projection.last_applied("contact") == 3,
                         what="the bus events to be applied")
            assert consumer.subscribed
            # A gap (events 4 and 5 never came): held back until the log can be read,
            # and the consumer keeps reading the bus meanwhile.
            gap = _shifted(events[0], notification_id=6, previous=5)
            await js.publish(gap.subject, gap.to_bytes(), headers={"Nats-Msg-Id": gap.msg_id})
            await asyncio.sleep(1.0)
            assert projection.last_applied("contact") == 3
            assert consumer.subscribed
            return consumer
        finally:
            await consumer.stop()
            await bus.close()

    consumer = asyncio.run(scenario())
    assert consumer.applied_count == 3
    assert consumer.backfill_error == "ConnectError"


def _shifted(ev: IntegrationEvent, *, notification_id: int, previous: int) -> IntegrationEvent:
    return ev.model_copy(update={"notification_id": notification_id,
                                 "previous_notification_id": previous,
                                 "id": envelope_id(ev.service, notification_id),
                                 "aggregate_id": uuid.uuid4()})


def _recent() -> Any:
    from datetime import UTC, datetime, timedelta

    return datetime.now(UTC) - timedelta(minutes=30)


# ----------------------------------- 2. read tables dropped under a running service


def test_read_tables_dropped_while_running_are_remade_and_replayed(
        settings: Settings, nats_url: str) -> None:
    with Stack(stack_settings(settings, nats_url=nats_url)) as stack:
        ids = _post(stack, 2)
        with stack.client() as c:
            wait_for(lambda: monthly_count(c) == 2, what="two counted")
            with stack.runtime("contact").engine.begin() as conn:
                conn.execute(sa.text("DROP TABLE v_contacts"))
            with stack.runtime("reporting").engine.begin() as conn:
                conn.execute(sa.text("DROP TABLE rm_cf_contacts"))
            r = c.get("/contact/contacts")  # not a 500 until a restart
            assert r.status_code == 200, r.text
            assert {i["id"] for i in r.json()["items"]} == set(ids)
            ids += _post(stack, 1)
            # Reporting's consumer finds its table gone, remakes it and replays the log.
            wait_for(lambda: _count_or_none(c) == 3, what="reporting replayed", timeout=30)
            listed = {i["id"] for i in c.get("/contact/contacts").json()["items"]}
            assert listed == set(ids)


def _count_or_none(c: httpx.Client) -> int | None:
    r = c.get("/reporting/monthly", params={"month": "2026-11"})
    return int(r.json()["contacts"]["total"]) if r.status_code == 200 else None


def test_reporting_remakes_its_dropped_schema_and_replays(
        settings: Settings, nats_url: str) -> None:
    s = stack_settings(settings, nats_url=nats_url, consumer_reconcile_interval_s=0.5)
    with Stack(s) as stack:
        _post(stack, 2)
        with stack.client() as c:
            wait_for(lambda: monthly_count(c) == 2, what="two counted")
            engine = stack.runtime("reporting").engine
            with engine.begin() as conn:
                if settings.is_postgres:
                    conn.execute(sa.text(
                        f'DROP SCHEMA "{settings.schema_for("reporting")}" CASCADE'))
                else:  # SQLite: one file per service; drop what reporting derives
                    derived = [t.name for t in reporting_tables.sorted_tables]
                    for table in (*derived, "projection_tracking", "read_model_schema",
                                  "projection_failures"):
                        conn.execute(sa.text(f"DROP TABLE IF EXISTS {table}"))
            # Quiet bus: the consumer's next look finds the tables gone, remakes them and
            # replays; a new event is counted too.
            wait_for(lambda: _count_or_none(c) == 2, what="reporting replayed", timeout=30)
            _post(stack, 1)
            wait_for(lambda: _count_or_none(c) == 3, what="the next event", timeout=30)
            started = time.monotonic()
            health = c.get("/reporting/health").json()
            assert time.monotonic() - started < 2.5
            if settings.is_postgres:
                # Its own (empty) event log went with the schema: health says so.
                assert health["store"]["status"] == "error"
                assert health["store"]["error"] == "UndefinedTable"
            else:
                assert health["store"]["status"] == "ok"
            assert health["store"]["projections"]["reporting"]["status"] == "ok"


# -------------------------------------------------- 4. the database gone: fail fast


@pytest.fixture
def own_database(settings: Settings) -> Iterator[tuple[Settings, Callable[[], None]]]:
    """A database of this test's own (a unique name), and a way to drop it under the
    running service. Only the database created here is ever dropped."""
    if not settings.is_postgres:
        pytest.skip("PostgreSQL only: a database that disappears")
    assert settings.database_url
    pg = PostgresParams.from_url(settings.database_url)
    name = f"solidarity_gone_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(pg.sqlalchemy_url(), isolation_level="AUTOCOMMIT",
                             poolclass=sa.pool.NullPool)

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = pg.sqlalchemy_url().set(database=name, drivername="postgresql")
    try:
        yield settings.model_copy(update={
            "database_url": url.render_as_string(hide_password=False)}), drop
    finally:
        drop()
        admin.dispose()


def test_with_the_database_gone_health_and_commands_answer_fast(
        own_database: tuple[Settings, Callable[[], None]], nats_url: str) -> None:
    settings, drop_database = own_database
    timeout = float(getattr(settings, "db_pool_timeout_s", 5.0))
    with Stack(stack_settings(settings, nats_url=nats_url),
               services=["contact", "reporting"]) as stack:
        _post(stack, 1)
        drop_database()
        with stack.client() as c:
            for _ in range(2):  # the first and the next: neither waits
                started = time.monotonic()
                r = c.get("/contact/health")
                assert time.monotonic() - started < 2.5, "health must answer within 2 s"
                assert r.status_code == 200 and r.json()["store"]["status"] == "error"
                started = time.monotonic()
                r = c.get("/reporting/health", params={"probe": "ready"})
                assert time.monotonic() - started < 2.5
                assert r.status_code == 503
                started = time.monotonic()
                r = c.post("/contact/contacts", json=contact_body())
                elapsed = time.monotonic() - started
                assert r.status_code >= 500, r.text
                assert elapsed < timeout + 3, f"a command waited {elapsed:.1f} s"


# --------------------------------------- 5. two processes starting at the same moment


def test_two_processes_starting_at_once_both_start(settings: Settings,
                                                   tmp_path: Path) -> None:
    for round_ in range(5):
        fresh = settings.model_copy(update={
            "nats_url": "nats://127.0.0.1:1",
            "data_dir": tmp_path / f"round-{round_}",
            "db_schema_prefix": f"t{uuid.uuid4().hex[:10]}_" if settings.is_postgres else "",
        })
        barrier = threading.Barrier(2)
        built: list[System] = []
        errors: list[BaseException] = []

        def start() -> None:
            barrier.wait()
            try:
                built.append(System(fresh, ["contact"]))  # joined in the loop
            except BaseException as e:  # asserted below
                errors.append(e)

        threads = [threading.Thread(target=start) for _ in range(2)]
        try:
            for t in threads:
                t.start()
            for t in threads:
                t.join(120)
            assert errors == [], f"round {round_}: {errors!r}"
            assert len(built) == 2
        finally:
            for system in built:
                for rt in system.runtimes.values():
                    rt.close()
            drop_schemas(fresh, SERVICES)


# ------------------------------------------------------------- 6. private data files


def test_data_files_are_private_after_a_start(settings: Settings, nats_url: str) -> None:
    old = os.umask(0o022)
    try:
        with Stack(stack_settings(settings, nats_url=nats_url)) as stack:
            _post(stack, 1)
            data_dir = settings.data_dir
            assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
            files = [p for p in data_dir.rglob("*") if p.is_file()]
            if not settings.is_postgres:
                names = {p.name for p in files}
                assert {"contact.sqlite", "reporting.sqlite", "contact.sqlite-wal"} <= names
            assert files
            for path in data_dir.rglob("*"):
                mode = stat.S_IMODE(path.stat().st_mode)
                assert mode & 0o077 == 0, f"{path.relative_to(data_dir)} is {oct(mode)}"
    finally:
        os.umask(old)
