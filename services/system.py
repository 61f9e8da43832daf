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
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI
from sqlalchemy.engine import Engine

from services.registry import MODULES, SERVICES
from services.runtime import ServiceRuntime
from shared.audit import Chainer, Checkpoint, Signer, trusted_keys
from shared.calls import call_placer
from shared.config import Settings
from shared.eventstore.application import Adapters
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
from shared.messaging.bus import Bus, CheckpointFeed
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
from shared.web.platform import platform_router
from shared.web.problems import install_problem_handlers

__all__ = ["ADAPTER_FACTORIES", "ServiceRuntime", "System"]

log = get_logger("system")

PUBLISH_TIMEOUT_S = 10.0  # a checkpoint not published by then waits for the next interval

# How each adapter a module may ask for is built, in this order (the SMS outbox seals
# with the keys and finds callers through the phone index).
ADAPTER_FACTORIES: dict[str, Callable[[Adapters], Any]] = {
    "keys": lambda a: KeyStore(a.engine, a.settings.effective_master_key),
    "phones": lambda a: PhoneIndex(a.engine, a.settings.effective_master_key),
    "sms": lambda a: sms_provider(a.settings, a.engine, _need(a.keys), _need(a.phones)),
    "calls": lambda a: call_placer(a.settings, a.engine),
}


def _need(adapter: Any) -> Any:
    if adapter is None:
        raise ValueError("the SMS provider needs the keys and phones adapters too")
    return adapter



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
        self._trusted: frozenset[str] | None = None
        relay_hooks = relay_hooks or {}
        for name in services:
            self.runtimes[name] = self._build(MODULES[name], relay_hooks.get(name, {}))
        local = LocalEventSource({n: r.app for n, r in self.runtimes.items()})
        remote = HttpEventSource(settings.base_url_for, self.service_token)
        self.event_source = event_source or FallbackEventSource(local, remote)
        for rt in self.runtimes.values():
            # Consumers of other services' streams: into read models, and into the
            # service's own reactions (events answered with events, tracked alike).
            targets: list[tuple[Any, str, Any]] = []
            for model in rt.module.read_models:
                guard = self._source_audit(rt, model.name, model.apply)
                targets += [(rt.projections[model.name], upstream, guard)
                            for upstream in model.subscriptions]
            reactions = rt.module.reactions
            if reactions is not None:
                reactor = Reactor(rt.app, reactions)
                targets += [(reactor, upstream, None) for upstream in reactions.subscriptions]
            rt.consumers = [
                Consumer(
                    target,
                    upstream,
                    self.bus,
                    self.event_source,
                    batch_size=settings.consumer_batch_size,
                    reconcile_interval_s=settings.consumer_reconcile_interval_s,
                    guard=guard,
                )
                for target, upstream, guard in targets
            ]
        self._ticks: list[asyncio.Task[None]] = []
        self._started = False

    def _source_audit(self, rt: ServiceRuntime, name: str, apply: Any) -> Any:
        """The keeper of a read model that follows its sources' audit chains (its apply
        offers one: reporting's): it keeps their checkpoints from the bus and stops a
        source found rewound. None for any other read model."""
        make = getattr(apply, "keeper", None)
        if make is None:
            return None
        if self._trusted is None:  # the keys whose checkpoints are kept
            self._trusted = trusted_keys(self.settings, SERVICES)
        rt.audit = make(rt.engine, self._trusted, rt.projections[name].changed)
        return rt.audit

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
            chainer = Chainer(app.recorder, engine)  # makes its tables: under the lock
        chainer.catch_up()  # what was saved while no process of this service ran
        app.add_save_listener(chainer.saved)
        app.chain_hashes = chainer.hashes  # each event's link, on /events and the bus
        signer = Signer.from_settings(s, name)
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
            hashes=chainer.hashes,
            **hooks,
        )
        return ServiceRuntime(name, module, app, engine, relay, idem, projections,
                              bus=self.bus, chainer=chainer, signer=signer)

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
            if rt.audit is not None:  # it keeps the checkpoints every service publishes
                rt.checkpoint_feed = CheckpointFeed(self.bus, f"{rt.name}-checkpoints",
                                                    rt.audit.keep)
                await rt.checkpoint_feed.start()
        self._ticks = [asyncio.create_task(self._tick(rt), name=f"tick-{rt.name}")
                       for rt in self.runtimes.values()]
        self._ticks += [asyncio.create_task(self._checkpoints(rt), name=f"audit-{rt.name}")
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

    async def _checkpoints(self, rt: ServiceRuntime) -> None:
        """Sign the service's chain head now and then (``audit_checkpoint_interval_s``)
        and publish it on the bus; a failure is logged by type and tried at the next
        interval (with NATS down, the newest head is published once it is back: the
        service keeps every checkpoint it made in its own store anyway)."""
        while True:
            try:
                checkpoint = await asyncio.to_thread(rt.checkpoint)
                if checkpoint is not None:
                    await asyncio.wait_for(self._publish(checkpoint), PUBLISH_TIMEOUT_S)
            except Exception as e:
                log.warning("checkpoint_failed", service=rt.name, error_type=type(e).__name__)
            await asyncio.sleep(self.settings.audit_checkpoint_interval_s)

    async def _publish(self, checkpoint: Checkpoint) -> None:
        await self.bus.wait_connected()
        await self.bus.publish_checkpoint(checkpoint.to_dict())

    async def stop(self) -> None:
        for task in self._ticks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for rt in self.runtimes.values():
            for c in rt.consumers:
                await c.stop()
            if rt.checkpoint_feed is not None:
                await rt.checkpoint_feed.stop()
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
