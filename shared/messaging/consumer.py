"""A durable pull consumer of another service's stream.

It applies each event through a projection that records (upstream, notification id)
in the same transaction as its effect; it detects a missed event by
``previous_notification_id`` and backfills from the source's log (``sources.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
)

from shared.logging import get_logger
from shared.messaging.bus import Bus
from shared.messaging.envelope import IntegrationEvent, stream_name
from shared.messaging.sources import EventSource

log = get_logger("bus")


# ------------------------------------------------------------------------ consumer


class Projection(Protocol):
    """Where a consumer applies events: exactly-once effect through tracking."""

    name: str

    def last_applied(self, upstream: str) -> int:
        """The highest notification id of ``upstream`` applied so far (0 if none)."""
        ...

    def apply(self, event: IntegrationEvent) -> bool:
        """Apply the event and record its tracking in one transaction.
        Return False (and change nothing) if it was applied before."""
        ...

    def apply_many(self, events: list[IntegrationEvent]) -> list[IntegrationEvent]:
        """Apply several, each with its tracking; return those applied (not seen before)."""
        ...


class Consumer:
    """A durable pull consumer of one upstream stream, feeding one projection."""

    def __init__(
        self,
        projection: Projection,
        upstream: str,
        bus: Bus,
        source: EventSource,
        *,
        batch_size: int = 200,
        on_applied: Callable[[IntegrationEvent], None] | None = None,
        reconcile_interval_s: float = 30.0,
    ) -> None:
        self.projection = projection
        self.upstream = upstream
        self.bus = bus
        self.source = source
        self.batch_size = batch_size
        self.durable = f"{projection.name}-from-{upstream}"
        self.on_applied = on_applied
        # The chain reveals a missed event only when the next one arrives; when the bus
        # is quiet, look at the source log now and then so a lost last event is not
        # left out until the next shift's first call.
        self.reconcile_interval_s = reconcile_interval_s
        self.applied_count = 0
        self.duplicate_count = 0
        self.backfilled_count = 0
        self.last_error: str | None = None
        self.subscribed = False
        self.lags_ms: deque[float] = deque(maxlen=2000)
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()  # one event at a time; rebuilds take it too

    @property
    def lock(self) -> asyncio.Lock:
        return self._lock

    async def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name=f"consumer-{self.durable}")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def run(self) -> None:
        backoff = 0.2
        while True:
            try:
                await self.bus.wait_connected()
                await self.bus.ensure_stream(self.upstream)
                js = self.bus.jetstream()
                sub = await js.pull_subscribe(
                    f"solidarity.{self.upstream}.>",
                    durable=self.durable,
                    stream=stream_name(self.upstream),
                    config=ConsumerConfig(
                        ack_policy=AckPolicy.EXPLICIT,
                        deliver_policy=DeliverPolicy.ALL,
                        ack_wait=30,
                        max_ack_pending=10_000,
                    ),
                )
                # Events published before this consumer existed, or lost, are in the log.
                await self.catch_up()
                self.subscribed = True
                self.last_error = None
                reconciled = time.monotonic()
                while True:
                    try:
                        msgs = await sub.fetch(self.batch_size, timeout=1)
                    except TimeoutError:
                        if time.monotonic() - reconciled >= self.reconcile_interval_s:
                            await self.catch_up()
                            reconciled = time.monotonic()
                        continue
                    await self.handle_batch([IntegrationEvent.from_bytes(m.data) for m in msgs])
                    for msg in msgs:
                        await msg.ack()
                    backoff = 0.2
            except asyncio.CancelledError:
                raise
            except Exception as e:
                self.subscribed = False
                self.last_error = type(e).__name__
                self.bus.forget_stream(self.upstream)
                log.warning("consumer_retry", consumer=self.durable, error_type=type(e).__name__)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def handle(self, event: IntegrationEvent) -> None:
        await self.handle_batch([event])

    async def handle_batch(self, events: list[IntegrationEvent]) -> None:
        """Apply a fetched batch: duplicates skipped, the unbroken chain applied in one
        transaction, and a gap (an event whose predecessor never came) backfilled from
        the source log before going on."""
        async with self._lock:
            last = await asyncio.to_thread(self.projection.last_applied, self.upstream)
            chain: list[IntegrationEvent] = []
            for event in sorted(events, key=lambda e: e.notification_id):
                head = chain[-1].notification_id if chain else last
                if event.notification_id <= head:
                    self.duplicate_count += 1
                    continue
                if event.previous_notification_id > head:
                    log.warning("consumer_gap", consumer=self.durable, last_applied=head,
                                previous=event.previous_notification_id,
                                received=event.notification_id)
                    await self._apply_chain(chain)
                    chain = []
                    await self._backfill(head, until=event.notification_id)
                    last = await asyncio.to_thread(self.projection.last_applied, self.upstream)
                    continue
                chain.append(event)
            await self._apply_chain(chain)

    async def _apply_chain(self, chain: list[IntegrationEvent]) -> None:
        if not chain:
            return
        applied = await asyncio.to_thread(self.projection.apply_many, chain)
        if len(applied) != len(chain):
            self.duplicate_count += len(chain) - len(applied)
        self._applied(applied)

    def _applied(self, events: list[IntegrationEvent]) -> None:
        now = time.time()
        for event in events:
            self.applied_count += 1
            self.lags_ms.append(max(0.0, (now - event.occurred_at.timestamp()) * 1000.0))
            if self.on_applied is not None:
                self.on_applied(event)

    async def catch_up(self) -> None:
        """Apply whatever the source log holds beyond what was applied."""
        async with self._lock:
            last = await asyncio.to_thread(self.projection.last_applied, self.upstream)
            await self._backfill(last, until=None)

    async def backfill_from_start(self) -> None:
        """Replay the whole source log (a rebuild; the caller holds ``lock``)."""
        await self._backfill(0, until=None)

    async def _backfill(self, after: int, until: int | None) -> None:
        while True:
            page = await self.source.fetch(self.upstream, after, self.batch_size)
            for ev in page:
                if until is not None and ev.notification_id > until:
                    return
                if await self._apply(ev):
                    self.backfilled_count += 1
                after = ev.notification_id
            if len(page) < self.batch_size or (until is not None and after >= until):
                return

    async def _apply(self, event: IntegrationEvent) -> bool:
        applied = await asyncio.to_thread(self.projection.apply, event)
        if applied:
            self._applied([event])
        else:
            self.duplicate_count += 1
        return applied

    def lag_percentiles(self) -> dict[str, float | None]:
        data = sorted(self.lags_ms)
        if not data:
            return {"p50_ms": None, "p99_ms": None}

        def pct(p: float) -> float:
            return round(data[min(len(data) - 1, int(p * len(data)))], 1)

        return {"p50_ms": pct(0.50), "p99_ms": pct(0.99)}


