"""The monitoring report's shift and outreach figures (``services.reporting.
service_figures``): each figure by its definition, fed by calling the handlers with the
shift and outreach services' integration events, on reporting's own store (SQLite and
PostgreSQL, built by the composition root). A duplicate event changes nothing.
"""

from __future__ import annotations

import inspect
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.engine import Engine

from services.outreach import public_events as outreach_public
from services.reporting import service_figures
from services.reporting.service_figures import HANDLERS, figures
from services.shift import public_events as shift_public
from services.system import ServiceRuntime
from shared.messaging.envelope import IntegrationEvent, envelope_id

LONDON = ZoneInfo("Europe/London")
Build = Callable[..., ServiceRuntime]


def london(*args: int) -> datetime:
    return datetime(*args, tzinfo=LONDON).astimezone(UTC)  # type: ignore[misc]


def month(year: int, m: int) -> tuple[datetime, datetime]:
    """[first day 00:00 London, next month's first day 00:00 London) in UTC."""
    after = (year + 1, 1) if m == 12 else (year, m + 1)
    return london(year, m, 1), london(*after, 1)


APRIL = month(2026, 4)  # BST throughout: starts 2026-03-31T23:00Z
NOW = london(2026, 5, 10, 12)


class Feed:
    """Integration events of one upstream service, numbered as its log numbers them;
    each applied through ``service_figures.HANDLERS`` in its own transaction, and every
    one kept so the test can deliver it again."""

    def __init__(self, engine: Engine, service: str) -> None:
        self.engine = engine
        self.service = service
        self.n = 0
        self.sent: list[IntegrationEvent] = []

    def __call__(self, type: str, at: datetime, aggregate: str = "Shift",
                 **data: Any) -> IntegrationEvent:
        self.n += 1
        ev = IntegrationEvent(
            id=envelope_id(self.service, self.n), service=self.service,
            notification_id=self.n, previous_notification_id=self.n - 1,
            aggregate_type=aggregate, aggregate_id=uuid.uuid4(), aggregate_version=1,
            type=type, occurred_at=at, actor="coord-1", data=data)
        self.apply(ev)
        self.sent.append(ev)
        return ev

    def apply(self, ev: IntegrationEvent) -> None:
        with self.engine.begin() as conn:
            HANDLERS[(ev.service, ev.type)](conn, ev)

    def again(self) -> None:
        """Deliver every event once more, last first (a duplicate of an old event
        arriving after newer ones)."""
        for ev in reversed(self.sent):
            self.apply(ev)


@pytest.fixture
def engine(app_runtime: Build) -> Iterator[Engine]:
    yield app_runtime("reporting").engine


def counted(engine: Engine, period: tuple[datetime, datetime], **kw: Any) -> dict[str, Any]:
    with engine.connect() as conn:
        return figures(conn, *period, **kw)


# -- shifts ---------------------------------------------------------------------------

def _shift(shift: Feed, starts: datetime, required: int = 2, *crew: str) -> str:
    sid = str(uuid.uuid4())
    shift("ShiftPublished", starts - timedelta(days=20), shift_id=sid, slot="sat 20:00-02:00",
          starts_at=starts.astimezone(LONDON).isoformat(),
          ends_at=(starts + timedelta(hours=6)).isoformat(), required=required)
    for supporter in crew:
        shift("SupporterAssigned", starts - timedelta(days=10), shift_id=sid,
              supporter_id=supporter)
    return sid


