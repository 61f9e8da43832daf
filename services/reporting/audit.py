"""Reporting as the keeper of the other services' audit trail (issue 12).

- **Checkpoints.** Every service publishes the signed head of its audit chain on the bus
  (``shared.messaging.bus``, the audit stream). Reporting keeps each one whose signature
  holds with a trusted key in its own ``audit_checkpoints`` (``CheckpointStore``); one
  that is malformed or not signed by a trusted key is counted and shown in health, never
  kept. So rewriting a service's history consistently must also change reporting's
  database and forge a signature.
- **A rewound source.** Reporting remembers the chain hash of every event it applied, per
  source (``rm_chain_hashes``, written by ``Chained`` in the same transaction as the
  event's effect and its tracking). A source whose store was restored from an older
  backup numbers its new events with ids reporting already applied: they used to be
  taken for duplicates and silently dropped. Now (``ChainKeeper``, the consumers'
  ``SourceGuard``) an event that repeats an applied id with another chain hash, a source
  that no longer holds the event applied last, or a checkpoint whose head differs from
  the hash applied at its id marks the source rewound (``rm_source_rewound``): nothing
  more of it is applied, health says ``source_rewound`` (and "degraded") and the
  dashboard shows it, until a rebuild empties the flag with the read tables and replays
  the source as it now is.
- Events without a chain hash (published before the chain existed) are never flagged.
  Nothing here is personal data: ids, hashes, key ids and times.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, Engine

from services.reporting.read_model import metadata
from shared.audit import BadCheckpoint, Checkpoint, CheckpointStore, verify_signature
from shared.audit.checkpoint import audit_checkpoints
from shared.eventstore.bulk import Many, id_ranges
from shared.eventstore.readtables import Instant, from_ts
from shared.logging import get_logger
from shared.messaging.envelope import IntegrationEvent

log = get_logger("audit")

ACTION = ("the source's store was rewound or restored: check it with `solidarity audit "
          "verify`, then rebuild reporting's read models (`solidarity reporting rebuild`)")
REASONS = {
    "hash_differs": "an event repeats a notification id already applied, with another "
                    "chain hash",
    "event_gone": "the source no longer holds the last event applied from it",
    "checkpoint_differs": "a checkpoint signed at a notification id already applied has "
                          "another chain hash",
}

chain_hashes = sa.Table(
    "rm_chain_hashes",
    metadata,
    sa.Column("upstream", sa.String(50), primary_key=True),
    sa.Column("notification_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("chain_hash", sa.String(64), nullable=False),
)

source_rewound = sa.Table(
    "rm_source_rewound",
    metadata,
    sa.Column("upstream", sa.String(50), primary_key=True),
    sa.Column("notification_id", sa.BigInteger, nullable=False),
    sa.Column("reason", sa.String(40), nullable=False),
    sa.Column("detected_at", Instant, nullable=False),
)

REMEMBER = Many(chain_hashes, ("upstream", "notification_id", "chain_hash"))
Apply = Callable[[Connection, Any], None]
ApplyPage = Callable[[Connection, Sequence[Any]], None]


class Chained:
    """Reporting's ``apply`` (and ``page``, its ``apply_page``), remembering each event's
    chain hash beside its effect. The composition root asks it for the keeper of its
    sources' chains (``keeper``)."""

    def __init__(self, apply: Apply, apply_page: ApplyPage | None = None) -> None:
        self.inner = apply
        self.inner_page = apply_page

    def __call__(self, conn: Connection, ev: IntegrationEvent) -> None:
        self._remember(conn, [ev])
        self.inner(conn, ev)

    def page(self, conn: Connection, events: Sequence[IntegrationEvent]) -> None:
        self._remember(conn, events)
        if self.inner_page is not None:
            self.inner_page(conn, events)
        else:
            for ev in events:
                self.inner(conn, ev)

    @staticmethod
    def _remember(conn: Connection, events: Sequence[IntegrationEvent]) -> None:
        REMEMBER.run(conn, [(ev.service, ev.notification_id, ev.chain_hash)
                            for ev in events if ev.chain_hash is not None])

    @staticmethod
    def keeper(engine: Engine, trusted: Iterable[str],
               on_flag: Callable[[], None] | None = None) -> ChainKeeper:
        return ChainKeeper(engine, trusted, on_flag)


def alerts(conn: Connection) -> list[dict[str, Any]]:
    """The sources marked rewound, in the order they were found (the dashboard's
    ``audit_alerts``; health's ``source_rewound``)."""
    t = source_rewound.c
    rows = conn.execute(sa.select(t.upstream, t.notification_id, t.reason, t.detected_at)
                        .order_by(t.detected_at, t.upstream)).mappings().all()
    return [{"kind": "source_rewound", "upstream": r["upstream"],
             "notification_id": int(r["notification_id"]), "reason": r["reason"],
             "detail": REASONS.get(r["reason"], r["reason"]),
             "detected_at": from_ts(r["detected_at"]), "action": ACTION} for r in rows]


