"""The monthly counters (``services.reporting.month_counts``) agree with the figures
counted from the rows (``contact_figures.figures``) for every London month, on random
histories: corrections, risk assessments superseded, shifts published before and after
their contacts (and re-published with another slot), callers across months, contacts
around the clock changes' month ends, and every event delivered again."""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.reporting import contact_figures, report
from services.reporting.contact_figures import figures, month_figures
from services.reporting.read_model import metadata
from services.system import ServiceRuntime
from tests.reporting.test_contact_figures import Feed

MONTHS = ("2026-03", "2026-04", "2026-05")
# Around London's month ends: 23:30 UTC on 31 March is 00:30 on 1 April (BST).
EDGES = (datetime(2026, 3, 31, 23, 30, tzinfo=UTC), datetime(2026, 3, 31, 22, 59, tzinfo=UTC),
         datetime(2026, 4, 30, 23, 0, tzinfo=UTC), datetime(2026, 2, 28, 23, 59, tzinfo=UTC),
         datetime(2026, 5, 31, 22, 30, tzinfo=UTC), datetime(2026, 5, 31, 23, 0, tzinfo=UTC))
GENDERS = (None, "female", "male", "non_binary", "not_disclosed", "prefer_not_to_say")
AGES = (None, "18_24", "25_31", "61_plus", "not_disclosed")
ISSUES = ("housing", "bereavement", "self_harm", "social_isolation", "other")


@pytest.fixture
def feed(app_runtime: Callable[..., ServiceRuntime]) -> Feed:
    runtime = app_runtime("reporting")
    metadata.create_all(runtime.engine)
    return Feed(runtime.engine)


def _when(rnd: random.Random) -> datetime:
    if rnd.random() < 0.3:
        return rnd.choice(EDGES) + timedelta(minutes=rnd.choice((0, 1, -1)))
    start = datetime(2026, 3, 1, tzinfo=UTC)
    return start + timedelta(minutes=rnd.randrange(92 * 24 * 60))


def _history(feed: Feed, rnd: random.Random, contacts: int) -> None:
    shifts = [str(uuid.uuid4()) for _ in range(6)]
    published: set[str] = set()
    refs = [f"CR-{i}" for i in range(12)]
    logged: list[str] = []
    for i in range(contacts):
        if rnd.random() < 0.15:  # a shift published, or published again with a new slot
            sid = rnd.choice(shifts)
            feed("ShiftPublished", {"shift_id": sid, "required": 2, "starts_at": None,
                                    "ends_at": None,
                                    "slot": rnd.choice((None, "sat 20:00-02:00", "sun day"))},
                 service="shift")
            published.add(sid)
        cid = feed.contact(
            _when(rnd), answered=rnd.random() < 0.85,
            channel=rnd.choice(("phone", "sms")),
            direction=rnd.choice(("inbound", "outbound")),
            issues=rnd.sample(ISSUES, rnd.randrange(0, 3)),
            caller_ref=rnd.choice(refs) if rnd.random() < 0.8 else None,
            gender=rnd.choice(GENDERS), age_band=rnd.choice(AGES),
            caller_is=rnd.choice((None, "self", "professional")),
            shift_id=rnd.choice(shifts) if rnd.random() < 0.7 else None,
            signposted_to=rnd.sample(("e1", "e2", "e3"), rnd.randrange(0, 2)))
        logged.append(cid)
        if i % 3 == 0:
            target = rnd.choice(logged)
            feed("ContactCorrected", {
                "contact_id": target, "ended_at": None,
                "issues": rnd.sample(ISSUES, rnd.randrange(1, 3)) if rnd.random() < 0.7
                else None,
                "caller_is": rnd.choice((None, "carer", "self")),
                "signposted_to": rnd.sample(("e1", "e2", "e3"), rnd.randrange(0, 3))
                if rnd.random() < 0.5 else None})
        if rnd.random() < 0.4:
            target = rnd.choice(logged)
            n = rnd.choice((1, 1, 2))
            feed("RiskAssessed", {"contact_id": target, "n": n, "supersedes": None,
                                  "level": rnd.choice(("low", "medium", "high"))})
    feed("DirectoryEntryAdded", {"entry_id": "e1", "name": "Samaritans"})


