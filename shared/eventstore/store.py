"""Where a service keeps its data, chosen by settings and nowhere else.

- SQLite (default): one file per service, ``<data_dir>/<service>.sqlite``, in WAL mode.
- PostgreSQL (``SOLIDARITY_DATABASE_URL``): one schema per service.

The event store (the eventsourcing library) and the service's own SQL tables (relay
position, idempotency keys, projection tracking, read models) live in the same database,
so a consumer can record tracking in the same transaction as what it writes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from shared.config import Settings


@dataclass(frozen=True)
class PostgresParams:
    host: str
    port: int
    user: str
    password: str
    dbname: str

    @classmethod
    def from_url(cls, url: str) -> PostgresParams:
        parts = urlsplit(url)
        if parts.scheme.split("+")[0] not in {"postgresql", "postgres"}:
            raise ValueError("SOLIDARITY_DATABASE_URL must be a postgresql:// URL")
        return cls(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or 5432,
            user=unquote(parts.username or "postgres"),
            password=unquote(parts.password or ""),
            dbname=(parts.path or "/postgres").lstrip("/") or "postgres",
        )

    def sqlalchemy_url(self) -> sa.URL:
        return sa.URL.create(
            "postgresql+psycopg",
            username=self.user,
            password=self.password or None,
            host=self.host,
            port=self.port,
            database=self.dbname,
        )


def eventsourcing_env(settings: Settings, service: str) -> dict[str, str]:
    """The eventsourcing ``Application`` environment for one service (its PostgreSQL
    schema is created here if it does not exist: the library does not create it)."""
    if settings.database_url:
        pg = PostgresParams.from_url(settings.database_url)
        ensure_schema(pg, settings.schema_for(service))
        return {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "POSTGRES_DBNAME": pg.dbname,
            "POSTGRES_HOST": pg.host,
            "POSTGRES_PORT": str(pg.port),
            "POSTGRES_USER": pg.user,
            "POSTGRES_PASSWORD": pg.password,
            "POSTGRES_SCHEMA": settings.schema_for(service),
            "POSTGRES_POOL_SIZE": "3",
            "POSTGRES_MAX_OVERFLOW": "5",
            "POSTGRES_PRE_PING": "y",
            "CREATE_TABLE": "y",
        }
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return {
        "PERSISTENCE_MODULE": "eventsourcing.sqlite",
        "SQLITE_DBNAME": str(settings.sqlite_path(service)),
        "SQLITE_LOCK_TIMEOUT": "30",
        "CREATE_TABLE": "y",
    }


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=30000")
    # These connections write the service's own tables (read models, positions, keys,
    # indexes), not its events: NORMAL is safe in WAL mode (no corruption), and a power
    # cut can only undo the last commits, which the projections replay and the relay
    # republishes (at-least-once). The event store keeps the library's own setting.
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def create_engine(settings: Settings, service: str) -> Engine:
    """A SQLAlchemy engine on the service's own database (file or schema)."""
    if settings.database_url:
        pg = PostgresParams.from_url(settings.database_url)
        schema = settings.schema_for(service)
        ensure_schema(pg, schema)
        return sa.create_engine(
            pg.sqlalchemy_url(),
            pool_pre_ping=True,
            pool_size=3,
            max_overflow=5,
            connect_args={"options": f"-csearch_path={schema}"},
        )
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(
        f"sqlite:///{settings.sqlite_path(service)}",
        connect_args={"timeout": 30, "check_same_thread": False},
    )
    sa.event.listen(engine, "connect", _sqlite_pragmas)
    # Let SQLite's own BEGIN take the write lock early ("BEGIN IMMEDIATE") so two writers
    # queue on busy_timeout rather than failing at upgrade time.
    sa.event.listen(engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN IMMEDIATE"))

    @sa.event.listens_for(engine, "connect")
    def _no_pysqlite_begin(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None

    return engine


SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def ensure_schema(pg: PostgresParams, schema: str) -> None:
    """Create the service's schema, if it is missing, before the event store creates its
    tables in it. Only an existing schema is needed at start (no CREATE on the database)."""
    if not SCHEMA_NAME.match(schema):
        raise ValueError(
            f"schema name {schema!r}: use lower-case letters, digits and _ "
            "(SOLIDARITY_DB_SCHEMA_PREFIX)"
        )
    engine = sa.create_engine(pg.sqlalchemy_url(), poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as conn:
            exists = conn.execute(
                sa.text("SELECT 1 FROM information_schema.schemata WHERE schema_name = :s"),
                {"s": schema},
            ).first()
            if exists is None:
                conn.execute(sa.text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
    finally:
        engine.dispose()


def drop_schemas(settings: Settings, services: tuple[str, ...]) -> None:
    """Drop the services' schemas (tests only)."""
    if not settings.database_url:
        return
    pg = PostgresParams.from_url(settings.database_url)
    engine = sa.create_engine(pg.sqlalchemy_url(), poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as conn:
            for service in services:
                schema = settings.schema_for(service)
                conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    finally:
        engine.dispose()