class ChainKeeper:
    """Follows the sources' chains for reporting's read model (see the module): the
    consumers' ``SourceGuard``, and the keeper of the checkpoints the bus brings."""

    def __init__(self, engine: Engine, trusted: Iterable[str],
                 on_flag: Callable[[], None] | None = None) -> None:
        self.engine = engine
        self.trusted = frozenset(trusted)
        self.on_flag = on_flag
        self.checkpoints = CheckpointStore(engine)
        self._lock = threading.Lock()
        self.received = self.kept = self.rejected = 0
        self.last_rejected: dict[str, Any] | None = None

    # -- the consumers' guard --------------------------------------------------------
    def admits(self, upstream: str, events: Sequence[IntegrationEvent]) -> bool:
        hashed = {e.notification_id: e.chain_hash for e in events if e.chain_hash}
        try:
            with self.engine.connect() as conn:
                if self._flagged(conn, upstream):
                    return False
                stored = self._stored(conn, upstream, list(hashed))
        except sa_exc.DBAPIError:  # its tables are gone: the projection remakes them
            return True
        for nid in sorted(stored):
            if stored[nid] != hashed[nid]:
                self.flag(upstream, nid, "hash_differs")
                return False
        return True

    def admits_last(self, upstream: str, last: int, found: IntegrationEvent | None) -> bool:
        try:
            with self.engine.connect() as conn:
                if self._flagged(conn, upstream):
                    return False
                stored = self._stored(conn, upstream, [last]).get(last)
        except sa_exc.DBAPIError:
            return True
        if stored is None:  # applied without a chain hash: never flagged
            return True
        if found is None:
            self.flag(upstream, last, "event_gone")
            return False
        if found.chain_hash is not None and found.chain_hash != stored:
            self.flag(upstream, last, "hash_differs")
            return False
        return True

    @staticmethod
    def _flagged(conn: Connection, upstream: str) -> bool:
        return conn.execute(sa.select(source_rewound.c.upstream)
                            .where(source_rewound.c.upstream == upstream)).first() is not None

    @staticmethod
    def _stored(conn: Connection, upstream: str, ids: list[int]) -> dict[int, str]:
        """The hashes applied at ``ids``: a page's in one range query (``id_ranges``)."""
        wanted, t = sorted(set(ids)), chain_hashes.c
        keep, out = set(wanted), dict[int, str]()
        for where in id_ranges(t.notification_id, wanted):
            rows = conn.execute(sa.select(t.notification_id, t.chain_hash).where(
                t.upstream == upstream, where))
            out.update((n, h) for n, h in ((int(n), h) for n, h in rows) if n in keep)
        return out

    def flag(self, upstream: str, notification_id: int, reason: str) -> None:
        """Mark ``upstream`` rewound (the first finding stands until a rebuild)."""
        try:
            with self.engine.begin() as conn:
                conn.execute(sa.insert(source_rewound).values(
                    upstream=upstream, notification_id=notification_id, reason=reason,
                    detected_at=datetime.now(UTC)))
        except sa_exc.IntegrityError:
            return  # already marked
        log.warning("source_rewound", upstream=upstream, notification_id=notification_id,
                    reason=reason)
        if self.on_flag is not None:
            self.on_flag()

    def rewound(self) -> dict[str, dict[str, Any]]:
        """Each source marked rewound: what was found, where, and what to do."""
        with self.engine.connect() as conn:
            return {a["upstream"]: {**a, "detected_at": a["detected_at"].isoformat()}
                    for a in alerts(conn)}

    # -- checkpoints from the bus ----------------------------------------------------
    def keep(self, raw: bytes) -> bool:
        """Keep a checkpoint from the bus if its signature holds with a trusted key, and
        compare its head with the hash applied at its id. False if refused or kept
        before. A database error is raised (the message is delivered again)."""
        with self._lock:
            self.received += 1
        try:
            cp = Checkpoint.from_dict(json.loads(raw))
        except (ValueError, BadCheckpoint):  # JSON, UTF-8 and shape errors alike
            self._refuse(None, "malformed")
            return False
        if not verify_signature(cp, self.trusted):
            self._refuse(cp, "signature")
            return False
        added = self.checkpoints.add(cp)
        if added:
            with self._lock:
                self.kept += 1
        with self.engine.connect() as conn:
            stored = self._stored(conn, cp.service, [cp.notification_id]).get(
                cp.notification_id)
        if stored is not None and stored != cp.head:
            self.flag(cp.service, cp.notification_id, "checkpoint_differs")
        return added

    def _refuse(self, cp: Checkpoint | None, reason: str) -> None:
        with self._lock:
            self.rejected += 1
            self.last_rejected = {
                "reason": reason, "at": datetime.now(UTC).isoformat(),
                "service": cp.service if cp else None,
                "notification_id": cp.notification_id if cp else None,
                "key_id": cp.key_id if cp else None}
        log.warning("checkpoint_refused", reason=reason,
                    service=cp.service if cp else None, key_id=cp.key_id if cp else None)

    def status(self) -> dict[str, Any]:
        """For health: the checkpoints received, kept and refused since start (with the
        last refusal), and how many are held per service."""
        c = audit_checkpoints.c
        with self.engine.connect() as conn:
            held = {s: int(n) for s, n in conn.execute(
                sa.select(c.service, sa.func.count()).group_by(c.service))}
        with self._lock:
            return {"received": self.received, "kept": self.kept,
                    "rejected": self.rejected, "last_rejected": self.last_rejected,
                    "held": held}
