"""Where a service keeps its data, chosen by settings and nowhere else.

- SQLite (default): one file per service, ``<data_dir>/<service>.sqlite``, in WAL mode.
  The data directory is 0700 and the files 0600 (they hold sealed personal data and
  the keys' wrapped copies), whatever the umask.
- PostgreSQL (``SOLIDARITY_DATABASE_URL``): one schema per service.

The event store (the eventsourcing library) and the service's own SQL tables (relay
position, idempotency keys, projection tracking, read models) live in the same database,
so a consumer can record tracking in the same transaction as what it writes.

With the database gone, nothing waits long: every connection is bounded by
``db_pool_timeout_s`` (the library's pool, SQLAlchemy's pool and libpq's connect). Two
processes that start at once create the schema and tables one after the other
(``startup_lock``), and so do read-table rebuilds (``lock_ddl``). Statements that fail
are reported without their bound parameters (row values may be personal data).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import math
import os
import re
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, Engine

from shared.config import Settings

# The PostgreSQL schema of each engine made here (for the DDL lock of its read tables).
_schemas: weakref.WeakKeyDictionary[Engine, str] = weakref.WeakKeyDictionary()


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


def pool_timeout_s(settings: Settings) -> float:
    """How long a request waits for a database connection before it fails."""
    return float(getattr(settings, "db_pool_timeout_s", 5.0))


def _connect_timeout(settings: Settings) -> int:
    # libpq counts whole seconds and treats anything under 2 as 2.
    return max(2, math.ceil(pool_timeout_s(settings)))


def eventsourcing_env(settings: Settings, service: str) -> dict[str, str]:
    """The eventsourcing ``Application`` environment for one service (its PostgreSQL
    schema is created here if it does not exist: the library does not create it)."""
    if settings.database_url:
        pg = PostgresParams.from_url(settings.database_url)
        ensure_schema(pg, settings.schema_for(service), settings)
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
            # The library's pool: how long a caller waits for a connection (an int).
            "POSTGRES_CONNECT_TIMEOUT": str(max(1, math.ceil(pool_timeout_s(settings)))),
            "CREATE_TABLE": "y",
        }
    path = private_sqlite_file(settings, service)
    return {
        "PERSISTENCE_MODULE": "eventsourcing.sqlite",
        "SQLITE_DBNAME": str(path),
        "SQLITE_LOCK_TIMEOUT": "30",
        "CREATE_TABLE": "y",
    }


def private_data_dir(settings: Settings) -> Path:
    """The data directory, made if missing, readable by this user only."""
    settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(settings.data_dir, 0o700)
    return settings.data_dir


def protect_data_dir(settings: Settings) -> None:
    """The data directory readable by this user only, if there is one (with PostgreSQL
    it holds only generated secrets, when there are any)."""
    if settings.data_dir.is_dir():
        os.chmod(settings.data_dir, 0o700)


def private_sqlite_file(settings: Settings, service: str) -> Path:
    """The service's SQLite file, made 0600 before SQLite opens it (SQLite gives its
    -wal and -shm files the mode of the database file)."""
    private_data_dir(settings)
    path = settings.sqlite_path(service)
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    for name in (path.name, path.name + "-wal", path.name + "-shm", path.name + "-journal"):
        with contextlib.suppress(FileNotFoundError):
            os.chmod(path.with_name(name), 0o600)
    return path


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
        ensure_schema(pg, schema, settings)
        engine = sa.create_engine(
            pg.sqlalchemy_url(),
            pool_pre_ping=True,
            pool_size=3,
            max_overflow=5,
            pool_timeout=pool_timeout_s(settings),
            hide_parameters=True,
            connect_args={"options": f"-csearch_path={schema}",
                          "connect_timeout": _connect_timeout(settings)},
        )
        _schemas[engine] = schema
        return engine
    path = private_sqlite_file(settings, service)
    engine = sa.create_engine(
        f"sqlite:///{path}",
        hide_parameters=True,
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


def _lock_key(kind: str, name: str) -> int:
    """A stable 64-bit advisory-lock key for (kind, schema)."""
    digest = hashlib.sha256(f"solidarity:{kind}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _admin_engine(pg: PostgresParams, settings: Settings | None, **kw: Any) -> Engine:
    timeout = _connect_timeout(settings) if settings is not None else 5
    return sa.create_engine(pg.sqlalchemy_url(), poolclass=sa.pool.NullPool,
                            hide_parameters=True,
                            connect_args={"connect_timeout": timeout}, **kw)


def _create_schema_in(conn: Connection, schema: str) -> None:
    """Create the schema if it is missing, under a transaction lock (two processes at
    once would otherwise fail with "tuple concurrently updated")."""
    if not SCHEMA_NAME.match(schema):
        raise ValueError(
            f"schema name {schema!r}: use lower-case letters, digits and _ "
            "(SOLIDARITY_DB_SCHEMA_PREFIX)"
        )
    conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _lock_key("schema", schema)})
    exists = conn.execute(
        sa.text("SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = :s"), {"s": schema}
    ).first()
    if exists is None:
        conn.execute(sa.text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))


def ensure_schema(pg: PostgresParams, schema: str, settings: Settings | None = None) -> None:
    """Create the service's schema, if it is missing, before the event store creates its
    tables in it. Only an existing schema is needed at start (no CREATE on the database)."""
    engine = _admin_engine(pg, settings)
    try:
        with engine.begin() as conn:
            _create_schema_in(conn, schema)
    finally:
        engine.dispose()


@contextlib.contextmanager
def startup_lock(settings: Settings, service: str) -> Iterator[None]:
    """Held while a process makes a service's schema and tables at start: a second
    process starting at the same moment waits, then finds them made. PostgreSQL: a
    session advisory lock per schema; SQLite: an exclusive lock on a file beside the
    store."""
    if not settings.database_url:
        path = private_data_dir(settings) / f".{service}.lock"
        fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock
        return
    pg = PostgresParams.from_url(settings.database_url)
    key = _lock_key("startup", settings.schema_for(service))
    engine = _admin_engine(pg, settings, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": key})
            try:
                yield
            finally:
                with contextlib.suppress(sa.exc.DBAPIError):
                    conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
    finally:
        engine.dispose()


def lock_ddl(conn: Connection) -> None:
    """Inside a transaction about to make or drop read tables: on PostgreSQL, wait for
    any other process doing the same in this schema, and (re)create the schema if it
    was dropped. SQLite's BEGIN IMMEDIATE already holds the one write lock."""
    if conn.dialect.name != "postgresql":
        return
    schema = _schemas.get(conn.engine)
    if schema is None:  # an engine made elsewhere: its search path's first schema
        schema = str(conn.execute(sa.text("SELECT current_schema()")).scalar() or "public")
    else:
        _create_schema_in(conn, schema)
    conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _lock_key("tables", schema)})