def test_shifts_starting_in_the_month_by_their_cover_at_the_start(engine: Engine) -> None:
    shift = Feed(engine, "shift")
    start = london(2026, 4, 1, 0, 30)  # 23:30 UTC on 31 March: April's
    _shift(shift, start, 2, "s1", "s2")  # fully covered
    _shift(shift, london(2026, 3, 31, 23, 30), 2, "s1", "s2")  # March's
    _shift(shift, london(2026, 5, 1, 0, 0), 2)  # May's, though 23:00 UTC on 30 April
    _shift(shift, london(2026, 4, 30, 20), 1, "s9")  # 1 of 1: covered
    short = _shift(shift, london(2026, 4, 4, 20), 2, "s1", "s2")
    shift("SupporterUnassigned", london(2026, 4, 1, 9), shift_id=short, supporter_id="s2")
    late = london(2026, 4, 11, 20)  # changes recorded after the start don't count:
    joined_late = _shift(shift, late, 2, "s1")  # short at its start
    shift("SupporterAssigned", late + timedelta(minutes=5), shift_id=joined_late,
          supporter_id="s3")
    left_after = _shift(shift, late + timedelta(days=1), 2, "s1", "s2")  # covered at it
    for supporter in ("s1", "s2"):
        shift("SupporterUnassigned", late + timedelta(days=1, hours=7), shift_id=left_after,
              supporter_id=supporter)
    swapped = _shift(shift, london(2026, 4, 18, 20), 2, "s1", "s2")
    shift("ShiftSwapped", london(2026, 4, 17, 9), shift_id=swapped, from_supporter_id="s2",
          to_supporter_id="s3")  # still two
    back = _shift(shift, london(2026, 4, 19, 8), 2, "s1")
    shift("SupporterUnassigned", london(2026, 4, 12), shift_id=back, supporter_id="s1")
    shift("SupporterAssigned", london(2026, 4, 13), shift_id=back, supporter_id="s1")
    shift("SupporterAssigned", london(2026, 4, 13), shift_id=back, supporter_id="s4")
    _shift(shift, london(2026, 4, 25, 20), 2)  # nobody: empty
    gone = _shift(shift, london(2026, 4, 26, 8), 2, "s5")
    shift("SupporterUnassigned", london(2026, 4, 20), shift_id=gone, supporter_id="s5")
    expected = {"published": 9, "fully_covered": 5, "short": 2, "empty": 2}
    assert counted(engine, APRIL)["shifts"] == expected
    shift.again()
    assert counted(engine, APRIL)["shifts"] == expected
    assert counted(engine, month(2026, 3))["shifts"] == {
        "published": 1, "fully_covered": 1, "short": 0, "empty": 0}
    assert counted(engine, month(2026, 5))["shifts"]["published"] == 1


def test_a_shift_still_to_start_counts_its_supporters_as_of_now(engine: Engine) -> None:
    shift = Feed(engine, "shift")
    ahead = datetime.now(UTC) + timedelta(days=30)
    sid = _shift(shift, ahead, 2, "s1")
    period = (ahead - timedelta(days=1), ahead + timedelta(days=1))
    assert counted(engine, period)["shifts"]["short"] == 1
    shift("SupporterAssigned", datetime.now(UTC), shift_id=sid, supporter_id="s2")
    assert counted(engine, period)["shifts"] == {
        "published": 1, "fully_covered": 1, "short": 0, "empty": 0}


def test_the_late_october_clock_change(engine: Engine) -> None:
    """BST ends at 01:00 UTC on 25 October 2026: October ends at 00:00 UTC on
    1 November, so a shift at 23:30 on 31 October (GMT) is October's."""
    shift = Feed(engine, "shift")
    _shift(shift, london(2026, 10, 31, 23, 30), 1, "s1")
    _shift(shift, london(2026, 10, 1, 0, 30), 1)  # 23:30 UTC on 30 September
    _shift(shift, london(2026, 9, 30, 23, 30), 1)  # September's
    october = month(2026, 10)
    assert october == (datetime(2026, 9, 30, 23, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC))
    assert counted(engine, october)["shifts"] == {
        "published": 2, "fully_covered": 1, "short": 0, "empty": 1}
    assert counted(engine, month(2026, 11))["shifts"]["published"] == 0


# -- debriefs -------------------------------------------------------------------------

def _debrief(shift: Feed, opened: datetime | None, completed: datetime | None = None) -> str:
    did = str(uuid.uuid4())
    if opened is not None:
        shift("DebriefOpened", opened, "Debrief", debrief_id=did, supporter_id="s1",
              contact_id=str(uuid.uuid4()))
    if completed is not None:
        shift("DebriefCompleted", completed, "Debrief", debrief_id=did, supporter_id="s1")
    return did


def test_debriefs_opened_completed_and_overdue(engine: Engine) -> None:
    shift = Feed(engine, "shift")
    first = london(2026, 4, 1, 0, 30)  # April's
    _debrief(shift, first, first + timedelta(days=2))  # in time
    _debrief(shift, london(2026, 4, 10), london(2026, 4, 20))  # done, but 10 days on
    _debrief(shift, london(2026, 3, 30), london(2026, 4, 1))  # March's, done in April
    _debrief(shift, london(2026, 4, 29))  # still open on 10 May: overdue
    _debrief(shift, london(2026, 4, 30, 23, 30), london(2026, 5, 1, 9))  # done in May
    exact = london(2026, 4, 12)
    _debrief(shift, exact, exact + timedelta(hours=72))  # 72 hours is not more than 72
    _debrief(shift, london(2026, 5, 2))  # May's, and overdue on 10 May
    expected = {"opened": 5, "completed": 4, "overdue": 2}
    assert counted(engine, APRIL, now=NOW)["debriefs"] == expected
    shift.again()
    assert counted(engine, APRIL, now=NOW)["debriefs"] == expected
    # Judged on 30 April, the one opened on the 29th is not overdue yet.
    assert counted(engine, APRIL, now=london(2026, 4, 30))["debriefs"]["overdue"] == 1
    # The setting decides: 10 days and an hour; only the one still open is past it.
    assert counted(engine, APRIL, now=NOW, debrief_overdue_after=timedelta(hours=241))[
        "debriefs"]["overdue"] == 1
    assert counted(engine, month(2026, 3), now=NOW)["debriefs"] == {
        "opened": 1, "completed": 0, "overdue": 0}
    assert counted(engine, month(2026, 5), now=NOW)["debriefs"] == {
        "opened": 1, "completed": 1, "overdue": 1}


