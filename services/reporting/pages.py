"""A run of contacts logged and risks assessed applied as one unit of work: the bulk of
a contact log, in a rebuild's pages (or a consumer's batch), at a few statements per
run rather than several per event.

``apply_run`` has exactly the effect of ``contact_events.contact_logged`` and
``risk_assessed`` applied to each event in turn, which a test checks on random
histories (duplicates inside a run and across runs, a risk before its contact, two
contacts of one caller, on SQLite and PostgreSQL). It:

1. reads up front, with one query per table for the whole run, the state those
   handlers would read: which contacts are known (and when and whether they were
   answered), their risk assessments, the slots of their shifts, their callers' rows
   per month and first contacts;
2. applies the events in order in Python against that state, as the handlers do
   against the tables;
3. writes the result with one ``executemany`` per table and one ``month_counts.add``
   for the run's counters. The counters are the sum of the events' changes: the same
   rows as adding them one by one, since no counter is ever taken below zero.

The run takes only events of the plain shape (``plain``: the ids and codes strings,
as the contact service sends them); any other goes by the handlers, and so does every
event whose run fails (``shared.eventstore.projection``: the page is then applied
again one event at a time, so an event that cannot be applied is set aside as before).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection

from services.reporting import contact_events as ce
from services.reporting import month_counts
from services.reporting.month_counts import NONE, Delta, caller_months, month_of
from shared.eventstore.bulk import Keyed, Many
from shared.eventstore.readtables import from_ts
from shared.messaging.envelope import IntegrationEvent

LOGGED = ("contact", "ContactLogged")
ASSESSED = ("contact", "RiskAssessed")
RUN_HANDLERS = {LOGGED: ce.contact_logged, ASSESSED: ce.risk_assessed}

_OPTIONAL = ("direction", "caller_ref", "gender", "age_band", "caller_is", "shift_id")


def _str_list(value: Any) -> bool:
    return value is None or (isinstance(value, list) and all(isinstance(v, str) for v in value))


def plain(ev: IntegrationEvent) -> bool:
    """Whether the event has the shape the run is written for: every id and code a
    string (so it compares in Python as it does in the tables)."""
    d = ev.data
    if not isinstance(d.get("contact_id"), str):
        return False
    if (ev.service, ev.type) == ASSESSED:
        return isinstance(d.get("level"), str) and type(d.get("n")) is int
    return (isinstance(d.get("channel"), str) and isinstance(d.get("started_at"), str)
            and isinstance(d.get("answered", True), bool)
            and all(d.get(k) is None or isinstance(d[k], str) for k in _OPTIONAL)
            and _str_list(d.get("issues")) and _str_list(d.get("signposted_to")))


@dataclass
class _CallerMonth:
    n: int
    latest_at: datetime
    latest_contact: str
    gender: str
    age_band: str


_CONTACT = ("contact_id", "channel", "direction", "answered", "started_at", "caller_ref",
            "gender", "age_band", "caller_is", "shift_id")
_MONTH_VALUES = ("n", "latest_at", "latest_contact", "gender", "age_band")
INSERT_CONTACTS = Many(ce.contacts, _CONTACT)
INSERT_ISSUES = Many(ce.contact_issues, ("contact_id", "issue"))
INSERT_SIGNPOSTS = Many(ce.signposts, ("contact_id", "entry_id"))
INSERT_RISKS = Many(ce.risk, ("contact_id", "n", "level"))
INSERT_CALLERS = Many(ce.callers, ("caller_ref", "first_at"))
EARLIER_FIRST = Many(ce.callers, ("first_at", "caller_ref"), keys=1)
INSERT_CALLER_MONTHS = Many(caller_months, ("month", "caller_ref", *_MONTH_VALUES))
UPDATE_CALLER_MONTHS = Many(caller_months, (*_MONTH_VALUES, "month", "caller_ref"), keys=2)


@dataclass
class _Writes:
    """Rows to insert, in the order of their ``Many``'s columns."""

    contacts: list[tuple[Any, ...]] = field(default_factory=list)
    issues: list[tuple[Any, ...]] = field(default_factory=list)
    signposts: list[tuple[Any, ...]] = field(default_factory=list)
    risks: list[tuple[Any, ...]] = field(default_factory=list)


