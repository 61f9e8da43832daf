"""The outreach service's roster (shift events -> who may attend) and its part of a
caller's erasure (contact's CallerErased -> outreach's key for them destroyed), on the
application built by the composition root (``app_runtime``), SQLite and PostgreSQL:
the events are applied as the platform's consumers apply them (the roster's projection,
the erasure ``Reactor``), with their tracking. Over real NATS: tests/system/
test_outreach_roster.py."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa

from services.outreach import handlers, roster
from services.system import ServiceRuntime
from shared.config import Settings
from shared.eventstore.reactions import Reactor
from shared.eventstore.store import PostgresParams
from shared.messaging.envelope import IntegrationEvent, envelope_id
from shared.privacy import KeyStore
from shared.privacy.keys import ErasedSubject, subject_keys

Build = Callable[[str], ServiceRuntime]
ADDRESS = "14 Larkspur Terrace, Kennington"


def _event(service: str, n: int, type_: str, data: dict[str, Any]) -> IntegrationEvent:
    return IntegrationEvent(
        id=envelope_id(service, n), service=service, notification_id=n,
        previous_notification_id=n - 1, aggregate_type="Any", aggregate_id=uuid.uuid4(),
        aggregate_version=1, type=type_, occurred_at=datetime.now(UTC),
        actor="coordinator-1", data=data)


class ShiftFeed:
    """Shift events into one runtime's roster, as its consumer would apply them."""

    def __init__(self, runtime: ServiceRuntime) -> None:
        self.runtime = runtime
        self.projection = runtime.projections[roster.NAME]
        self.n = self.projection.last_applied("shift")

    def send(self, type_: str, **data: Any) -> Any:
        self.n += 1
        return self.projection.apply_events([_event("shift", self.n, type_, data)])

    def why_not(self, supporter_id: object) -> str | None:
        return roster.why_not_attending(self.runtime.engine, supporter_id)


@pytest.fixture
def outreach(app_runtime: Build) -> ServiceRuntime:
    return app_runtime("outreach")


def test_the_roster_says_who_may_attend_and_why_not(outreach: ServiceRuntime) -> None:
    feed = ShiftFeed(outreach)
    a, b, c = (str(uuid.uuid4()) for _ in range(3))
    assert feed.why_not(a) == "unknown"  # not published (yet)
    feed.send("SupporterRegistered", supporter_id=a, role="supporter", eligible=True,
              missing=[])
    feed.send("SupporterRegistered", supporter_id=b, role="supporter", eligible=False,
              missing=["safeguarding_adults", "induction"])
    feed.send("SupporterRegistered", supporter_id=c, role="coordinator", eligible=True,
              missing=[])
    assert feed.why_not(a) is None and feed.why_not(c) is None
    assert feed.why_not(a.upper()) is None  # the same UUID, written otherwise
    assert feed.why_not(b) == "not eligible: induction, safeguarding_adults"
    feed.send("ShiftPublished", shift_id=str(uuid.uuid4()))  # of no use here: tracked only
    feed.send("SupporterEligibilityChanged", supporter_id=b, eligible=True, missing=[])
    assert feed.why_not(b) is None
    feed.send("SupporterEligibilityChanged", supporter_id=a, eligible=False,
              missing=["induction"])
    assert feed.why_not(a) == "not eligible: induction"
    feed.send("SupporterDeactivated", supporter_id=b)
    assert feed.why_not(b) == "deactivated"
    for nonsense in ("not-a-uuid", "", None, 42):
        assert feed.why_not(nonsense) == "unknown"
    assert feed.projection.last_applied("shift") == feed.n


def test_a_repeated_event_changes_nothing_and_an_unreadable_one_is_set_aside(
        outreach: ServiceRuntime) -> None:
    feed = ShiftFeed(outreach)
    sid = str(uuid.uuid4())
    registered = _event("shift", 1, "SupporterRegistered",
                        {"supporter_id": sid, "role": "supporter", "eligible": True,
                         "missing": []})
    deactivated = _event("shift", 2, "SupporterDeactivated", {"supporter_id": sid})
    assert feed.projection.apply_events([registered, deactivated]).applied == [1, 2]
    again = feed.projection.apply_events([registered])  # redelivered: not re-registered
    assert again.duplicates == [1] and again.applied == []
    assert feed.why_not(sid) == "deactivated"
    feed.n = 2
    bad = [feed.send("SupporterRegistered", supporter_id="nope", role="supporter",
                     eligible=True, missing=[]),
           feed.send("SupporterEligibilityChanged", supporter_id=sid, eligible="yes",
                     missing=[]),
           feed.send("SupporterRegistered", supporter_id=str(uuid.uuid4()), role="supporter",
                     eligible=True, missing="induction")]
    assert [o.failed for o in bad] == [[3], [4], [5]]
    assert feed.projection.status()["failed"] == 3
    other = str(uuid.uuid4())  # what follows is applied
    feed.send("SupporterRegistered", supporter_id=other, role="supporter", eligible=True,
              missing=[])
    assert feed.why_not(other) is None


