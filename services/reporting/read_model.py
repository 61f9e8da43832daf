"""Reporting's read models: SQL tables fed from the other services' events, and the
queries the reports are made of. They hold no personal data: references, codes, times
and counts. Any of them can be dropped and rebuilt by replaying the source logs, with
an identical result (``shared.eventstore.projection``).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

metadata = sa.MetaData()

contacts = sa.Table(
    "rm_contacts",
    metadata,
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
    metadata,
    sa.Column("entry_id", sa.String(36), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
)


def monthly(engine: Engine, month: str) -> dict[str, Any]:
    with engine.connect() as conn:
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
