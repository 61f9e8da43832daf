"""A page of events applied as one unit of work (``ReadModel.apply_page``; reporting's
``handlers.apply_page`` and ``pages.apply_run``) leaves exactly the tables that
applying its events one by one leaves, on SQLite and PostgreSQL: random histories of
every kind of event reporting reads (and some it does not), delivered in pages of
random sizes, with events logged again under new ids, pages delivered again or
overlapping the last, risks before their contacts, callers with several contacts in a
page, corrections and shifts in the middle of a run, and events that cannot be
applied (set aside, one by one, as before)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import random
import subprocess
import sys
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from services.reporting import REPORTS, UPSTREAMS, handlers, pages, report
from services.reporting.contact_figures import figures, month_figures
from services.reporting.read_model import metadata
from services.system import ServiceRuntime
from shared.eventstore.projection import Projection, ReadModel
from shared.messaging.envelope import IntegrationEvent, envelope_id

MONTHS = ("2026-03", "2026-04", "2026-05")
EDGES = (datetime(2026, 3, 31, 23, 30, tzinfo=UTC), datetime(2026, 3, 31, 22, 59, tzinfo=UTC),
         datetime(2026, 4, 30, 23, 0, tzinfo=UTC), datetime(2026, 5, 31, 22, 30, tzinfo=UTC))
GENDERS = (None, "female", "male", "not_disclosed", "prefer_not_to_say")
AGES = (None, "18_24", "61_plus", "not_disclosed")
ISSUES = ("housing", "bereavement", "self_harm", "social_isolation", "other")
LATER = datetime(2026, 7, 1, tzinfo=UTC)

Delivery = tuple[str, list[tuple[int, IntegrationEvent]]]  # (upstream, a page of it)
# Reporting's handlers alone (``REPORTS`` adds what the audit keeps: the last test).
HANDLED = ReadModel("reporting", metadata, handlers.apply, subscriptions=UPSTREAMS,
                    apply_page=handlers.apply_page)


class Log:
    """Integration events numbered as one log per service, in the order they happened."""

    def __init__(self) -> None:
        self.n: dict[str, int] = {}
        self.events: list[IntegrationEvent] = []

    def __call__(self, type: str, data: dict[str, Any], service: str = "contact"
                 ) -> IntegrationEvent:
        n = self.n[service] = self.n.get(service, 0) + 1
        ev = IntegrationEvent(
            id=envelope_id(service, n), service=service, notification_id=n,
            previous_notification_id=n - 1, aggregate_type="Contact",
            aggregate_id=uuid.uuid4(), aggregate_version=1, type=type,
            occurred_at=datetime(2026, 4, 10, 21, tzinfo=UTC), actor="coord-1", data=data)
        self.events.append(ev)
        return ev

    def contact(self, rnd: random.Random, cid: str, refs: list[str], shifts: list[str]
                ) -> None:
        when = (rnd.choice(EDGES) if rnd.random() < 0.3 else
                datetime(2026, 3, 1, tzinfo=UTC) + timedelta(minutes=rnd.randrange(92 * 1440)))
        data: dict[str, Any] = {
            "contact_id": cid, "channel": rnd.choice(("phone", "sms")),
            "direction": rnd.choice(("inbound", "outbound", None)),
            "started_at": when.isoformat(), "ended_at": None,
            "issues": rnd.sample(ISSUES, rnd.randrange(0, 3)),
            "caller_ref": rnd.choice(refs) if rnd.random() < 0.8 else None,
            "gender": rnd.choice(GENDERS), "age_band": rnd.choice(AGES),
            "caller_is": rnd.choice((None, "self", "professional")),
            "shift_id": rnd.choice(shifts) if rnd.random() < 0.7 else None,
            "supporter_ids": [], "signposted_to": rnd.sample(("e1", "e2", "e3"),
                                                            rnd.randrange(0, 3))}
        if rnd.random() < 0.85:
            data["answered"] = rnd.random() < 0.85  # else: absent, which means answered
        self("ContactLogged", data)


def history(rnd: random.Random, size: int) -> list[IntegrationEvent]:
    """A random history of ``size`` events, most of them contacts and risks."""
    log, refs = Log(), [f"CR-{i}" for i in range(8)]
    shifts = [str(uuid.uuid4()) for _ in range(5)]
    upcoming = [str(uuid.uuid4()) for _ in range(size)]  # ids of the contacts to come
    logged: list[str] = []
    while len(log.events) < size:
        kind = rnd.random()
        if kind < 0.45 or not logged:
            cid = upcoming.pop()
            log.contact(rnd, cid, refs, shifts)
            logged.append(cid)
        elif kind < 0.50:  # logged again under a new id (perhaps with other values)
            log.contact(rnd, rnd.choice(logged), refs, shifts)
        elif kind < 0.70:  # on a contact logged, or one still to come
            target = rnd.choice(logged) if rnd.random() < 0.85 else rnd.choice(upcoming[-5:])
            log("RiskAssessed", {"contact_id": target, "n": rnd.choice((1, 1, 2, 3)),
                                 "supersedes": None,
                                 "level": rnd.choice(("low", "medium", "high"))})
        elif kind < 0.78:
            log("ContactCorrected", {  # on a contact logged, or one still to come
                "contact_id": rnd.choice(logged) if rnd.random() < 0.9
                else rnd.choice(upcoming[-5:]), "ended_at": None,
                "issues": rnd.sample(ISSUES, rnd.randrange(1, 3))
                if rnd.random() < 0.7 else None,
                "caller_is": rnd.choice((None, "carer", "self")),
                "signposted_to": rnd.sample(("e1", "e2"), rnd.randrange(0, 2))
                if rnd.random() < 0.5 else None})
        elif kind < 0.84:
            start = datetime(2026, 4, 11, 19, tzinfo=UTC)
            log("ShiftPublished", {
                "shift_id": rnd.choice(shifts), "required": 2,
                "starts_at": start.isoformat(), "ends_at": (start + timedelta(hours=6))
                .isoformat(), "slot": rnd.choice((None, "sat 20:00-02:00", "sun day"))},
                service="shift")
        elif kind < 0.89:
            cid = rnd.choice(logged)
            rnd.choice((
                lambda: log("ContactEscalated", {"contact_id": cid, "n": 1,
                                                 "kind": "ambulance"}),
                lambda: log("FollowUpDue", {"contact_id": cid, "n": 1,
                                            "due_by": "2026-04-20T10:00:00+00:00"}),
                lambda: log("ReferralReceived", {"referral_id": cid, "source": "gp",
                                                 "received_at": None}),
                lambda: log("DirectoryEntryAdded", {"entry_id": "e1", "name": "Samaritans"}),
            ))()
        elif kind < 0.93:  # a type reporting has no use for
            log("CallerRegistered", {"caller_ref": rnd.choice(refs)})
        elif kind < 0.96:  # not of the plain shape: applied by the handlers
            log("RiskAssessed", {"contact_id": rnd.choice(logged), "n": "2",
                                 "level": "medium"})
        else:  # one that cannot be applied: set aside
            log("ContactLogged", {"contact_id": str(uuid.uuid4()),
                                  "started_at": "2026-04-02T10:00:00+00:00"})
    return log.events


def deliveries(rnd: random.Random, events: list[IntegrationEvent]) -> list[Delivery]:
    """The events in pages of random sizes, each of one upstream, in the order they
    happened; now and then a page delivered again, or overlapping the one before."""
    out: list[Delivery] = []
    i = 0
    while i < len(events):
        service = events[i].service
        size = rnd.choice((1, 2, 3, 5, 8, 13, 30, 60))
        page = []
        while i < len(events) and len(page) < size and events[i].service == service:
            page.append((events[i].notification_id, events[i]))
            i += 1
        if out and out[-1][0] == service and rnd.random() < 0.1:
            page = out[-1][1][-3:] + page  # overlapping the last page
        out.append((service, page))
        if rnd.random() < 0.05:
            out.append((service, list(page)))  # delivered again
        if rnd.random() < 0.03 and len(page) > 1:
            out.append((service, [page[0], *page]))  # one event twice in a page
    return out


@pytest.fixture
def runtime(app_runtime: Callable[..., ServiceRuntime]) -> ServiceRuntime:
    return app_runtime("reporting")


def _projection(runtime: ServiceRuntime, paged: bool, model: ReadModel = HANDLED
                ) -> Projection:
    """The read model with its page path, or without it (one event at a time)."""
    return Projection(runtime.engine, dataclasses.replace(
        model, apply_page=model.apply_page if paged else None))


def _state(projection: Projection) -> dict[str, Any]:
    """Every table, the events set aside, and the figures of each month."""
    state: dict[str, Any] = {"tables": projection.dump()}
    state["failed"] = sorted((f["upstream"], f["notification_id"], f["error_type"])
                             for f in projection.failures(limit=1000))
    with projection.engine.connect() as conn:
        for month in MONTHS:
            _, _, start, end = report.month_period(month)
            state[month] = (figures(conn, start, end, now=LATER),
                            month_figures(conn, month, start, end, now=LATER))
    return state


def _one_by_one(runtime: ServiceRuntime, plan: list[Delivery], model: ReadModel = HANDLED
                ) -> dict[str, Any]:
    projection = _projection(runtime, False, model)
    projection.drop()
    for upstream, items in plan:
        for item in items:
            projection.apply_outcome(upstream, [item])
    return _state(projection)


def _in_pages(runtime: ServiceRuntime, plan: list[Delivery], model: ReadModel = HANDLED
              ) -> dict[str, Any]:
    projection = _projection(runtime, True, model)
    projection.drop()
    for upstream, items in plan:
        projection.apply_outcome(upstream, items)
    return _state(projection)


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_pages_leave_what_one_by_one_leaves(runtime: ServiceRuntime, seed: int) -> None:
    rnd = random.Random(seed)
    plan = deliveries(rnd, history(rnd, 260))
    one_by_one = _one_by_one(runtime, plan)
    in_pages = _in_pages(runtime, plan)
    tables = one_by_one["tables"]
    assert len(tables["rm_cf_contacts"]) > 80 and tables["rm_cf_risk"]
    assert tables["rm_cf_caller_months"] and tables["rm_cf_month_counts"]
    assert one_by_one["failed"]  # some events were set aside
    assert in_pages["tables"] == tables
    assert in_pages == one_by_one


def _contact(log: Log, cid: str, when: datetime, ref: str | None, **more: Any) -> None:
    log("ContactLogged", {"contact_id": cid, "channel": "phone", "direction": "inbound",
                          "started_at": when.isoformat(), "issues": ["housing"],
                          "caller_ref": ref, "gender": more.pop("gender", "female"),
                          "age_band": None, "caller_is": None,
                          "shift_id": more.pop("shift_id", None), "signposted_to": [],
                          **more})


def test_a_page_of_the_cases_a_run_must_get_right(runtime: ServiceRuntime) -> None:
    """In one page: a risk before its contact, two contacts of one caller (the later
    first), a contact logged twice, a correction in the middle of the run; then a shift
    published (its contact moves to its slot) and an earlier first contact of a caller
    seen in an earlier page."""
    log = Log()
    a, b, c, d = (str(uuid.uuid4()) for _ in range(4))
    sid = str(uuid.uuid4())
    april = datetime(2026, 4, 10, 20, tzinfo=UTC)
    _contact(log, a, april, "CR-1")  # the first page: one event
    log("RiskAssessed", {"contact_id": b, "n": 1, "level": "high"})
    _contact(log, b, april + timedelta(days=2), "CR-2", gender="male")
    _contact(log, c, april + timedelta(days=1), "CR-2", gender="female", shift_id=sid)
    _contact(log, b, april, "CR-3")  # again: the first stands
    log("ContactCorrected", {"contact_id": b, "issues": ["bereavement"], "caller_is": "self",
                             "signposted_to": None})
    log("ShiftPublished", {"shift_id": sid, "required": 2, "starts_at": None,
                           "ends_at": None, "slot": "sat day"}, service="shift")
    log("RiskAssessed", {"contact_id": b, "n": 2, "level": "low"})
    _contact(log, d, april - timedelta(days=3), "CR-1")  # CR-1's first contact now
    contact = [(e.notification_id, e) for e in log.events if e.service == "contact"]
    shift = [(e.notification_id, e) for e in log.events if e.service == "shift"]
    plan: list[Delivery] = [("contact", contact[:1]), ("contact", contact[1:6]),
                            ("shift", shift), ("contact", contact[6:])]
    one_by_one = _one_by_one(runtime, plan)
    in_pages = _in_pages(runtime, plan)
    assert in_pages == one_by_one
    counted = in_pages["2026-04"][1]
    assert counted["contacts"]["total"] == 4
    assert counted["contacts"]["by_risk_level"] == {"low": 1, "not_assessed": 3}
    assert counted["contacts"]["by_issue"] == {"bereavement": 1, "housing": 3}
    # The shift was published after the contact was logged, in the run's own page.
    assert counted["contacts"]["by_shift_slot"] == {"sat day": 1}
    assert counted["callers"]["unique"] == 2 and counted["callers"]["repeat"] == 2
    assert counted["callers"]["new"] == 2
    assert counted["callers"]["by_gender"] == {"female": 1, "male": 1}


def test_a_page_is_a_few_statements_not_several_per_event(runtime: ServiceRuntime) -> None:
    rnd = random.Random(7)
    log, refs, shifts = Log(), [f"CR-{i}" for i in range(40)], [str(uuid.uuid4())]
    for _ in range(300):
        cid = str(uuid.uuid4())
        log.contact(rnd, cid, refs, shifts)
        if rnd.random() < 0.3:
            log("RiskAssessed", {"contact_id": cid, "n": 1, "level": "low"})
    projection = _projection(runtime, paged=True)
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    sa.event.listen(runtime.engine, "before_cursor_execute", count)
    try:
        outcome = projection.apply_outcome(
            "contact", [(e.notification_id, e) for e in log.events])
    finally:
        sa.event.remove(runtime.engine, "before_cursor_execute", count)
    assert len(outcome.applied) == len(log.events) > 350
    assert len(statements) < 30, statements


def test_an_event_that_cannot_be_applied_is_set_aside_as_before(
        runtime: ServiceRuntime) -> None:
    log = Log()
    april = datetime(2026, 4, 10, 20, tzinfo=UTC)
    good = [str(uuid.uuid4()) for _ in range(3)]
    _contact(log, good[0], april, "CR-1")
    log("ContactLogged", {"contact_id": str(uuid.uuid4()), "started_at": april.isoformat()})
    _contact(log, good[1], april, "CR-1")
    log("RiskAssessed", {"contact_id": good[1], "n": 1, "level": "medium"})
    _contact(log, good[2], april, None)
    # Its issues were set by a correction before it was logged: its rows clash.
    clash = str(uuid.uuid4())
    log("ContactCorrected", {"contact_id": clash, "issues": ["housing"]})
    _contact(log, str(uuid.uuid4()), april, "CR-2")
    _contact(log, clash, april, "CR-2")
    _contact(log, str(uuid.uuid4()), april, "CR-2")
    projection = _projection(runtime, paged=True)
    outcome = projection.apply_outcome("contact", [(e.notification_id, e) for e in log.events])
    assert outcome.failed == [2, 8] and outcome.applied == [1, 3, 4, 5, 6, 7, 9]
    assert {f["error_type"] for f in projection.failures()} == {
        "IntegrityError" if runtime.engine.dialect.name == "sqlite" else "UniqueViolation",
        "KeyError"}
    tables = projection.dump()
    assert clash not in {r[0] for r in tables["rm_cf_contacts"]}
    assert set(good) < {r[0] for r in tables["rm_cf_contacts"]}
    assert _state(projection) == _one_by_one(runtime, [("contact", [
        (e.notification_id, e) for e in log.events])])


def test_the_runs_are_the_contact_logs_bulk() -> None:
    assert handlers.RUNS == {pages.LOGGED, pages.ASSESSED}


def test_reportings_read_model_applies_pages_as_one_by_one(runtime: ServiceRuntime) -> None:
    """``REPORTS`` as the service builds it: the page path is on, and with what the
    audit keeps of each event (its chain hash) gives what one by one gives."""
    assert REPORTS.apply_page is not None
    rnd = random.Random(5)
    events = [ev.model_copy(update={"chain_hash": hashlib.sha256(
        f"{ev.service}:{ev.notification_id}".encode()).hexdigest()})
        for ev in history(rnd, 150)]
    plan = deliveries(rnd, events)
    one_by_one = _one_by_one(runtime, plan, REPORTS)
    assert one_by_one["tables"]["rm_chain_hashes"]
    assert _in_pages(runtime, plan, REPORTS) == one_by_one


def test_the_benchmark_rebuilds_through_the_page_path() -> None:
    """bench/reporting.py end to end at a small size (no timing asserted: the figures
    at size are in docs/performance.md), on a SQLite directory of its own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOLIDARITY_")}
    done = subprocess.run(
        [sys.executable, "-m", "bench.reporting", "--events", "3000", "--replay-page", "700",
         "--json"], cwd=Path(__file__).resolve().parents[2], capture_output=True, text=True,
        timeout=300, check=False, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    figures = json.loads(done.stdout)
    assert figures["page_path"] is True and figures["replay_page"] == 700
    assert figures["events"] >= 3000 and figures["contacts_in_year"] > 1500
    assert figures["rebuild_events_per_s"] > 0 and figures["raw_read_events_per_s"] > 0
    floor = figures["floor"]  # measured on SQLite: the read and the writes alone
    assert floor["read_events_per_s"] > figures["raw_read_events_per_s"]
    assert floor["write_events_per_s"] > 0
