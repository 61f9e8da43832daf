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
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from fastapi import FastAPI
from sqlalchemy.engine import Engine

from services.registry import MODULES, SERVICES
from shared.calls import call_placer
from shared.config import Settings
from shared.eventstore.application import Adapters, ServiceApplication
from shared.eventstore.projection import LocalProjector, Projection
from shared.eventstore.reactions import Reactor
from shared.eventstore.store import (
    create_engine,
    eventsourcing_env,
    protect_data_dir,
    startup_lock,
)
from shared.kernel import acting
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

# /health answers within 2 s whatever the store does (a probe is cut off after this).
HEALTH_TIMEOUT_S = 1.5

# How each adapter a module may ask for is built, in this order (the SMS outbox seals
# with the keys and finds callers through the phone index).
ADAPTER_FACTORIES: dict[str, Callable[[Adapters], Any]] = {
    "keys": lambda a: KeyStore(a.engine, a.settings.effective_master_key),
    "phones": lambda a: PhoneIndex(a.engine, a.settings.effective_master_key),
    "sms": lambda a: sms_provider(a.settings, a.engine, _need(a.keys), _need(a.phones)),
    "calls": lambda a: call_placer(a.settings, a.engine),
}


# Store errors that mean its tables or schema are gone (health says so in words too).
MISSING = frozenset({"UndefinedTable", "InvalidSchemaName"})


