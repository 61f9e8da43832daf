"""A durable pull consumer of another service's stream.

It applies each event through a projection that records (upstream, notification id)
in the same transaction as its effect; it detects a missed event by
``previous_notification_id`` and backfills from the source's log (``sources.py``).

The bus and the log are read apart: events on the bus are applied whatever the
backfill path is doing, and the log is read only for a gap, at start, and when the
bus has been quiet for a while (a reconciler task of its own). When the log cannot be
read, an event after a gap is held back (handed back to JetStream for later) and
everything without a gap goes on; ``backfill_error`` in health says why.

A rebuild (``replay``) reads the log from the start in pages, each applied in one
transaction with its tracking, and takes the lock only for that: the bus's events go
on between pages (those ahead of the replay are held back until it gets there).

With a ``SourceGuard``: an event repeating an applied notification id with another
``chain_hash``, or a source no longer holding the event applied last, means its store was
rewound (an older backup restored); nothing more of it is applied until a rebuild.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Protocol

from nats.aio.msg import Msg
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
)

from shared.eventstore.application import ReadModelReset
from shared.logging import get_logger
from shared.messaging.bus import Bus
from shared.messaging.envelope import IntegrationEvent, stream_name
from shared.messaging.sources import EventSource

log = get_logger("bus")


# ------------------------------------------------------------------------ consumer


class Outcome(Protocol):
    applied: list[int]
    duplicates: list[int]
    failed: list[int]


class Projection(Protocol):
    """Where a consumer applies events: exactly-once effect through tracking
    (``shared.eventstore.projection.Projection``)."""

    name: str
    generation: int  # changes when its tables are remade: a replay is due

    def last_applied(self, upstream: str) -> int:
        """The highest notification id of ``upstream`` applied so far (0 if none)."""
        ...

    def apply_events(self, events: Sequence[IntegrationEvent],
                     generation: int | None = None) -> Outcome:
        """Apply several of one upstream, each with its tracking: applied, seen before or
        set aside. ``ReadModelReset`` if its tables were remade (since ``generation``)."""
        ...

    def check_tables(self) -> bool:
        """Remake its tables if one is missing; True if they were (replay)."""
        ...


class SourceGuard(Protocol):
    """Stops applying a source whose store was rewound (``services/reporting/audit.py``)."""

    def admits(self, upstream: str, events: Sequence[IntegrationEvent]) -> bool:
        """False if ``upstream`` is stopped, or now is: an event repeats an applied id with
        another chain hash."""

    def admits_last(self, upstream: str, last: int, found: IntegrationEvent | None) -> bool:
        """The same for the source's event at ``last``, the last applied (None: gone)."""


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
        hold_back_s: float = 2.0,
        replay_page_size: int = 5000,
        guard: SourceGuard | None = None,
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
        self.hold_back_s = hold_back_s  # an event after an unfilled gap comes back then
        self.replay_page_size = replay_page_size
        self.guard = guard
        # Set by a rebuild from before it empties the tables until its replay is done:
        # meanwhile a gap is the replay's to fill, not the bus path's.
        self.replaying = False
        self.replay_position: int | None = None  # the last id replayed (None: not yet)
        self.replayed_count = 0  # applied by the replay under way or last done
        self.applied_count = 0
        self.duplicate_count = 0
        self.backfilled_count = 0
        self.failed_count = 0  # set aside by the projection: it cannot apply them
        self.last_error: str | None = None
        self.backfill_error: str | None = None
        self.subscribed = False
        self.lags_ms: deque[float] = deque(maxlen=2000)
        self._tasks: list[asyncio.Task[None]] = []
        self._last_message = time.monotonic()
        self._lock = asyncio.Lock()  # one apply at a time; rebuilds take it too

    @property
    def lock(self) -> asyncio.Lock:
        return self._lock

    async def start(self) -> None:
        self._tasks = [asyncio.create_task(self.run(), name=f"consumer-{self.durable}"),
                       asyncio.create_task(self.reconcile(), name=f"reconcile-{self.durable}")]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

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
                self.subscribed = True
                self.last_error = None
                while True:
                    try:
                        msgs = await sub.fetch(self.batch_size, timeout=1)
                    except TimeoutError:
                        continue
                    self._last_message = time.monotonic()
                    await self._handle_messages(msgs)
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

    async def _handle_messages(self, msgs: list[Msg]) -> None:
        parsed: list[tuple[Msg, IntegrationEvent]] = []
        for msg in msgs:
            try:
                parsed.append((msg, IntegrationEvent.from_bytes(msg.data)))
            except ValueError:  # not an integration event: never deliverable
                log.warning("consumer_unreadable_message", consumer=self.durable)
                await msg.term()
        held = await self.handle_batch([event for _, event in parsed])
        for msg, event in parsed:
            if event.notification_id in held:
                await msg.nak(delay=self.hold_back_s)
            else:
                await msg.ack()

    async def reconcile(self) -> None:
        """Read the source log at start, and then whenever the bus has been quiet for
        ``reconcile_interval_s``; remake the read tables if one was dropped meanwhile.
        Retried until it succeeds; the bus is read all the while."""
        backoff = 0.2
        caught_up = False
        while True:
            quiet = time.monotonic() - self._last_message >= self.reconcile_interval_s
            if (not caught_up or quiet) and not self.replaying:
                try:
                    await asyncio.to_thread(self.projection.check_tables)
                    await self.catch_up()
                except asyncio.CancelledError:
                    raise
                except ReadModelReset:
                    continue  # remade meanwhile: read the log from the start
                except Exception as e:
                    self.backfill_error = type(e).__name__
                    log.warning("consumer_backfill_failed", consumer=self.durable,
                                error_type=type(e).__name__)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, self.reconcile_interval_s)
                    continue
                caught_up, backoff = True, 0.2
            await asyncio.sleep(self.reconcile_interval_s)

    async def handle_batch(self, events: list[IntegrationEvent]) -> set[int]:
        """Apply a fetched batch: duplicates skipped, the unbroken chain applied in one
        transaction, and a gap (an event whose predecessor never came) backfilled from
        the source log before going on. Returns the notification ids held back: those
        from a gap on, when the log could not be read."""
        async with self._lock:
            ordered = sorted(events, key=lambda e: e.notification_id)
            try:
                return await self._handle_locked(ordered)
            except ReadModelReset:
                if self.replaying:  # a rebuild's replay will get to them
                    return {ev.notification_id for ev in ordered}
                # Its tables were remade: everything is replayed from the log, which holds
                # every event of the bus too.
                log.warning("consumer_replay", consumer=self.durable)
                try:
                    await self._backfill(0, until=None)
                except ReadModelReset:
                    raise
                except Exception as e:
                    self._backfill_failed(e)
                    return {ev.notification_id for ev in ordered}
                return set()

    async def _handle_locked(self, ordered: list[IntegrationEvent]) -> set[int]:
        if not await self._admitted(ordered):
            return set()  # acked: a rebuild replays the source's log as it now is
        generation = self.projection.generation
        last = await asyncio.to_thread(self.projection.last_applied, self.upstream)
        chain: list[IntegrationEvent] = []
        for i, event in enumerate(ordered):
            head = chain[-1].notification_id if chain else last
            if event.notification_id <= head:
                self.duplicate_count += 1
                continue
            if event.previous_notification_id > head:
                if self.replaying:  # ahead of a rebuild's replay: it will get there
                    await self._apply_chain(chain, generation)
                    return {ev.notification_id for ev in ordered[i:]}
                log.warning("consumer_gap", consumer=self.durable, last_applied=head,
                            previous=event.previous_notification_id,
                            received=event.notification_id)
                await self._apply_chain(chain, generation)
                chain = []
                try:
                    await self._backfill(head, until=event.notification_id)
                except ReadModelReset:
                    raise
                except Exception as e:  # the log cannot be read: hold the rest back
                    self._backfill_failed(e)
                    return {ev.notification_id for ev in ordered[i:]}
                generation = self.projection.generation
                last = await asyncio.to_thread(self.projection.last_applied, self.upstream)
                continue
            chain.append(event)
        await self._apply_chain(chain, generation)
        return set()

    def _backfill_failed(self, e: Exception) -> None:
        self.backfill_error = type(e).__name__
        log.warning("consumer_backfill_failed", consumer=self.durable,
                    error_type=type(e).__name__)

    async def _apply_chain(self, chain: list[IntegrationEvent], generation: int | None,
                           backfill: bool = False) -> None:
        if not chain or (backfill and not await self._admitted(chain)):
            return  # (the bus's events were let through by _handle_locked)
        outcome = await asyncio.to_thread(self.projection.apply_events, chain, generation)
        applied = set(outcome.applied)
        self.duplicate_count += len(outcome.duplicates)
        self.failed_count += len(outcome.failed)
        if backfill:
            self.backfilled_count += len(applied)
        self._applied([e for e in chain if e.notification_id in applied])

    async def _admitted(self, events: Sequence[IntegrationEvent]) -> bool:
        if self.guard is None or not events:
            return True
        return await asyncio.to_thread(self.guard.admits, self.upstream, events)

    async def _source_kept(self, last: int) -> bool:
        """Whether the source still holds the event applied last, as it was applied."""
        if self.guard is None or not last:
            return True
        page = await self.source.fetch(self.upstream, last - 1, 1)
        found = page[0] if page and page[0].notification_id == last else None
        return await asyncio.to_thread(self.guard.admits_last, self.upstream, last, found)

    def _applied(self, events: list[IntegrationEvent]) -> None:
        now = time.time()
        for event in events:
            self.applied_count += 1
            self.lags_ms.append(max(0.0, (now - event.occurred_at.timestamp()) * 1000.0))
            if self.on_applied is not None:
                self.on_applied(event)

    async def catch_up(self) -> None:
        """Apply whatever the source log holds beyond what was applied. The log is read
        outside the lock, so the bus is never held up by it."""
        generation = self.projection.generation
        after = await asyncio.to_thread(self.projection.last_applied, self.upstream)
        if not await self._source_kept(after):
            return  # rewound: stopped until a rebuild
        while True:
            page = await self.source.fetch(self.upstream, after, self.batch_size)
            self.backfill_error = None
            if page:
                async with self._lock:
                    await self._apply_chain(page, generation, backfill=True)
                after = page[-1].notification_id
            if len(page) < self.batch_size:
                return

    async def replay(self) -> int:
        """Replay the whole source log into the projection a rebuild has just emptied
        (with ``replaying`` set): pages of ``replay_page_size``, each applied in one
        transaction with its tracking, under the lock only while it is applied; the next
        page is read meanwhile. Returns how many events were applied."""
        try:
            return await self._replay(self.projection.generation, self.replay_page_size)
        finally:
            self.replaying = False  # its live events go on at once

    async def _replay(self, generation: int, size: int) -> int:
        self.replay_position, self.replayed_count = 0, 0
        before = self.backfilled_count
        page = await self.source.fetch(self.upstream, 0, size)
        while page:
            after = page[-1].notification_id
            ahead = (asyncio.create_task(self.source.fetch(self.upstream, after, size))
                     if len(page) == size else None)
            try:
                async with self._lock:
                    await self._apply_chain(page, generation, backfill=True)
            except BaseException:
                if ahead is not None:
                    ahead.cancel()
                    with contextlib.suppress(BaseException):
                        await ahead
                raise
            self.replay_position = after
            self.replayed_count = self.backfilled_count - before
            self.backfill_error = None
            page = await ahead if ahead is not None else []
        return self.backfilled_count - before

    async def _backfill(self, after: int, until: int | None) -> None:
        """Apply the log after ``after`` (up to ``until``); the caller holds the lock."""
        generation = self.projection.generation
        while True:
            page = await self.source.fetch(self.upstream, after, self.batch_size)
            self.backfill_error = None
            wanted = [e for e in page if until is None or e.notification_id <= until]
            await self._apply_chain(wanted, generation, backfill=True)
            if page:
                after = page[-1].notification_id
            if len(page) < self.batch_size or (until is not None and after >= until):
                return

    def lag_percentiles(self) -> dict[str, float | None]:
        data = sorted(self.lags_ms)
        if not data:
            return {"p50_ms": None, "p99_ms": None}

        def pct(p: float) -> float:
            return round(data[min(len(data) - 1, int(p * len(data)))], 1)

        return {"p50_ms": pct(0.50), "p99_ms": pct(0.99)}
