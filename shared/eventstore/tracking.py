"""The tables every read model shares (its tracking, its failures, the shape its tables
were made with) and how a read model's own tables are made or remade at start.

``shared.eventstore.projection`` keeps a read model in step with its events on top of
these, and re-exports them: import from either.
"""

from __future__ import annotations

import hashlib
import json

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from shared.eventstore.store import lock_ddl

projection_metadata = sa.MetaData()

projection_tracking = sa.Table(
    "projection_tracking",
    projection_metadata,
    sa.Column("projection", sa.String(100), primary_key=True),
    sa.Column("upstream", sa.String(50), primary_key=True),
    sa.Column("notification_id", sa.BigInteger, primary_key=True),
)

read_model_schema = sa.Table(
    "read_model_schema",
    projection_metadata,
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("fingerprint", sa.String(64), nullable=False),
)

projection_failures = sa.Table(
    "projection_failures",
    projection_metadata,
    sa.Column("projection", sa.String(100), primary_key=True),
    sa.Column("upstream", sa.String(50), primary_key=True),
    sa.Column("notification_id", sa.BigInteger, primary_key=True),
    sa.Column("error_type", sa.String(100), nullable=False),
    sa.Column("message", sa.String(300), nullable=False),  # never a value of the event
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
)

# Part of every fingerprint: read tables made by an older tracking mechanism are
# remade and replayed at start.
MECHANISM = "projection_tracking/1"


def fingerprint(metadata: sa.MetaData) -> str:
    """What the code expects the read tables to look like."""
    shape = [
        (t.name, [(c.name, str(c.type), bool(c.nullable), bool(c.primary_key)) for c in t.c])
        for t in metadata.sorted_tables
    ]
    return hashlib.sha256(json.dumps([MECHANISM, shape]).encode()).hexdigest()


def ensure_read_tables(engine: Engine, name: str, metadata: sa.MetaData) -> bool:
    """Create the read tables. If one is missing, or they were made by another version
    of the code, drop them all (and their tracking) and make them afresh, in one
    transaction that other processes wait for. Returns True when they were (re)made
    empty: the caller then replays its events into them."""
    expected = fingerprint(metadata)
    with engine.begin() as conn:
        lock_ddl(conn)
        projection_metadata.create_all(conn)
        inspector = sa.inspect(conn)
        complete = all(inspector.has_table(t.name) for t in metadata.sorted_tables)
        stored = conn.execute(sa.select(read_model_schema.c.fingerprint)
                              .where(read_model_schema.c.name == name)).scalar()
        if complete and stored == expected:
            return False
        metadata.drop_all(conn)
        metadata.create_all(conn)
        for table in (projection_tracking, projection_failures):
            conn.execute(sa.delete(table).where(table.c.projection == name))
        conn.execute(sa.delete(read_model_schema).where(read_model_schema.c.name == name))
        conn.execute(sa.insert(read_model_schema).values(name=name, fingerprint=expected))
    return True