def is_data_error(e: BaseException) -> bool:
    """Whether applying failed because of the event (its values, its shape), not
    because of the database (gone, locked, a table missing)."""
    if isinstance(e, sa_exc.DataError | sa_exc.IntegrityError):
        return True
    if isinstance(e, sa_exc.DBAPIError):  # operational, programming, interface...
        return False
    if isinstance(e, sa_exc.SQLAlchemyError):  # a value no column type can take
        return isinstance(e, sa_exc.StatementError)
    return isinstance(e, Exception) and not isinstance(e, OSError | MemoryError)


def describe(e: BaseException) -> tuple[str, str]:
    """(error type, message) without any value of the event: database messages may
    quote them ("Failing row contains ..."), so only codes and names are kept."""
    orig = getattr(e, "orig", None) if isinstance(e, sa_exc.StatementError) else None
    if orig is None:
        return type(e).__name__, f"{type(e).__name__} while applying the event"
    parts = [type(e).__name__]
    code = getattr(orig, "sqlstate", None) or getattr(orig, "sqlite_errorname", None)
    if code:
        parts.append(f"code {code}")
    diag = getattr(orig, "diag", None)
    for what in ("table_name", "column_name", "constraint_name"):
        value = getattr(diag, what, None) if diag is not None else None
        if value:
            parts.append(f"{what.split('_')[0]} {value}")
    return type(orig).__name__[:100], "; ".join(parts)[:300]


def drop_schemas(settings: Settings, services: tuple[str, ...]) -> None:
    """Drop the services' schemas (tests only)."""
    if not settings.database_url:
        return
    pg = PostgresParams.from_url(settings.database_url)
    engine = _admin_engine(pg, settings)
    try:
        with engine.begin() as conn:
            for service in services:
                schema = settings.schema_for(service)
                conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    finally:
        engine.dispose()