def _cause(e: BaseException) -> str:
    """The driver's error type behind a library's wrapper (UndefinedTable, PoolTimeout)."""
    inner = getattr(e, "orig", None) or e.__cause__
    return type(inner if isinstance(inner, Exception) else e).__name__


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
    _probe: Future[dict[str, Any]] | None = field(default=None, init=False, repr=False)
    _probe_pool: ThreadPoolExecutor | None = field(default=None, init=False, repr=False)
    _rebuilding: asyncio.Lock = field(default_factory=asyncio.Lock, init=False, repr=False)

    @property
    def projection(self) -> Projection:
        """The read model of a service that has one (``projections`` for several)."""
        (only,) = self.projections.values()
        return only

    async def health(self) -> Health:
        """Answers within ``HEALTH_TIMEOUT_S`` whatever the store does: the store probe
        runs on a thread of its own, and one still running is waited for, not doubled."""
        store = await self._probe_store()
        head = store.get("head")
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
                "set_aside": c.failed_count,
                "lag_ms": c.lag_percentiles(),
                "last_error": c.last_error,
                "backfill_error": c.backfill_error,
                "replay": None if c.replay_position is None else {
                    "position": c.replay_position, "applied": c.replayed_count},
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

    def _store_report(self) -> dict[str, Any]:
        """The store's head, a ping, and each read model's state (events set aside)."""
        try:
            head = self.app.max_notification_id()
            with self.engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
            store: dict[str, Any] = {"status": "ok", "head": head}
        except Exception as e:  # reported, not raised
            store = {"status": "error", "error": _cause(e)}
            if store["error"] in MISSING:
                store["detail"] = ("the store's tables or schema are missing: restore them, "
                                   "or restart the service to make them afresh (empty)")
        projections: dict[str, Any] = {}
        for name, projection in self.projections.items():
            try:
                projections[name] = projection.status()
            except Exception as e:
                projections[name] = {"status": "error", "error": _cause(e)}
        store["projections"] = projections
        return store

    async def _probe_store(self) -> dict[str, Any]:
        if self._probe is None or self._probe.done():
            if self._probe_pool is None:
                self._probe_pool = ThreadPoolExecutor(1, thread_name_prefix=f"health-{self.name}")
            self._probe = self._probe_pool.submit(self._store_report)
        try:
            return await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(self._probe)),
                                          HEALTH_TIMEOUT_S)
        except TimeoutError:
            return {"status": "error", "error": "Timeout",
                    "detail": f"the store did not answer within {HEALTH_TIMEOUT_S} s"}

    async def rebuild(self) -> dict[str, int]:
        """Drop every read model of this service and replay its sources into it: its
        own log, or the logs of the services it subscribes to. Returns how many events
        were applied from each source."""
        async with self._rebuilding:  # one at a time: another would empty this one's
            return await self._rebuild()  # tables under it

    async def _rebuild(self) -> dict[str, int]:
        applied: dict[str, int] = {}
        for projector in self.app.projectors.values():
            assert isinstance(projector, LocalProjector)
            applied[self.name] = await asyncio.to_thread(projector.rebuild)
        # Read models only: a service's reactions are its own events, never replayed.
        feeding = [c for c in self.consumers if isinstance(c.projection, Projection)]
        for c in feeding:  # from now a gap is the replay's to fill (Consumer.replay)
            c.replaying, c.replay_position = True, 0
        try:
            async with contextlib.AsyncExitStack() as stack:
                for c in feeding:  # live events wait only while the tables are emptied
                    await stack.enter_async_context(c.lock)
                for projection in {c.projection for c in feeding}:
                    await asyncio.to_thread(projection.drop)  # type: ignore[attr-defined]
            async with asyncio.TaskGroup() as group:  # a source read while another applies
                tasks = {c.upstream: group.create_task(c.replay()) for c in feeding}
        finally:
            for c in feeding:
                c.replaying = False
        return applied | {upstream: task.result() for upstream, task in tasks.items()}

    def close(self) -> None:
        if self._probe_pool is not None:
            self._probe_pool.shutdown(wait=False, cancel_futures=True)
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
            # Consumers of other services' streams: into read models, and into the
            # service's own reactions (events answered with events, tracked alike).
            targets: list[tuple[Any, str]] = [
                (rt.projections[model.name], upstream)
                for model in rt.module.read_models for upstream in model.subscriptions
            ]
            reactions = rt.module.reactions
            if reactions is not None:
                reactor = Reactor(rt.app, reactions)
                targets += [(reactor, upstream) for upstream in reactions.subscriptions]
            rt.consumers = [
                Consumer(
                    target,
                    upstream,
                    self.bus,
                    self.event_source,
                    batch_size=settings.consumer_batch_size,
                    reconcile_interval_s=settings.consumer_reconcile_interval_s,
                )
                for target, upstream in targets
            ]
        self._ticks: list[asyncio.Task[None]] = []
        self._started = False

    def _adapters(self, module: ServiceModule, engine: Engine) -> Adapters:
        adapters = Adapters(engine=engine, settings=self.settings)
        for kind, build in ADAPTER_FACTORIES.items():
            if kind in module.adapters:
                setattr(adapters, kind, build(adapters))
        return adapters

    def _build(self, module: ServiceModule, hooks: dict[str, Any]) -> ServiceRuntime:
        s, name = self.settings, module.name
        # Another process starting the same service at the same moment waits here: the
        # schema and every table are made once (PostgreSQL's catalogue refuses two at once).
        with startup_lock(s, name):
            engine = create_engine(s, name)  # first: it creates the PostgreSQL schema
            app = module.application(env=eventsourcing_env(s, name),
                                     public_events=module.public_events)
            app.bind(self._adapters(module, engine))
            projections: dict[str, Projection] = {}
            for model in module.read_models:
                projections[model.name] = Projection(engine, model)
            positions = PositionStore(engine, stream_name(name))
            idem = Idempotency(engine, s.effective_master_key)
        protect_data_dir(s)  # generated secrets may have just made it
        for model in module.read_models:
            if model.is_local:
                projector = LocalProjector(app, projections[model.name])
                projector.catch_up()
                app.attach_projector(projector)
        relay = Relay(
            app,
            self.bus,
            positions,
            batch_size=s.relay_batch_size,
            poll_interval_s=s.relay_poll_interval_s,
            ack_timeout_s=s.relay_ack_timeout_s,
            **hooks,
        )
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
        self._ticks = [asyncio.create_task(self._tick(rt), name=f"tick-{rt.name}")
                       for rt in self.runtimes.values()]
        self._started = True
        log.info("system_started", services=list(self.runtimes))

    async def _tick(self, rt: ServiceRuntime) -> None:
        """The service's clock work (``ServiceApplication.tick``), now and then, as the
        service itself; a failure is logged by type and tried at the next tick."""
        while True:
            await asyncio.sleep(self.settings.tick_interval_s)
            try:
                with acting(f"service:{rt.name}"):
                    await asyncio.to_thread(rt.app.tick, datetime.now(UTC))
            except Exception as e:
                log.warning("tick_failed", service=rt.name, error_type=type(e).__name__)

    async def stop(self) -> None:
        for task in self._ticks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for rt in self.runtimes.values():
            for c in rt.consumers:
                await c.stop()
            await rt.relay.stop()
        await self.bus.close()
        # A cancelled task does not stop the thread it was waiting on: a relay or a
        # consumer may still be reading the store. Let that work finish before the stores
        # close (closing a SQLite connection under a running query crashes the process).
        await asyncio.get_running_loop().shutdown_default_executor()
        for rt in self.runtimes.values():
            rt.close()
        self._started = False
        log.info("system_stopped")

    def http_app(self) -> FastAPI:
        from shared.web.openapi import install_openapi

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
            docs_url=None,  # FastAPI's pages load Swagger UI from a CDN: install_openapi's
            redoc_url=None,  # load it from a package, served here
        )
        api.state.settings = self.settings
        api.state.runtimes = self.runtimes
        api.state.system = self
        install_problem_handlers(api)
        install_http_basics(api, self.settings.max_body_bytes,
                            quiet=bool(self.settings.quiet_requests),
                            slow_ms=self.settings.slow_request_ms)
        for rt in self.runtimes.values():
            api.include_router(platform_router(rt.name))
            if rt.module.router is not None:
                api.include_router(rt.module.router())
        install_openapi(api, list(self.runtimes))
        return api