def test_the_roster_is_rebuilt_from_the_shift_log_the_same(outreach: ServiceRuntime) -> None:
    feed = ShiftFeed(outreach)
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    events = [_event("shift", 1, "SupporterRegistered", {"supporter_id": a, "role": "supporter",
                                                          "eligible": True, "missing": []}),
              _event("shift", 2, "SupporterRegistered", {"supporter_id": b, "role": "supporter",
                                                          "eligible": True, "missing": []}),
              _event("shift", 3, "SupporterDeactivated", {"supporter_id": a})]
    feed.projection.apply_events(events)
    feed.projection.drop()
    assert feed.why_not(b) == "unknown" and feed.projection.last_applied("shift") == 0
    assert feed.projection.apply_events(events).applied == [1, 2, 3]
    assert (feed.why_not(a), feed.why_not(b)) == ("deactivated", None)


# ------------------------------------------------------------------------------ erasure


def _stored_bytes(settings: Settings) -> bytes:
    """Every byte of outreach's store: its SQLite files, or every row of its schema."""
    if not settings.database_url:
        path = settings.sqlite_path("outreach")
        files = [path, path.with_name(path.name + "-wal")]
        return b"".join(p.read_bytes() for p in files if p.exists())
    engine = sa.create_engine(PostgresParams.from_url(settings.database_url).sqlalchemy_url())
    chunks: list[bytes] = []
    schema = settings.schema_for("outreach")
    try:
        with engine.connect() as conn:
            tables = conn.execute(sa.text(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = :s"),
                {"s": schema}).scalars().all()
            for table in tables:
                for row in conn.execute(sa.text(f'SELECT * FROM "{schema}"."{table}"')):
                    chunks += [bytes(v) if isinstance(v, bytes | memoryview)
                               else str(v).encode() for v in row]
    finally:
        engine.dispose()
    return b"\n".join(chunks)


def _wrapped_key(runtime: ServiceRuntime, subject: str) -> bytes | None:
    with runtime.engine.connect() as conn:
        value = conn.execute(sa.select(subject_keys.c.wrapped_key)
                             .where(subject_keys.c.subject_id == subject)).scalar()
    return bytes(value) if value is not None else None


def _keys(runtime: ServiceRuntime) -> KeyStore:
    keys = runtime.app.adapters.keys
    assert keys is not None
    return keys


def test_a_callers_erasure_destroys_outreachs_key_for_them_once(
        outreach: ServiceRuntime, settings: Settings) -> None:
    keys, reactor = _keys(outreach), Reactor(outreach.app, handlers.REACTIONS)
    sealed = keys.seal("C-ERASEME1", ADDRESS)
    kept = keys.seal("C-KEEPME22", "the cafe by the station")
    assert keys.reveal(sealed) == ADDRESS  # its key is now cached in memory too
    material = _wrapped_key(outreach, "C-ERASEME1")
    assert material is not None and material in _stored_bytes(settings)
    erased = _event("contact", 7, "CallerErased", {"caller_ref": "C-ERASEME1"})
    assert reactor.apply_events([_event("contact", n, "ContactLogged", {})
                                 for n in range(1, 7)] + [erased]).applied == list(range(1, 8))
    assert keys.reveal(sealed) == "[erased]"
    assert keys.reveal(kept) == "the cafe by the station"  # another caller's: untouched
    assert keys.is_erased("C-ERASEME1") and _wrapped_key(outreach, "C-ERASEME1") is None
    with pytest.raises(ErasedSubject):  # nothing new is sealed for them
        keys.seal("C-ERASEME1", "a new address")
    assert material not in _stored_bytes(settings), "the key's bytes are still in the store"
    # Delivered again (a redelivery, or after a restart): tracked, nothing more happens.
    again = Reactor(outreach.app, handlers.REACTIONS)
    assert again.last_applied("contact") == 7
    assert again.apply_events([erased]).duplicates == [7]
    assert keys.reveal(sealed) == "[erased]" and keys.reveal(kept) == "the cafe by the station"
    assert outreach.app.max_notification_id() == 0  # outreach recorded no event of its own


def test_a_caller_erased_before_outreach_sealed_anything_is_refused_later(
        outreach: ServiceRuntime) -> None:
    keys, reactor = _keys(outreach), Reactor(outreach.app, handlers.REACTIONS)
    reactor.apply(_event("contact", 1, "CallerErased", {"caller_ref": "C-NEVERMET"}))
    with pytest.raises(ErasedSubject):
        keys.seal("C-NEVERMET", ADDRESS)


@pytest.mark.parametrize("data", [{}, {"caller_ref": ""}, {"caller_ref": 12},
                                  {"caller_ref": "C-" + "X" * 70},
                                  {"caller_ref": KeyStore.KEY_CHECK}])
def test_an_unreadable_erasure_is_tracked_and_erases_nothing(
        outreach: ServiceRuntime, data: dict[str, Any]) -> None:
    keys, reactor = _keys(outreach), Reactor(outreach.app, handlers.REACTIONS)
    sealed = keys.seal("C-KEEPME22", ADDRESS)
    assert reactor.apply(_event("contact", 1, "CallerErased", data)) is True
    assert reactor.last_applied("contact") == 1  # tracked: never retried for ever
    assert keys.reveal(sealed) == ADDRESS
    assert _wrapped_key(outreach, KeyStore.KEY_CHECK) is not None
