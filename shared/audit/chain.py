"""The hash chain over a service's notification log: every stored event linked to the one
before it, so that changing, deleting, inserting or reordering a stored event shows.

Each link is SHA-256 over an unambiguous encoding (fixed-width integers, length-prefixed
strings) of the previous link, the notification id, the aggregate id and version, the
event's topic and its stored bytes. The stored bytes are what the event store holds:
ciphertext where the service seals personal data, so destroying a subject's key
(crypto-shredding) leaves every link intact.

The links live in the service's own database, beside its events (table ``audit_chain``:
one row per notification id, never two hashes for one id). ``Chainer`` extends it from
its last row over every newer notification, a page per transaction. It is cheap to call
after every save (``app.add_save_listener(chainer.saved)``) and safe when two processes
extend the same chain at once: each page is written only on top of the head it was
computed from, and the primary key refuses a second hash for an id (the loser re-reads
the head and carries on from there).

This module knows nothing of HTTP, NATS or any particular service.
"""

from __future__ import annotations

import hashlib
import itertools
import struct
import threading
from collections.abc import Iterable, Sequence
from typing import Any, Protocol
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, Engine

from shared.eventstore.bulk import id_ranges
from shared.eventstore.store import lock_ddl

GENESIS = bytes(32)  # the "previous link" of the first event
DOMAIN = b"solidarity.audit.chain.v1\x00"
PAGE = 1000

audit_metadata = sa.MetaData()

