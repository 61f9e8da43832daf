"""The relay: the outbox of one service.

It reads the service's notification log from the last published position, publishes
each event with ``Nats-Msg-Id: <service>:<notification_id>``, awaits the pipelined acks
and only then records the new position (in the service's own database). A crash
anywhere means at-least-once publishing, never a lost event. Each event carries its
link in the service's audit chain (``chain_hash``, from the ``hashes`` callable the
composition root hands it: ``Chainer.hashes``), so a consumer can tell a repeated
notification id of a rewound store from a redelivery.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from shared.eventstore.application import ServiceApplication
from shared.logging import get_logger
from shared.messaging.bus import Bus
from shared.messaging.envelope import IntegrationEvent, stream_name

log = get_logger("bus")

relay_metadata = sa.MetaData()

relay_position = sa.Table(
    "relay_position",
    relay_metadata,
    sa.Column("stream", sa.String(100), primary_key=True),
    sa.Column("notification_id", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)



class PositionStore:
    """The relay's last published position, in the service's own database."""

    def __init__(self, engine: Engine, stream: str) -> None:
        self.engine = engine
        self.stream = stream
        relay_metadata.create_all(engine)

    def get(self) -> int:
        with self.engine.connect() as conn:
            value = conn.execute(
                sa.select(relay_position.c.notification_id).where(
                    relay_position.c.stream == self.stream
                )
            ).scalar()
        return int(value or 0)

    def set(self, notification_id: int) -> None:
        now = datetime.now(UTC)
        with self.engine.begin() as conn:
            updated = conn.execute(
                sa.update(relay_position)
                .where(relay_position.c.stream == self.stream)
                .values(notification_id=notification_id, updated_at=now)
            ).rowcount
            if not updated:
                conn.execute(
                    sa.insert(relay_position).values(
                        stream=self.stream, notification_id=notification_id, updated_at=now
                    )
                )


class Relay:
    """Publishes one service's notification log to its JetStream stream."""

    def __init__(
        self,
        app: ServiceApplication,
        bus: Bus,
        positions: PositionStore,
        *,
        batch_size: int = 500,
        poll_interval_s: float = 1.0,
        ack_timeout_s: float = 5.0,
        after_publish: Callable[[list[IntegrationEvent]], Awaitable[None]] | None = None,
        drop: Callable[[IntegrationEvent], bool] | None = None,
        hashes: Callable[[list[int]], dict[int, bytes]] | None = None,
    ) -> None:
        self.app = app
        self.service = app.service
        self.bus = bus
        self.positions = positions
        self.batch_size = batch_size
        self.poll_interval_s = poll_interval_s
        self.ack_timeout_s = ack_timeout_s
        # Fault injection for tests: runs after the acks and before the position is
        # recorded; and a filter of events never to send (a message lost in transit).
        self.after_publish = after_publish
        self.drop = drop
        self.hashes = hashes  # notification id -> its chain link (None: no chain_hash)
        self.position = 0
        self.published_count = 0
        self.last_error: str | None = None
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None

    def wake(self, _recordings: object = None) -> None:
        """Thread-safe: called after a local save."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._wake.set)

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.app.add_save_listener(self.wake)
        self._task = asyncio.create_task(self.run(), name=f"relay-{self.service}")

    async def stop(self) -> None:
        self.app.remove_save_listener(self.wake)
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    @property
    def task(self) -> asyncio.Task[None] | None:
        return self._task

    async def lag(self) -> int:
        head = await asyncio.to_thread(self.app.max_notification_id)
        return max(0, head - self.position)

    async def run(self) -> None:
        self.position = await asyncio.to_thread(self.positions.get)
        backoff = 0.2
        while True:
            try:
                await self.bus.wait_connected()
                await self.bus.ensure_stream(self.service)
                while True:
                    # Clear before reading: a save made while this batch is published sets
                    # it again, and is then picked up at once rather than at the next poll.
                    self._wake.clear()
                    sent = await self.publish_pending()
                    backoff = 0.2
                    self.last_error = None
                    if sent < self.batch_size:
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(self._wake.wait(), self.poll_interval_s)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # NATS down, ack timeout, store busy: retry, never skip
                self.last_error = type(e).__name__
                self.bus.forget_stream(self.service)
                log.warning("relay_retry", service=self.service, error_type=type(e).__name__,
                            position=self.position)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def publish_pending(self) -> int:
        """Publish one batch after the recorded position; return how many were read."""
        batch = await asyncio.to_thread(self._read_batch)
        if not batch:
            return 0
        js = self.bus.jetstream()
        futures = []
        for ev in batch:
            if self.drop is not None and self.drop(ev):
                continue
            futures.append(
                await js.publish_async(
                    ev.subject,
                    ev.to_bytes(),
                    headers={"Nats-Msg-Id": ev.msg_id},
                    stream=stream_name(self.service),
                )
            )
        if futures:
            await asyncio.wait_for(asyncio.gather(*futures), self.ack_timeout_s)
        if self.after_publish is not None:
            await self.after_publish(batch)
        new_position = batch[-1].notification_id
        await asyncio.to_thread(self.positions.set, new_position)
        self.position = new_position
        self.published_count += len(futures)
        return len(batch)

    def _read_batch(self) -> list[IntegrationEvent]:
        notifications = self.app.select_notifications(self.position, self.batch_size)
        previous = self.position
        ids = [n.id for n in notifications]
        hashes = self.hashes(ids) if self.hashes is not None and ids else {}
        out = []
        for n in notifications:
            out.append(self.app.to_integration_event(n, previous, hashes.get(n.id)))
            previous = n.id
        return out


