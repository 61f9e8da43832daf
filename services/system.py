"""The composition root: builds every service named in the registry from its
``ServiceModule``: its store, the adapters it asks for (keys, phone index, SMS
provider), its read models (fed by its own log or by consumers of other services'
streams), its relay, and the HTTP app that serves one service or all of them.

It names no service: a new service is a package and a line in ``services/registry.py``.
Tests hand in what they need (settings, fault-injection hooks, an event source) here
and nowhere else.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from fastapi import FastAPI
from sqlalchemy.engine import Engine

from services.registry import MODULES, SERVICES
from shared.config import Settings
from shared.eventstore.application import Adapters, ServiceApplication
from shared.eventstore.projection import LocalProjector, Projection
from shared.eventstore.store import create_engine, eventsourcing_env
from shared.logging import get_logger
from shared.messaging.bus import Bus
from shared.messaging.consumer import Consumer
from shared.messaging.envelope import stream_name
from shared.messaging.relay import PositionStore, Relay
from shared.messaging.sources import (
    EventSource,
    FallbackEventSource,
    HttpEventSource,
    LocalEventSource,
)
from shared.privacy import KeyStore, PhoneIndex
from shared.service_module import ServiceModule
from shared.sms import sms_provider
from shared.web.auth import Role, issue_token
from shared.web.idempotency import Idempotency
from shared.web.middleware import install_http_basics
from shared.web.platform import Health, platform_router
from shared.web.problems import install_problem_handlers

log = get_logger("system")

# How each adapter a module may ask for is built, in this order (the SMS outbox seals
# with the keys and finds callers through the phone index).
ADAPTER_FACTORIES: dict[str, Callable[[Adapters], Any]] = {
    "keys": lambda a: KeyStore(a.engine, a.settings.effective_master_key),
    "phones": lambda a: PhoneIndex(a.engine, a.settings.effective_master_key),
    "sms": lambda a: sms_provider(a.settings, a.engine, _need(a.keys), _need(a.phones)),
}


def _need(adapter: Any) -> Any:
    if adapter is None:
        raise ValueError("the SMS provider needs the keys and phones adapters too")
    return adapter


@dataclass
class ServiceRuntime:
    name: str
    module: ServiceModule
    app: ServiceApplication
    engine: Engine
    relay: Relay
    idempotency: Idempotency
    projections: dict[str, Projection] = field(default_factory=dict)
    consumers: list[Consumer] = field(default_factory=list)
    bus: Bus | None = None

    @property
    def projection(self) -> Projection:
        """The read model of a service that has one (``projections`` for several)."""
        (only,) = self.projections.values()
        return only

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
        """Drop every read model of this service and replay its sources into it: its
        own log, or the logs of the services it subscribes to. Returns how many events
        were applied from each source."""
        applied: dict[str, int] = {}
        for projector in self.app.projectors.values():
            assert isinstance(projector, LocalProjector)
            applied[self.name] = await asyncio.to_thread(projector.rebuild)
        async with contextlib.AsyncExitStack() as stack:
            for c in self.consumers:  # live events wait while the models are replayed
                await stack.enter_async_context(c.lock)
            for projection in {c.projection for c in self.consumers}:
                assert isinstance(projection, Projection)
                await asyncio.to_thread(projection.drop)
            for c in self.consumers:
                before = c.backfilled_count
                await c.backfill_from_start()
                applied[c.upstream] = c.backfilled_count - before
        return applied

    def close(self) -> None:
        self.app.close()
        self.engine.dispose()


class System:
    """Some or all of the services in one process, with one NATS connection."""

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
            self.runtimes[name] = self._build(MODULES[name], relay_hooks.get(name, {}))
        local = LocalEventSource({n: r.app for n, r in self.runtimes.items()})
        remote = HttpEventSource(settings.base_url_for, self.service_token)
        self.event_source = event_source or FallbackEventSource(local, remote)
        for rt in self.runtimes.values():
            rt.consumers = [
                Consumer(
                    rt.projections[model.name],
                    upstream,
                    self.bus,
                    self.event_source,
                    batch_size=settings.consumer_batch_size,
                    reconcile_interval_s=settings.consumer_reconcile_interval_s,
                )
                for model in rt.module.read_models
                for upstream in model.subscriptions
            ]
        self._started = False

    def _adapters(self, module: ServiceModule, engine: Engine) -> Adapters:
        adapters = Adapters(engine=engine, settings=self.settings)
        for kind, build in ADAPTER_FACTORIES.items():
            if kind in module.adapters:
                setattr(adapters, kind, build(adapters))
        return adapters

    def _build(self, module: ServiceModule, hooks: dict[str, Any]) -> ServiceRuntime:
        s, name = self.settings, module.name
        engine = create_engine(s, name)  # first: it creates the PostgreSQL schema
        app = module.application(env=eventsourcing_env(s, name),
                                 public_events=module.public_events)
        app.bind(self._adapters(module, engine))
        projections: dict[str, Projection] = {}
        for model in module.read_models:
            projection = projections[model.name] = Projection(engine, model)
            if model.is_local:
                projector = LocalProjector(app, projection)
                projector.catch_up()
                app.attach_projector(projector)
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
        return ServiceRuntime(name, module, app, engine, relay, idem, projections, bus=self.bus)

    def service_token(self) -> str:
        """The token a consumer shows a source's /events when it backfills."""
        return issue_token(
            self.settings.effective_jwt_secret,
            sub="service:backfill",
            role=Role.AUDITOR,
            name="consumer backfill",
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
        for rt in self.runtimes.values():
            api.include_router(platform_router(rt.name))
            if rt.module.router is not None:
                api.include_router(rt.module.router())
        return api
