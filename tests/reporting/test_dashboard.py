"""The coordinator's dashboard (``services.reporting.dashboard``): each section by its
definition, fed with the other services' integration events through reporting's own
handlers (``handlers.apply``, as its projection applies them), on reporting's store
(SQLite and PostgreSQL, built by the composition root). Delivering every event again,
last first, changes nothing; the projection tells its listeners after each commit.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.engine import Engine

from services.reporting import dashboard, handlers
from services.system import ServiceRuntime
from shared.messaging.envelope import IntegrationEvent, envelope_id

LONDON = ZoneInfo("Europe/London")
NOW = datetime(2026, 11, 25, 21, 0, tzinfo=UTC)  # a Wednesday evening
OVERDUE = timedelta(hours=72)
Build = Callable[..., ServiceRuntime]


class Feed:
    """Integration events of one upstream service, numbered as its log numbers them,
    each applied by ``handlers.apply`` in its own transaction and kept to send again."""

    def __init__(self, engine: Engine, service: str) -> None:
        self.engine = engine
        self.service = service
        self.n = 0
        self.sent: list[IntegrationEvent] = []

    def __call__(self, type: str, at: datetime = NOW - timedelta(days=1),
                 **data: Any) -> IntegrationEvent:
        self.n += 1
        ev = IntegrationEvent(
            id=envelope_id(self.service, self.n), service=self.service,
            notification_id=self.n, previous_notification_id=self.n - 1,
            aggregate_type="X", aggregate_id=uuid.uuid4(), aggregate_version=1,
            type=type, occurred_at=at, actor="coord-1", data=data)
        self.apply(ev)
        self.sent.append(ev)
        return ev

    def apply(self, ev: IntegrationEvent) -> None:
        with self.engine.begin() as conn:
            handlers.apply(conn, ev)

    def again(self) -> None:
        for ev in reversed(self.sent):
            self.apply(ev)


@pytest.fixture
def engine(app_runtime: Build) -> Iterator[Engine]:
    yield app_runtime("reporting").engine


def doc(engine: Engine, now: datetime = NOW) -> dict[str, Any]:
    return dashboard.read(engine, now, debrief_overdue_after=OVERDUE)


def _id() -> str:
    return str(uuid.uuid4())


def _publish(shift: Feed, starts: datetime, hours: int = 6, required: int = 2,
             *crew: str) -> str:
    sid = _id()
    shift("ShiftPublished", shift_id=sid, slot="wed 18:00-00:00",
          starts_at=starts.astimezone(LONDON).isoformat(),
          ends_at=(starts + timedelta(hours=hours)).isoformat(), required=required)
    for supporter in crew:
        shift("SupporterAssigned", shift_id=sid, supporter_id=supporter)
    return sid


def test_active_safety_alerts_until_resolved_oldest_first(engine: Engine) -> None:
    outreach = Feed(engine, "outreach")
    first, second, resolved = _id(), _id(), _id()
    for mid, minutes in ((second, 10), (first, 40), (resolved, 50)):
        outreach("SafetyCheckOverdue", NOW - timedelta(minutes=minutes), meeting_id=mid,
                 deadline=(NOW - timedelta(minutes=minutes + 30)).isoformat())
    outreach("SafetyAlertResolved", NOW - timedelta(minutes=5), meeting_id=resolved)
    expected = [first, second]
    assert [a["meeting_id"] for a in doc(engine)["safety_alerts"]["items"]] == expected
    outreach.again()  # the overdue delivered again after its resolution: still resolved
    alerts = doc(engine)["safety_alerts"]
    assert alerts["count"] == 2 and [a["meeting_id"] for a in alerts["items"]] == expected
    assert alerts["items"][0]["raised_at"] == (NOW - timedelta(minutes=40)).isoformat()
    assert next(iter(doc(engine))) == "safety_alerts"


def test_who_is_on_call_and_whether_they_all_checked_in(engine: Engine) -> None:
    shift = Feed(engine, "shift")
    on = _publish(shift, NOW - timedelta(hours=3), 6, 2, "a", "b")
    _publish(shift, NOW - timedelta(hours=8), 4, 2, "x", "y")  # ended
    _publish(shift, NOW + timedelta(hours=3), 6, 2, "a", "b")  # still to start
    shift("SupporterCheckedIn", shift_id=on, supporter_id="a",
          at=(NOW - timedelta(hours=3)).isoformat())
    (only,) = doc(engine)["on_call"]
    assert only["shift_id"] == on and only["checked_in"] == 1
    assert not only["all_checked_in"]
    shift("SupporterCheckedIn", shift_id=on, supporter_id="b",
          at=(NOW - timedelta(hours=2)).isoformat())
    (only,) = doc(engine)["on_call"]
    assert only["all_checked_in"] and only["checked_in"] == 2
    assert only["supporters"] == [
        {"supporter_id": "a", "checked_in_at": (NOW - timedelta(hours=3)).isoformat()},
        {"supporter_id": "b", "checked_in_at": (NOW - timedelta(hours=2)).isoformat()}]
    shift("ShiftSwapped", shift_id=on, from_supporter_id="b", to_supporter_id="c")
    shift.again()
    (only,) = doc(engine)["on_call"]
    assert [p["supporter_id"] for p in only["supporters"]] == ["a", "c"]
    assert only["checked_in"] == 1 and not only["all_checked_in"]
    assert doc(engine, NOW + timedelta(hours=4))["on_call"][0]["shift_id"] != on


def test_shifts_short_in_the_next_fourteen_days(engine: Engine) -> None:
    shift = Feed(engine, "shift")
    short = _publish(shift, NOW + timedelta(days=3), 6, 2, "a")
    empty = _publish(shift, NOW + timedelta(days=1), 6, 2)
    _publish(shift, NOW + timedelta(days=2), 6, 2, "a", "b")  # full
    _publish(shift, NOW + timedelta(days=15), 6, 2)  # beyond 14 days
    _publish(shift, NOW - timedelta(days=1), 6, 2)  # over
    left = _publish(shift, NOW + timedelta(days=5), 6, 1, "a")
    shift("SupporterUnassigned", shift_id=left, supporter_id="a")
    shift.again()
    got = doc(engine)["short_shifts"]
    assert got["count"] == 3
    assert [(s["shift_id"], s["assigned"], s["required"]) for s in got["items"]] == [
        (empty, 0, 2), (short, 1, 2), (left, 0, 1)]


def test_open_debriefs_overdue_first(engine: Engine) -> None:
    shift = Feed(engine, "shift")
    recent, old, done = _id(), _id(), _id()
    shift("DebriefOpened", NOW - timedelta(hours=2), debrief_id=recent, supporter_id="a",
          contact_id=_id())
    shift("DebriefOpened", NOW - timedelta(hours=80), debrief_id=old, supporter_id="a",
          contact_id=_id())
    shift("DebriefOpened", NOW - timedelta(hours=90), debrief_id=done, supporter_id="b",
          contact_id=_id())
    shift("DebriefCompleted", NOW - timedelta(hours=1), debrief_id=done, supporter_id="b")
    shift.again()
    got = doc(engine)["debriefs"]
    assert (got["count"], got["overdue"]) == (2, 1)
    assert [(d["debrief_id"], d["overdue"]) for d in got["items"]] == [
        (old, True), (recent, False)]
    assert got["items"][0]["due_by"] == (NOW - timedelta(hours=8)).isoformat()


def test_follow_ups_and_first_contacts_due_within_a_day(engine: Engine) -> None:
    contact = Feed(engine, "contact")
    late, soon, later, done = _id(), _id(), _id(), _id()
    for cid, due in ((late, -3), (soon, 2), (later, 30), (done, 1)):
        contact("FollowUpDue", contact_id=cid, n=1, kind="agreed",
                due_by=(NOW + timedelta(hours=due)).isoformat())
    contact("FollowUpCompleted", contact_id=done, n=1)
    referral, contacted = _id(), _id()
    for rid in (referral, contacted):
        contact("ReferralReceived", referral_id=rid, source="gp",
                received_at=NOW.isoformat(), caller_ref=None)
        contact("ReferralAccepted", referral_id=rid,
                first_contact_due_by=(NOW + timedelta(hours=5)).isoformat())
    contact("ReferralFirstContactMade", referral_id=contacted, contact_id=_id(),
            at=NOW.isoformat())
    contact.again()
    got = doc(engine)["follow_ups"]
    assert (got["count"], got["overdue"]) == (3, 1)
    assert [(i["kind"], i.get("contact_id") or i.get("referral_id"), i["overdue"])
            for i in got["items"]] == [("follow_up", late, True), ("follow_up", soon, False),
                                       ("first_contact", referral, False)]


def test_meetings_waiting_for_approval(engine: Engine) -> None:
    outreach = Feed(engine, "outreach")
    waiting, assessed, approved, declined, cancelled = (_id() for _ in range(5))
    for i, mid in enumerate((waiting, assessed, approved, declined, cancelled)):
        outreach("MeetingRequested", meeting_id=mid, kind="home", contact_id=None,
                 requested_at=(NOW - timedelta(hours=10 - i)).isoformat())
    for mid in (assessed, approved):
        outreach("MeetingRiskAssessed", meeting_id=mid, n=1, level="low", factors=[])
    outreach("MeetingApproved", meeting_id=approved, self_approved=False)
    outreach("MeetingDeclined", meeting_id=declined)
    outreach("MeetingCancelled", meeting_id=cancelled)
    outreach.again()  # the requests again, after their decisions: no going back
    got = doc(engine)["meetings_awaiting_approval"]
    assert got["count"] == 2
    assert [(m["meeting_id"], m["status"], m["risk_level"]) for m in got["items"]] == [
        (waiting, "requested", None), (assessed, "risk_assessed", "low")]
    assert got["items"][0]["kind"] == "home"


def _weekend(now: datetime) -> tuple[datetime, datetime]:
    return dashboard.weekend_of(now)


def london(*args: int) -> datetime:
    return datetime(*args, tzinfo=LONDON).astimezone(UTC)  # type: ignore[misc]


def test_the_weekend_from_friday_evening_to_monday_morning_london_time() -> None:
    # The clocks go back at 02:00 BST on Sunday 25 October 2026.
    start, end = london(2026, 10, 23, 18), london(2026, 10, 26, 8)
    assert start == datetime(2026, 10, 23, 17, tzinfo=UTC)  # BST
    assert end == datetime(2026, 10, 26, 8, tzinfo=UTC)  # GMT
    for inside in (start, london(2026, 10, 25, 1, 30), end - timedelta(seconds=1),
                   london(2026, 10, 29, 12), london(2026, 10, 30, 17, 59)):
        assert _weekend(inside) == (start, end), inside
    assert _weekend(london(2026, 10, 30, 18)) == (london(2026, 10, 30, 18),
                                                  london(2026, 11, 2, 8))
    assert _weekend(london(2026, 10, 23, 17, 59))[0] == london(2026, 10, 16, 18)


def test_contacts_this_weekend(engine: Engine) -> None:
    contact = Feed(engine, "contact")
    friday = london(2026, 11, 27, 18)

    def logged(started: datetime, answered: bool = True) -> None:
        contact("ContactLogged", started, contact_id=_id(), channel="phone",
                direction="inbound", answered=answered, started_at=started.isoformat(),
                ended_at=None, issues=[], caller_is=None, caller_ref=None, age_band=None,
                gender=None, shift_id=None, signposted_to=[])

    logged(friday - timedelta(minutes=1))  # before it
    logged(friday)
    logged(friday + timedelta(hours=30))
    logged(friday + timedelta(hours=31), answered=False)
    logged(london(2026, 11, 30, 8))  # Monday 08:00: after it
    contact.again()
    saturday = friday + timedelta(hours=40)
    got = doc(engine, saturday)["weekend"]
    assert got == {"from": friday.isoformat(), "to": london(2026, 11, 30, 8).isoformat(),
                   "current": True, "contacts": 2, "missed_calls": 1}
    tuesday = doc(engine, london(2026, 12, 1, 12))["weekend"]
    assert tuesday["current"] is False and tuesday["contacts"] == 2


def test_the_projection_tells_its_listeners_after_a_commit(app_runtime: Build) -> None:
    runtime = app_runtime("reporting")
    projection = runtime.projection
    told: list[int] = []

    def listener() -> None:  # sees what was committed
        told.append(doc(runtime.engine)["debriefs"]["count"])

    def failing() -> None:
        raise RuntimeError("a listener failing does not fail the projection")

    projection.listeners.extend([failing, listener])
    ev = IntegrationEvent(
        id=envelope_id("shift", 1), service="shift", notification_id=1,
        previous_notification_id=0, aggregate_type="Debrief", aggregate_id=uuid.uuid4(),
        aggregate_version=1, type="DebriefOpened", occurred_at=NOW, actor="service:shift",
        data={"debrief_id": _id(), "supporter_id": "a", "contact_id": _id()})
    assert projection.apply(ev)
    assert told == [1]
    assert not projection.apply(ev)  # a duplicate: nothing committed, nobody told
    assert told == [1]
