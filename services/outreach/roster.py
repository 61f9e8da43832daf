"""The supporters as the outreach service knows them: a read model of the shift
service's events (``outreach-roster``, fed exactly once by the platform's consumer of
the shift stream, with backfill; ``handlers.py`` applies them), and the one question
scheduling asks of it: may this supporter attend a meeting?

One table: each supporter the shift service published (id, role, active, eligible and
the training codes they lack). Ids and codes only: nothing personal travels on the bus.
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from sqlalchemy.engine import Engine

NAME = "outreach-roster"

UNKNOWN = "unknown"
DEACTIVATED = "deactivated"
NOT_ELIGIBLE = "not eligible"

metadata = sa.MetaData()

supporters = sa.Table(
    "v_roster_supporters",
    metadata,
    sa.Column("supporter_id", sa.String(36), primary_key=True),
    sa.Column("role", sa.String(20), nullable=False),
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("eligible", sa.Boolean, nullable=False),
    sa.Column("missing", sa.JSON, nullable=False),  # the training codes they lack
)


def supporter_key(value: object) -> str | None:
    """A supporter id as the shift service publishes it (a UUID, lower case), or None
    when ``value`` is not one."""
    if isinstance(value, uuid.UUID):
        return str(value)
    if not isinstance(value, str):
        return None
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return None


def why_not_attending(engine: Engine, supporter_id: object) -> str | None:
    """None if the supporter is active and eligible; else why not: ``unknown`` (the
    shift service never published them, or not yet), ``deactivated``, or
    ``not eligible: <the training codes they lack>``."""
    key = supporter_key(supporter_id)
    if key is None:
        return UNKNOWN
    with engine.connect() as conn:
        row = conn.execute(sa.select(supporters).where(supporters.c.supporter_id == key)).first()
    if row is None:
        return UNKNOWN
    if not row.active:
        return DEACTIVATED
    if not row.eligible:
        missing = [str(code) for code in row.missing or ()]
        return f"{NOT_ELIGIBLE}: {', '.join(missing)}" if missing else NOT_ELIGIBLE
    return None
