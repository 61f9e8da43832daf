"""The composition root: wires each service's application, store, relay, consumers and
router, and the HTTP app that serves one service or all four. Tests hand in what they
need (settings, fault-injection hooks, an event source) here and nowhere else.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, FastAPI
from sqlalchemy.engine import Engine

from services.contact.api import router as contact_router
from services.contact.app import ContactApplication
from services.outreach.app import OutreachApplication
from services.reporting.api import router as reporting_router
from services.reporting.app import UPSTREAMS, ReportingApplication, ReportingProjection
from services.shift.app import ShiftApplication
from shared.application import ServiceApplication
from shared.auth import Role, issue_token
from shared.bus import (
    Bus,
    Consumer,
    EventSource,
    FallbackEventSource,
    HttpEventSource,
    LocalEventSource,
    PositionStore,
    Relay,
)
from shared.envelope import stream_name
from shared.http import Idempotency, install_http_basics
from shared.logging import get_logger
from shared.problems import install_problem_handlers
from shared.service_routes import Health, platform_router
from shared.settings import SERVICES, Settings
from shared.store import create_engine, create_platform_tables, eventsourcing_env

log = get_logger("system")

APPLICATIONS: dict[str, type[ServiceApplication]] = {
    "shift": ShiftApplication,
    "contact": ContactApplication,
    "outreach": OutreachApplication,
    "reporting": ReportingApplication,
}

ROUTERS: dict[str, Callable[[], APIRouter]] = {
    "contact": contact_router,
    "reporting": reporting_router,
}


@dataclass
class ServiceRuntime:
    name: str
    app: ServiceApplication
    engine: Engine
    relay: Relay
    idempotency: Idempotency
    consumers: list[Consumer] = field(default_factory=list)
    projection: ReportingProjection | None = None
    bus: Bus | None = None

    async def health(self) -> Health:
        store: dict[str, Any]
        try:
            head = await asyncio.to_thread(self.app.max_notification_id)

            def ping() -> None:
                with self.engine.connect() as conn:
                    conn.execute(sa.text("SELECT 1"))

            await asyncio.to_thread(ping)
            store = {"status": "ok", "head": head}
        except Exception as e:
            store = {"status": "error", "error": type(e).__name__}
            head = None
        nats_ok = self.bus is not None and self.bus.is_connected
        relay = {
            "position": self.relay.position,
            "lag": (head - self.relay.position) if head is not None else None,
            "last_error": self.relay.last_error,
        }
        consumers = [
            {
                "durable": c.durable,
                "subscribed": c.subscribed,
                "applied": c.applied_count,
                "duplicates": c.duplicate_count,
                "backfilled": c.backfilled_count,
                "lag_ms": c.lag_percentiles(),
                "last_error": c.last_error,
            }
            for c in self.consumers
        ]
        ready = store["status"] == "ok"
        return Health(
            service=self.name,
            status="ok" if ready and nats_ok else "degraded",
            live=True,
            ready=ready,
            store=store,
            nats={"status": "connected" if nats_ok else "disconnected"},
            relay=relay,
            consumers=consumers,
        )

    async def rebuild(self) -> dict[str, int]:
        """Drop the read models and replay every upstream log into them."""
        assert self.projection is not None
        locks = [c.lock for c in self.consumers]
        async with contextlib.AsyncExitStack() as stack:
            for lock in locks:
                await stack.enter_async_context(lock)
            await asyncio.to_thread(self.projection.drop)
            applied: dict[str, int] = {}
            for c in self.consumers:
                before = c.backfilled_count
                await c._backfill(0, until=None)
                applied[c.upstream] = c.backfilled_count - before
        return applied

    def close(self) -> None:
        self.app.close()
        self.engine.dispose()


class System:
    """Some or all of the four services in one process, with one NATS connection."""

    def __init__(
        self,
        settings: Settings,
        services: Sequence[str] = SERVICES,
        *,
        event_source: EventSource | None = None,
        relay_hooks: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        unknown = set(services) - set(SERVICES)
        if unknown:
            raise ValueError(f"unknown service(s): {', '.join(sorted(unknown))}")
        if not settings.nats_url:
            raise ValueError("the system needs a NATS URL (solidarity up starts one)")
        self.settings = settings
        self.bus = Bus(
            settings.nats_url,
            name="solidarity-" + "-".join(services),
            replicas=settings.stream_replicas,
            duplicate_window_s=settings.stream_duplicate_window_s,
            max_age_s=settings.stream_max_age_days * 86400,
        )
        self.runtimes: dict[str, ServiceRuntime] = {}
        relay_hooks = relay_hooks or {}
        for name in services:
            self.runtimes[name] = self._build(name, relay_hooks.get(name, {}))
        local = LocalEventSource({n: r.app for n, r in self.runtimes.items()})
        remote = HttpEventSource(settings.base_url_for, self.service_token)
        self.event_source = event_source or FallbackEventSource(local, remote)
        if "reporting" in self.runtimes:
            rt = self.runtimes["reporting"]
            rt.projection = ReportingProjection(rt.engine)
            rt.consumers = [
                Consumer(
                    rt.projection,
                    upstream,
                    self.bus,
                    self.event_source,
                    batch_size=settings.consumer_batch_size,
                    reconcile_interval_s=settings.consumer_reconcile_interval_s,
                )
                for upstream in UPSTREAMS
            ]
        self._started = False

    def _build(self, name: str, hooks: dict[str, Any]) -> ServiceRuntime:
        s = self.settings
        app_cls = APPLICATIONS[name]
        engine = create_engine(s, name)  # first: it creates the PostgreSQL schema
        app = app_cls(env=eventsourcing_env(s, name))
        app.bind(engine, s)
        create_platform_tables(engine)
        relay = Relay(
            app,
            self.bus,
            PositionStore(engine, stream_name(name)),
            batch_size=s.relay_batch_size,
            poll_interval_s=s.relay_poll_interval_s,
            ack_timeout_s=s.relay_ack_timeout_s,
            **hooks,
        )
        idem = Idempotency(engine, s.effective_master_key)
        return ServiceRuntime(name, app, engine, relay, idem, bus=self.bus)

    def service_token(self) -> str:
        """The token a consumer shows a source's /events when it backfills."""
        return issue_token(
            self.settings.effective_jwt_secret,
            sub="service:reporting",
            role=Role.AUDITOR,
            name="reporting consumer",
            issuer=self.settings.jwt_issuer,
            ttl_s=300,
        )

    async def start(self) -> None:
        await self.bus.start()
        for rt in self.runtimes.values():
            await rt.relay.start()
        for rt in self.runtimes.values():
            for c in rt.consumers:
                await c.start()
        self._started = True
        log.info("system_started", services=list(self.runtimes))

    async def stop(self) -> None:
        for rt in self.runtimes.values():
            for c in rt.consumers:
                await c.stop()
            await rt.relay.stop()
        await self.bus.close()
        for rt in self.runtimes.values():
            rt.close()
        self._started = False
        log.info("system_stopped")

    def http_app(self) -> FastAPI:
        @contextlib.asynccontextmanager
        async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
            await self.start()
            try:
                yield
            finally:
                await self.stop()

        api = FastAPI(
            title="Solidarity",
            summary="Out-of-hours peer-support crisis line: "
            + ", ".join(self.runtimes) + " service(s)",
            version="0.1.0",
            lifespan=lifespan,
        )
        api.state.settings = self.settings
        api.state.runtimes = self.runtimes
        api.state.system = self
        install_problem_handlers(api)
        install_http_basics(api, self.settings.max_body_bytes)
        for name in self.runtimes:
            api.include_router(platform_router(name))
            if name in ROUTERS:
                api.include_router(ROUTERS[name]())
        return api
