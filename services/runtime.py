"""One service as the composition root (``services/system.py``) built it: its
application, store, relay, read models and consumers, the chain of its log
(``shared.audit``), and what it reports as its health. A rebuild of its read models
is started here (``POST /<service>/rebuild``, ``solidarity reporting rebuild``).

A service whose read model follows its sources' audit chains (reporting's) has an
``audit`` keeper: health shows the checkpoints it keeps and refuses, and each consumer
whose source was found rewound (``source_rewound``, status "degraded") until a rebuild.
"""

from __future__ import annotations

import asyncio
import contextlib
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from shared.audit import Chainer, Checkpoint, CheckpointStore, Signer, make_checkpoint
from shared.eventstore.application import ServiceApplication
from shared.eventstore.projection import LocalProjector, Projection
from shared.messaging.bus import Bus, CheckpointFeed
from shared.messaging.consumer import Consumer, SourceGuard
from shared.messaging.relay import Relay
from shared.service_module import ServiceModule
from shared.web.idempotency import Idempotency
from shared.web.platform import Health

# /health answers within 2 s whatever the store does (a probe is cut off after this).
HEALTH_TIMEOUT_S = 1.5

# Store errors that mean its tables or schema are gone (health says so in words too).
MISSING = frozenset({"UndefinedTable", "InvalidSchemaName"})


class SourceAudit(SourceGuard, Protocol):
    """Keeps the checkpoints the bus brings and follows the sources' chains
    (``services/reporting/audit.py``, ``ChainKeeper``)."""

    checkpoints: CheckpointStore
    trusted: frozenset[str]

    def keep(self, raw: bytes) -> bool: ...
    def rewound(self) -> dict[str, dict[str, Any]]: ...
    def status(self) -> dict[str, Any]: ...


def _cause(e: BaseException) -> str:
    """The driver's error type behind a library's wrapper (UndefinedTable, PoolTimeout)."""
    inner = getattr(e, "orig", None) or e.__cause__
    return type(inner if isinstance(inner, Exception) else e).__name__


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
    chainer: Chainer | None = None  # the audit chain of its log, extended after each save
    signer: Signer | None = None  # signs the chain's head (checkpoints)
    audit: SourceAudit | None = None  # keeps other services' checkpoints (reporting)
    checkpoint_feed: CheckpointFeed | None = None  # the bus's checkpoints, to ``audit``
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
        rewound: dict[str, Any] = store.get("source_rewound") or {}
        store = {k: v for k, v in store.items() if k != "source_rewound"}
        feed = self.checkpoint_feed
        if feed is not None and isinstance(store.get("checkpoints"), dict):
            store["checkpoints"] = {**store["checkpoints"], "subscribed": feed.subscribed,
                                    "last_error": feed.last_error}
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
                **({"source_rewound": rewound.get(c.upstream)} if c.guard else {}),
            }
            for c in self.consumers
        ]
        ready = store["status"] == "ok"
        return Health(
            service=self.name,
            status="ok" if ready and nats_ok and not rewound else "degraded",
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
            if self.chainer is not None:
                store["chained"] = self.chainer.head()[0]  # the audit chain's head
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
        if self.audit is not None:
            try:
                store["checkpoints"] = self.audit.status()
                store["source_rewound"] = self.audit.rewound()
            except Exception as e:
                store["checkpoints"] = {"status": "error", "error": _cause(e)}
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

    def checkpoint(self) -> Checkpoint | None:
        """Chain what is saved, sign the chain's head and keep it (``shared.audit``)."""
        if self.chainer is None or self.signer is None:
            return None
        return make_checkpoint(self.chainer, self.signer, self.engine)

    def close(self) -> None:
        if self._probe_pool is not None:
            self._probe_pool.shutdown(wait=False, cancel_futures=True)
        self.app.close()
        self.engine.dispose()