def test_a_debrief_completed_again_keeps_its_first_completion(engine: Engine) -> None:
    shift = Feed(engine, "shift")
    did = _debrief(shift, london(2026, 4, 1, 12), london(2026, 4, 2))
    shift("DebriefCompleted", london(2026, 5, 20), "Debrief", debrief_id=did,
          supporter_id="s1")  # not a duplicate: another position in the log
    assert counted(engine, APRIL, now=NOW)["debriefs"] == {
        "opened": 1, "completed": 1, "overdue": 0}
    assert counted(engine, month(2026, 5), now=NOW)["debriefs"]["completed"] == 0


# -- meetings -------------------------------------------------------------------------

def _meeting(outreach: Feed, type: str, at: datetime, mid: str, **data: Any) -> None:
    outreach(type, at, "Meeting", meeting_id=mid, **data)


def test_meetings_counted_by_when_each_event_happened(engine: Engine) -> None:
    outreach = Feed(engine, "outreach")
    a, b, c, d, e = (str(uuid.uuid4()) for _ in range(5))

    def requested(mid: str, kind: str, at: datetime) -> None:
        _meeting(outreach, "MeetingRequested", at + timedelta(seconds=1), mid, kind=kind,
                 contact_id=None, requested_at=at.astimezone(LONDON).isoformat())

    requested(a, "community", london(2026, 3, 31, 23, 30))  # March's
    requested(b, "community", london(2026, 4, 1, 0, 30))
    requested(c, "home", london(2026, 4, 2, 10))
    requested(d, "community", london(2026, 4, 20, 10))
    requested(e, "home", london(2026, 4, 30, 23, 59, 59))  # its event recorded in May
    _meeting(outreach, "MeetingApproved", london(2026, 4, 1, 9), a, self_approved=True)
    _meeting(outreach, "MeetingApproved", london(2026, 4, 3, 9), c, self_approved=False)
    _meeting(outreach, "MeetingDeclined", london(2026, 4, 21), d)
    _meeting(outreach, "SafetyCheckOverdue", london(2026, 4, 10, 15), a,
             deadline=london(2026, 4, 10, 14, 30).isoformat())
    _meeting(outreach, "MeetingCompleted", london(2026, 4, 11), a)
    _meeting(outreach, "MeetingCancelled", london(2026, 4, 12), b)
    _meeting(outreach, "MeetingCompleted", london(2026, 5, 3), c)  # May's
    expected = {"requested": 4, "approved": 2, "declined": 1, "completed": 1,
                "cancelled": 1, "by_kind": {"community": 2, "home": 2},
                "safety_alerts": 1}
    assert counted(engine, APRIL)["meetings"] == expected
    outreach.again()
    assert counted(engine, APRIL)["meetings"] == expected
    assert counted(engine, month(2026, 3))["meetings"] == {
        "requested": 1, "approved": 0, "declined": 0, "completed": 0, "cancelled": 0,
        "by_kind": {"community": 1}, "safety_alerts": 0}
    may = counted(engine, month(2026, 5))["meetings"]
    assert (may["requested"], may["completed"], may["by_kind"]) == (0, 1, {})


def test_an_empty_period_counts_nothing(engine: Engine) -> None:
    assert counted(engine, APRIL, now=NOW) == {
        "shifts": {"published": 0, "fully_covered": 0, "short": 0, "empty": 0},
        "debriefs": {"opened": 0, "completed": 0, "overdue": 0},
        "meetings": {"requested": 0, "approved": 0, "declined": 0, "completed": 0,
                     "cancelled": 0, "by_kind": {}, "safety_alerts": 0}}


def test_the_handlers_are_for_events_their_services_publish() -> None:
    sources = {"shift": inspect.getsource(shift_public),
               "outreach": inspect.getsource(outreach_public)}
    for service, type in HANDLERS:
        assert f'"{type}"' in sources[service], (service, type)


def test_the_tables_hold_no_personal_data() -> None:
    columns = {c.name for t in (service_figures.rota_shifts, service_figures.rota_crew,
                                service_figures.shift_debriefs,
                                service_figures.meeting_events) for c in t.columns}
    assert columns <= {"shift_id", "starts_at", "required", "notification_id",
                       "supporter_id", "joined", "at", "debrief_id", "opened_at",
                       "completed_at", "meeting_id", "type", "kind"}
