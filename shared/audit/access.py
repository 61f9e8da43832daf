"""Who read what: a read of personal data recorded as an event before it is shown.

The Caldicott principles ask that access to identifiable data is on a need-to-know basis;
this makes that checkable. Each read of personal data (a caller's details, a contact's
summary, a text thread, a referral, a supporter's contact details, a meeting's address, an audit
replay that shows personal data) is saved as a ``RecordRead`` of its own, in the
service's own log, before the answer is sent: who (``meta``, from the request's
principal), when (the event's time), which record (``kind`` and ``record_id``) and the
stated purpose, sealed with the record's subject key (free text may name people; it
is shredded with them). A read that cannot be recorded is not answered.

A read is an aggregate of its own, not an event on the record read: reading never
changes a record's version (its ETag), so readers never make writers' ``If-Match``
stale. ``reads_of`` finds a record's reads for the audit replay. The caller history's
reads are older and stay where they are (``Caller.HistoryRead``).

The event's class is stored by name (``shared.audit.access:RecordRead.Recorded``):
never move or rename it. On the bus it is the default public event (its name, no data).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any, Protocol

from eventsourcing.utils import get_topic

from shared.kernel import TOKEN_PREFIX, Aggregate, is_sealed, one_of, require_sealed

KINDS = frozenset({"caller", "contact", "text_thread", "referral", "supporter", "meeting",
                   "audit_replay"})
PAGE = 1_000


class Sealer(Protocol):
    def seal(self, subject_id: str, plaintext: str | None) -> str | None: ...

    def is_erased(self, subject_id: str) -> bool: ...


class RecordRead(Aggregate):
    """One read of a record's personal data."""

    class Recorded(Aggregate.Created):
        kind: str
        record_id: str
        purpose: str | None  # sealed with the record's subject key; None: not stated
        meta: dict[str, str]

    def __init__(self, *, kind: str, record_id: str, purpose: str | None,
                 meta: dict[str, str]) -> None:
        self.kind = kind
        self.record_id = record_id
        self.purpose = purpose
        self.by = meta.get("actor", "")

    @classmethod
    def record(cls, *, kind: str, record_id: str, purpose: str | None) -> RecordRead:
        return cls._create(cls.Recorded, id=uuid.uuid4(), kind=one_of("kind", kind, KINDS),
                           record_id=str(record_id),
                           purpose=require_sealed("purpose", purpose))


def record_read(app: Any, keys: Sealer | None, *, kind: str, record_id: object,
                subject: object | None = None, purpose: str | None = None) -> None:
    """Save the read (who acts comes from the request). The purpose is sealed with
    ``subject``'s key; none is kept for an erased subject, or where there is no key."""
    record_reads(app, keys, kind=kind, records=[(record_id, subject)], purpose=purpose)


def record_reads(app: Any, keys: Sealer | None, *, kind: str,
                 records: list[tuple[object, object | None]],
                 purpose: str | None = None) -> None:
    """Several reads of one kind (a page of a list), saved in one transaction: each
    ``(record_id, subject)``."""
    reads = []
    for record_id, subject in records:
        sealed = None
        if purpose and keys is not None and subject is not None \
                and not keys.is_erased(str(subject)):
            sealed = keys.seal(str(subject), purpose)
        reads.append(RecordRead.record(kind=kind, record_id=str(record_id), purpose=sealed))
    if reads:
        app.save(*reads)


def sealed_subject(events: Any) -> str | None:
    """The data subject of the first sealed value in ``events`` (each a domain event):
    whose key seals the record's personal data. None: the record holds none."""
    stack: list[Any] = [vars(e) for e in events]
    while stack:
        value = stack.pop(0)
        if is_sealed(value):
            return str(value)[len(TOKEN_PREFIX):].rpartition(":")[0]
        if isinstance(value, dict):
            stack.extend(value.values())
        elif isinstance(value, list | tuple):
            stack.extend(value)
    return None


def reads_of(app: Any, record_id: object, *, until: datetime | None = None,
             kinds: frozenset[str] = KINDS) -> list[RecordRead.Recorded]:
    """The recorded reads of ``record_id`` (optionally up to ``until``), oldest first."""
    wanted = str(record_id)
    return [e for e in _reads(app) if e.record_id == wanted and e.kind in kinds
            and (until is None or e.timestamp <= until)]


def _reads(app: Any) -> Iterator[RecordRead.Recorded]:
    topic = get_topic(RecordRead.Recorded)
    start = 0
    while True:
        page = app.recorder.select_notifications(start=start, limit=PAGE, topics=[topic],
                                                 inclusive_of_start=False)
        for n in page:
            yield app.mapper.to_domain_event(n)
        if len(page) < PAGE:
            return
        start = page[-1].id
