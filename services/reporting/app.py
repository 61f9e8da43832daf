"""Reporting's read models: SQL tables fed from the bus, and its queries.

The projection records (upstream service, notification id) in ``consumer_tracking`` in
the same transaction as the rows it writes, under a unique key: a redelivered or
duplicated event changes nothing. Any read model can be dropped and rebuilt by replaying
the source services' logs, with an identical result.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from shared.application import ServiceApplication
from shared.envelope import IntegrationEvent
from shared.projector import ensure_read_tables

read_models = sa.MetaData()

consumer_tracking = sa.Table(
    "consumer_tracking",
    read_models,
    sa.Column("upstream", sa.String(50), primary_key=True),
    sa.Column("notification_id", sa.BigInteger, primary_key=True),
)

contacts = sa.Table(
    "rm_contacts",
    read_models,
    sa.Column("contact_id", sa.String(36), primary_key=True),
    sa.Column("channel", sa.String(20), nullable=False),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("month", sa.String(7), nullable=False, index=True),
    sa.Column("issues", sa.String(500), nullable=False),
    sa.Column("answered", sa.Boolean, nullable=False),
    sa.Column("shift_id", sa.String(36)),
    sa.Column("london_hour", sa.Integer, nullable=False),
    sa.Column("signposted_to", sa.String(2000), nullable=False, server_default=""),
    sa.Column("logged_notification_id", sa.BigInteger, nullable=False),
)

directory_names = sa.Table(
    "rm_directory",
    read_models,
    sa.Column("entry_id", sa.String(36), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
)

UPSTREAMS = ("contact", "shift", "outreach")


class ReportingApplication(ServiceApplication):
    """Reporting's own event log (empty for now: its state is derived, not recorded)."""

    service = "reporting"
    name = "reporting"


class ReportingProjection:
    name = "reporting"

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        # Made afresh when missing or of another shape (tracking included, so the
        # consumers replay every source log into them).
        self.rebuilt_at_start = ensure_read_tables(engine, self.name, read_models)

    def last_applied(self, upstream: str) -> int:
        with self.engine.connect() as conn:
            value = conn.execute(
                sa.select(sa.func.max(consumer_tracking.c.notification_id)).where(
                    consumer_tracking.c.upstream == upstream
                )
            ).scalar()
        return int(value or 0)

    def _apply_in(self, conn: Connection, event: IntegrationEvent) -> None:
        from services.reporting.handlers import HANDLERS

        conn.execute(
            sa.insert(consumer_tracking).values(
                upstream=event.service, notification_id=event.notification_id
            )
        )
        handler = HANDLERS.get((event.service, event.type))
        if handler is not None:
            handler(conn, event)

    def apply_many(self, events: list[IntegrationEvent]) -> list[IntegrationEvent]:
        """All in one transaction; if any was applied before (a tracking row exists),
        roll back and apply them one by one, so each is applied exactly once."""
        try:
            with self.engine.begin() as conn:
                for event in events:
                    self._apply_in(conn, event)
        except IntegrityError:
            return [e for e in events if self.apply(e)]
        return list(events)

    def apply(self, event: IntegrationEvent) -> bool:
        try:
            with self.engine.begin() as conn:
                self._apply_in(conn, event)
        except IntegrityError:
            # The tracking row exists: this event was applied before. Nothing changed.
            with self.engine.connect() as conn:
                seen = conn.execute(
                    sa.select(consumer_tracking.c.notification_id).where(
                        consumer_tracking.c.upstream == event.service,
                        consumer_tracking.c.notification_id == event.notification_id,
                    )
                ).first()
            if seen is None:
                raise
            return False
        return True

    def drop(self) -> None:
        read_models.drop_all(self.engine)
        read_models.create_all(self.engine)

    # -- queries ------------------------------------------------------------------
    def monthly(self, month: str) -> dict[str, Any]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(contacts.c.channel, contacts.c.issues, contacts.c.answered,
                          contacts.c.shift_id, contacts.c.london_hour,
                          contacts.c.signposted_to)
                .where(contacts.c.month == month)
            ).all()
            names = dict(conn.execute(sa.select(directory_names.c.entry_id,
                                                directory_names.c.name)).all())
        by_channel: Counter[str] = Counter()
        by_issue: Counter[str] = Counter()
        missed_by_shift: Counter[str] = Counter()
        missed_by_hour: Counter[str] = Counter()
        signposting: Counter[str] = Counter()
        answered = 0
        for channel, issues, was_answered, shift_id, hour, signposted in rows:
            if not was_answered:  # missed calls are counted apart
                missed_by_shift[shift_id or "unassigned"] += 1
                missed_by_hour[f"{hour:02d}"] += 1
                continue
            answered += 1
            by_channel[channel] += 1
            for issue in filter(None, issues.split(",")):
                by_issue[issue] += 1
            for entry in filter(None, signposted.split(",")):
                signposting[names.get(entry, entry)] += 1
        return {
            "month": month,
            "contacts": answered,
            "by_channel": dict(sorted(by_channel.items())),
            "by_issue": dict(sorted(by_issue.items())),
            "signposting": dict(sorted(signposting.items())),
            "missed_calls": {
                "total": sum(missed_by_hour.values()),
                "by_shift": dict(sorted(missed_by_shift.items())),
                "by_hour": dict(sorted(missed_by_hour.items())),
            },
        }

    def dump(self) -> dict[str, list[tuple[Any, ...]]]:
        """Every row of every read model, in a stable order (for rebuild checks)."""
        out: dict[str, list[tuple[Any, ...]]] = {}
        with self.engine.connect() as conn:
            for table in read_models.sorted_tables:
                cols = list(table.c)
                out[table.name] = [tuple(r) for r in conn.execute(sa.select(table).order_by(*cols))]
        return out