_KNOWN = Keyed(ce.contacts, ("contact_id", "answered", "started_at"), "contact_id")
_RISKS = Keyed(ce.risk, ("contact_id", "n", "level"), "contact_id")
_SLOTS = Keyed(ce.shift_slots, ("shift_id", "slot"), "shift_id")
_FIRSTS = Keyed(ce.callers, ("caller_ref", "first_at"), "caller_ref")
_CALLER_MONTHS = Keyed(caller_months, ("month", "caller_ref", *_MONTH_VALUES), "caller_ref")


class _Run:
    """The state the handlers would read, loaded once, and what the run changes."""

    def __init__(self, conn: Connection, events: Sequence[IntegrationEvent]) -> None:
        self.delta = Delta()
        self.writes = _Writes()
        # The contact logged events' start and its month, worked out once (a
        # duplicate's too).
        self.started: dict[int, tuple[datetime, str]] = {}
        cids, sids, refs, keys = set(), set(), set(), set()
        for i, ev in enumerate(events):
            d = ev.data
            cids.add(d["contact_id"])
            if (ev.service, ev.type) == LOGGED:
                started_at = ce._instant(d["started_at"])
                assert started_at is not None
                month = month_of(started_at)
                self.started[i] = (started_at, month)
                if d.get("shift_id") is not None:
                    sids.add(d["shift_id"])
                if d.get("caller_ref"):
                    refs.add(d["caller_ref"])
                    keys.add((month, d["caller_ref"]))
        # contact id -> (answered, started_at), for those known and those logged here
        self.known: dict[str, tuple[bool, datetime]] = {}
        for cid, answered, started_at in _KNOWN.rows(conn, cids):
            at = from_ts(started_at)
            assert at is not None
            self.known[cid] = (bool(answered), at)
        self.risks: dict[str, dict[int, str]] = {}  # contact id -> n -> level
        for cid, n, level in _RISKS.rows(conn, cids):
            self.risks.setdefault(cid, {})[int(n)] = level
        self.slots: dict[str, str | None] = dict(
            (sid, slot) for sid, slot in _SLOTS.rows(conn, sids))
        self.firsts: dict[str, datetime] = {}
        for ref, first_at in _FIRSTS.rows(conn, refs):
            first = from_ts(first_at)
            assert first is not None
            self.firsts[ref] = first
        self.firsts_stored = set(self.firsts)
        self.firsts_changed: set[str] = set()
        self.months: dict[tuple[str, str], _CallerMonth] = {}
        for month, ref, n, latest_at, latest_contact, gender, age_band in \
                _CALLER_MONTHS.rows(conn, {ref for _, ref in keys}):
            if (month, ref) not in keys:
                continue  # the caller's other months
            latest = from_ts(latest_at)
            assert latest is not None
            self.months[(month, ref)] = _CallerMonth(n, latest, latest_contact, gender,
                                                     age_band)
        self.months_stored = set(self.months)
        self.months_changed: set[tuple[str, str]] = set()

    # -- the handlers, against the state --------------------------------------------
    def latest_risk(self, cid: str) -> tuple[int, str] | None:
        risks = self.risks.get(cid)
        if not risks:
            return None
        n = max(risks)
        return n, risks[n]

    def contact_logged(self, i: int, d: dict[str, Any]) -> None:
        cid = d["contact_id"]
        if cid in self.known:
            return  # a duplicate: its corrections since must stand
        started_at, month = self.started[i]
        answered = bool(d.get("answered", True))
        self.known[cid] = (answered, started_at)
        self.writes.contacts.append((
            cid, d["channel"], d.get("direction") or "inbound", answered, started_at,
            d.get("caller_ref"), d.get("gender"), d.get("age_band"), d.get("caller_is"),
            d.get("shift_id")))
        issues = sorted(set(d.get("issues") or []))
        self.writes.issues += [(cid, i) for i in issues]
        entries = sorted(set(d.get("signposted_to") or []))
        self.writes.signposts += [(cid, e) for e in entries]
        delta = self.delta
        if not answered:
            delta.count(month, "contacts.missed_calls")
            return
        self.count_contact(month, cid, d, issues, entries)
        ref = d.get("caller_ref")
        if ref:
            self.caller_contact(month, ref, cid, started_at, d.get("gender"),
                                d.get("age_band"))
            first = self.firsts.get(ref)
            if first is None:
                self.firsts[ref] = started_at
                self.firsts_changed.add(ref)
                delta.count(month, "callers.new")
            elif started_at < first:
                self.firsts[ref] = started_at
                self.firsts_changed.add(ref)
                delta.count(month_of(first), "callers.new", n=-1)
                delta.count(month, "callers.new")

    def count_contact(self, month: str, cid: str, d: dict[str, Any], issues: list[str],
                      entries: list[str]) -> None:
        """``contact_events._count_contact``, from the run's state."""
        latest = self.latest_risk(cid)
        shift_id, slot = d.get("shift_id"), None
        if shift_id is not None:
            slot = ce.UNKNOWN_SHIFT if shift_id not in self.slots \
                else ce._slot_code(self.slots[shift_id])
        month_counts.count_contact(self.delta, month, d, issues, entries,
                                   risk=latest[1] if latest else None, slot=slot)

    def caller_contact(self, month: str, ref: str, cid: str, started_at: datetime,
                       gender: str | None, age_band: str | None) -> None:
        """``month_counts.caller_contact``."""
        g, a, delta = gender or NONE, age_band or NONE, self.delta
        key = (month, ref)
        self.months_changed.add(key)
        row = self.months.get(key)
        if row is None:
            self.months[key] = _CallerMonth(1, started_at, cid, g, a)
            delta.count(month, "callers.unique")
            delta.count(month, "callers.by_gender", g)
            delta.count(month, "callers.by_age_band", a)
            return
        if row.n == 1:
            delta.count(month, "callers.repeat")
        row.n += 1
        if (started_at, cid) > (row.latest_at, row.latest_contact):
            delta.move(month, "callers.by_gender", row.gender, g)
            delta.move(month, "callers.by_age_band", row.age_band, a)
            row.latest_at, row.latest_contact, row.gender, row.age_band = started_at, cid, g, a

    def risk_assessed(self, d: dict[str, Any]) -> None:
        cid, n = d["contact_id"], int(d["n"])
        if n in self.risks.get(cid, {}):
            return
        before = self.latest_risk(cid)
        self.risks.setdefault(cid, {})[n] = d["level"]
        self.writes.risks.append((cid, n, d["level"]))
        if before is not None and before[0] > n:
            return  # an earlier assessment: the latest stands
        known = self.known.get(cid)
        if known is not None and known[0]:
            self.delta.move(month_of(known[1]), "contacts.by_risk_level",
                            before[1] if before is not None else "not_assessed", d["level"])

    # -- the writes ------------------------------------------------------------------
    def write(self, conn: Connection) -> None:
        w = self.writes
        INSERT_CONTACTS.run(conn, w.contacts)
        INSERT_ISSUES.run(conn, w.issues)
        INSERT_SIGNPOSTS.run(conn, w.signposts)
        INSERT_RISKS.run(conn, w.risks)
        INSERT_CALLERS.run(conn, [(r, self.firsts[r])
                                  for r in sorted(self.firsts_changed - self.firsts_stored)])
        EARLIER_FIRST.run(conn, [(self.firsts[r], r)
                                 for r in sorted(self.firsts_changed & self.firsts_stored)])
        added, updated = [], []
        for key in sorted(self.months_changed):
            row = self.months[key]
            values = (row.n, row.latest_at, row.latest_contact, row.gender, row.age_band)
            if key in self.months_stored:
                updated.append((*values, *key))
            else:
                added.append((*key, *values))
        INSERT_CALLER_MONTHS.run(conn, added)
        UPDATE_CALLER_MONTHS.run(conn, updated)
        month_counts.add(conn, self.delta)


def apply_run(conn: Connection, events: Sequence[IntegrationEvent]) -> None:
    """Apply contacts logged and risks assessed (``plain``, in order) as a unit."""
    run = _Run(conn, events)
    for i, ev in enumerate(events):
        if (ev.service, ev.type) == LOGGED:
            run.contact_logged(i, ev.data)
        else:
            run.risk_assessed(ev.data)
    run.write(conn)