def _both(feed: Feed, month: str) -> tuple[dict[str, Any], dict[str, Any]]:
    _, _, start, end = report.month_period(month)
    with feed.engine.connect() as conn:
        counted = figures(conn, start, end)
        kept = month_figures(conn, month, start, end)
    keys = ("contacts", "callers")
    return {k: counted[k] for k in keys}, {k: kept[k] for k in keys}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_counters_agree_with_the_rows_for_every_month(feed: Feed, seed: int) -> None:
    rnd = random.Random(seed)
    _history(feed, rnd, 60)
    totals = 0
    for month in MONTHS:
        counted, kept = _both(feed, month)
        assert kept == counted, month
        totals += counted["contacts"]["total"]
    assert totals > 20  # the history has answered contacts in these months

    # Logged contacts and assessments again (a redelivery): nothing moves.
    before = [_both(feed, m)[1] for m in MONTHS]
    inserts = [ev for ev in feed.applied if ev.type in ("ContactLogged", "RiskAssessed")]
    for ev in inserts + rnd.sample(inserts, 10):
        feed.apply(ev)
    assert [_both(feed, m)[1] for m in MONTHS] == before
    # Everything again in order, older corrections and slots included: the counters
    # still agree with the rows, whatever the rows now say.
    for ev in list(feed.applied):
        feed.apply(ev)
    for month in MONTHS:
        counted, kept = _both(feed, month)
        assert kept == counted, month


def test_a_contact_counts_in_its_london_month(feed: Feed) -> None:
    """00:30 on 1 April BST is 23:30 UTC on 31 March: April's."""
    feed.contact(datetime(2026, 3, 31, 23, 30, tzinfo=UTC), caller_ref="CR-1",
                 gender="female")
    _, april = _both(feed, "2026-04")
    _, march = _both(feed, "2026-03")
    assert april["contacts"]["total"] == 1 and april["callers"]["unique"] == 1
    assert april["callers"]["by_gender"] == {"female": 1}
    assert march["contacts"]["total"] == 0 and march["callers"]["unique"] == 0


def test_a_later_shift_moves_its_contacts_from_unknown(feed: Feed) -> None:
    sid = str(uuid.uuid4())
    when = datetime(2026, 4, 11, 20, tzinfo=UTC)
    feed.contact(when, shift_id=sid)
    feed.contact(when + timedelta(hours=1), shift_id=sid)
    assert _both(feed, "2026-04")[1]["contacts"]["by_shift_slot"] == {"unknown": 2}
    feed("ShiftPublished", {"shift_id": sid, "slot": "sat 20:00-02:00", "required": 2,
                            "starts_at": None, "ends_at": None}, service="shift")
    assert _both(feed, "2026-04")[1]["contacts"]["by_shift_slot"] == {"sat 20:00-02:00": 2}


@pytest.mark.parametrize("seed", [4, 5])
def test_the_years_callers_from_their_months_are_the_callers_of_its_contacts(
        feed: Feed, seed: int) -> None:
    """The year report counts callers from their month rows: the same figures as from
    the contacts of the same instants (a caller in two months is one caller, repeat
    across months, the latest contact's gender and age band), redeliveries included."""
    rnd = random.Random(seed)
    _history(feed, rnd, 80)
    for ev in rnd.sample(list(feed.applied), 15):
        feed.apply(ev)
    periods = [report.month_period(m) for m in MONTHS]
    start, end = periods[0][2], periods[-1][3]
    with feed.engine.connect() as conn:
        from_contacts = contact_figures._callers(conn, start, end)
        from_months = contact_figures._callers(conn, start, end, months=list(MONTHS))
        one_month = contact_figures._callers(conn, periods[1][2], periods[1][3],
                                             months=[MONTHS[1]])
        one_month_counted = contact_figures._callers(conn, periods[1][2], periods[1][3])
    assert from_months == from_contacts
    assert one_month == one_month_counted
    assert from_contacts["unique"] >= 5 and from_contacts["repeat"] >= 1
    assert from_contacts["unique"] > one_month["unique"]  # callers across the months