audit_chain = sa.Table(
    "audit_chain",
    audit_metadata,
    sa.Column("notification_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("hash", sa.LargeBinary(32), nullable=False),
)


class EventLike(Protocol):
    """What a link covers: the fields of a stored notification."""

    @property
    def id(self) -> int: ...
    @property
    def originator_id(self) -> UUID | str: ...
    @property
    def originator_version(self) -> int: ...
    @property
    def topic(self) -> str: ...
    @property
    def state(self) -> bytes: ...


class NotificationLog(Protocol):
    """The part of the library's application recorder the chain reads."""

    def select_notifications(
        self, start: int | None, limit: int, stop: int | None = None,
        topics: Sequence[str] = (), *, inclusive_of_start: bool = True,
    ) -> Sequence[Any]: ...

    def max_notification_id(self) -> int | None: ...


_HEAD = struct.Struct(">32sqQ")
_MID = struct.Struct(">qQ")
_LEN = struct.Struct(">Q")


def originator_text(originator_id: UUID | str) -> bytes:
    """The aggregate id as the link encodes it: a UUID as its 16 bytes, tagged ``u``
    (SQLite keeps it as 32 hex digits, PostgreSQL as a uuid: both read back as a UUID);
    any other id as its UTF-8 text, tagged ``s``."""
    if isinstance(originator_id, UUID):
        return b"u" + originator_id.bytes
    return b"s" + originator_id.encode()


_sha256 = hashlib.sha256


def link_fields(prev: bytes, notification_id: int, originator: bytes, version: int,
                topic: bytes, state: bytes) -> bytes:
    """The link from already-encoded fields (the verifier's inner loop)."""
    return _sha256(b"".join((DOMAIN, _HEAD.pack(prev, notification_id, len(originator)),
                             originator, _MID.pack(version, len(topic)), topic,
                             _LEN.pack(len(state)), state))).digest()


_topics: dict[str, bytes] = {}  # a service has a few dozen event types


def link(prev: bytes, n: EventLike) -> bytes:
    """The chain's hash at ``n``, given the hash of the notification before it
    (``GENESIS`` for the first). The same as ``link_fields``, inlined: it runs once per
    event when chaining and verifying."""
    if len(prev) != 32:
        raise ValueError("a previous link is 32 bytes")
    o = n.originator_id
    ob = b"u" + o.bytes if isinstance(o, UUID) else b"s" + o.encode()
    t = n.topic
    tb = _topics.get(t)
    if tb is None:
        tb = t.encode()
        if len(_topics) < 4096:
            _topics[t] = tb
    s = n.state
    return _sha256(b"".join((DOMAIN, _HEAD.pack(prev, n.id, len(ob)), ob,
                             _MID.pack(n.originator_version, len(tb)), tb,
                             _LEN.pack(len(s)), s))).digest()


def chain_of(events: Iterable[EventLike], prev: bytes = GENESIS) -> list[tuple[int, bytes]]:
    """The links of ``events`` in order, starting from ``prev``."""
    out = []
    for n in events:
        prev = link(prev, n)
        out.append((n.id, prev))
    return out


def ensure_tables(engine: Engine, metadata: sa.MetaData = audit_metadata) -> None:
    """Create the audit tables if missing (other processes making tables in the same
    schema wait, as for read tables)."""
    with engine.begin() as conn:
        lock_ddl(conn)
        metadata.create_all(conn)


def read_head(conn: Connection) -> tuple[int, bytes]:
    """The last link stored: (notification id, hash), or (0, GENESIS) for none."""
    row = conn.execute(
        sa.select(audit_chain.c.notification_id, audit_chain.c.hash)
        .order_by(audit_chain.c.notification_id.desc()).limit(1)
    ).first()
    return (0, GENESIS) if row is None else (int(row[0]), bytes(row[1]))


def read_links(engine: Engine, after: int, limit: int,
               stop: int | None = None) -> list[tuple[int, bytes]]:
    """Up to ``limit`` stored links after ``after`` (and up to ``stop``), in order."""
    query = sa.select(audit_chain.c.notification_id, audit_chain.c.hash).where(
        audit_chain.c.notification_id > after)
    if stop is not None:
        query = query.where(audit_chain.c.notification_id <= stop)
    with engine.connect() as conn:
        rows = conn.execute(query.order_by(audit_chain.c.notification_id).limit(limit)).all()
    return [(i, h if type(h) is bytes else bytes(h)) for i, h in rows]


class Chainer:
    """Extends one service's chain over its notification log.

    ``catch_up()`` chains everything not yet chained; ``saved`` is the save listener
    (it chains the events just saved without reading them back when they follow the
    head this process knows). Thread-safe; safe across processes (see the module)."""

    def __init__(self, recorder: NotificationLog, engine: Engine, *,
                 page_size: int = PAGE) -> None:
        self.recorder = recorder
        self.engine = engine
        self.page_size = page_size
        self._lock = threading.Lock()
        self._head: tuple[int, bytes] | None = None  # as this process last wrote or read it
        ensure_tables(engine)

    def head(self) -> tuple[int, bytes]:
        """The chain's head as stored now: (notification id, hash)."""
        with self.engine.connect() as conn:
            return read_head(conn)

    def catch_up(self) -> tuple[int, bytes]:
        """Chain every notification after the stored head. Returns the new head. (It
        starts from the head as stored, not as this process last knew it: a store put
        back from a backup is chained again from where its chain now ends.)"""
        with self._lock:
            head = self.head()
            while True:
                batch = self.recorder.select_notifications(
                    start=head[0], limit=self.page_size, inclusive_of_start=False)
                if not batch:
                    self._head = head
                    return head
                head = self._append(head, batch)

    def saved(self, recordings: Sequence[Any]) -> None:
        """The save listener: chain the events just saved (``Recording``s)."""
        if not recordings:
            return
        notes = sorted((r.notification for r in recordings), key=lambda n: n.id)
        with self._lock:
            head = self._head
            if head is not None and notes[0].id == head[0] + 1 and all(
                    b.id == a.id + 1 for a, b in itertools.pairwise(notes)):
                self._head = self._append(head, notes)
                if self._head[0] >= notes[-1].id:
                    return
        self.catch_up()

    def _append(self, head: tuple[int, bytes], batch: Sequence[EventLike]) -> tuple[int, bytes]:
        """Write the links of ``batch`` on top of ``head`` in one transaction, if ``head``
        is still the stored head. Returns the stored head afterwards: the new one, or
        the one another process wrote meanwhile (the caller carries on from it)."""
        rows, prev = [], head[1]
        for n in batch:
            prev = link(prev, n)
            rows.append({"notification_id": n.id, "hash": prev})
        try:
            with self.engine.begin() as conn:
                current = read_head(conn)
                if current != head:
                    return current  # someone else chained meanwhile (or it changed)
                conn.execute(sa.insert(audit_chain), rows)
        except sa_exc.IntegrityError:  # another process wrote these ids first
            with self.engine.connect() as conn:
                return read_head(conn)
        return batch[-1].id, prev

    def hashes(self, ids: Iterable[int], *, catch_up: bool = True) -> dict[int, bytes]:
        """The stored link of each of ``ids`` (the relay puts it on the integration
        event). Ids not chained yet are chained first (``catch_up``); an id with no
        event is left out."""
        wanted = sorted(set(ids))
        if not wanted:
            return {}
        found = self._select(wanted)
        if catch_up and len(found) < len(wanted):
            self.catch_up()
            found = self._select(wanted)
        return found

    def _select(self, ids: list[int]) -> dict[int, bytes]:
        """The stored links of ``ids`` (sorted, distinct): a page of the log is one range
        read, others in IN lists (``bulk.id_ranges``)."""
        out: dict[int, bytes] = {}
        query = sa.select(audit_chain.c.notification_id, audit_chain.c.hash)
        wanted = None if ids and ids[-1] - ids[0] + 1 == len(ids) else set(ids)
        with self.engine.connect() as conn:
            for where in id_ranges(audit_chain.c.notification_id, ids):
                for n, h in conn.execute(query.where(where)).all():
                    if wanted is None or n in wanted:
                        out[int(n)] = h if type(h) is bytes else bytes(h)
        return out
