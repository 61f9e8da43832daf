"""The outreach application: its use cases with their real adapters (event store, keys,
read tables, the roster), built by the composition root, with no HTTP and no NATS, on
SQLite and PostgreSQL. The rules themselves are tested at the domain
(``test_domain.py``); here, that the application seals, loads, saves, reads its tables
right, asks the roster and its tables what a command needs, and that its clock raises a
safety check once, across a restart.

The roster is fed as the consumer of the shift stream would feed it: shift integration
events applied to the ``outreach-roster`` projection with their tracking.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.outreach import read_model as views
from services.outreach import roster
from services.outreach.app import OutreachApplication
from services.outreach.domain import Meeting
from services.system import ServiceRuntime
from shared.kernel import (
    Conflicting,
    InvalidCommand,
    NotKnown,
    NotPermitted,
    RuleBroken,
    VersionMismatch,
    acting,
)
from shared.messaging.envelope import IntegrationEvent, envelope_id
from shared.web.auth import Principal, Role

Build = Callable[..., ServiceRuntime]
COORDINATOR = Principal(sub="coord-1", role=Role.COORDINATOR, name="")
AUDITOR = Principal(sub="audit-1", role=Role.AUDITOR, name="")
ADDRESS = "12 Acacia Avenue, Leeds"


def supporter(sub: str) -> Principal:
    return Principal(sub=sub, role=Role.SUPPORTER, name="")


class RosterFeed:
    """Shift events into one outreach runtime's roster."""

    def __init__(self, runtime: ServiceRuntime) -> None:
        self.projection = runtime.projections[roster.NAME]

    def publish(self, type: str, data: dict[str, Any]) -> None:
        previous = self.projection.last_applied("shift")
        n = previous + 1
        event = IntegrationEvent(
            id=envelope_id("shift", n), service="shift", notification_id=n,
            previous_notification_id=previous, aggregate_type="Supporter",
            aggregate_id=uuid.UUID(data["supporter_id"]), aggregate_version=1, type=type,
            occurred_at=datetime.now(UTC), actor="coordinator-1", data=data)
        outcome = self.projection.apply_events([event])
        assert outcome.applied == [n], (type, outcome)

    def supporter(self, eligible: bool = True) -> str:
        sid = str(uuid.uuid4())
        self.publish("SupporterRegistered", {
            "supporter_id": sid, "role": "supporter", "eligible": eligible,
            "missing": [] if eligible else ["induction"]})
        return sid

    def deactivate(self, supporter_id: str) -> None:
        self.publish("SupporterDeactivated", {"supporter_id": supporter_id})


@pytest.fixture
def runtime(app_runtime: Build) -> ServiceRuntime:
    return app_runtime("outreach")


@pytest.fixture
def app(runtime: ServiceRuntime) -> Iterator[OutreachApplication]:
    built = runtime.app
    assert isinstance(built, OutreachApplication)
    with acting(COORDINATOR.sub, "corr-1"):
        yield built


@pytest.fixture
def feed(runtime: ServiceRuntime) -> RosterFeed:
    return RosterFeed(runtime)


def _home(app: OutreachApplication, by: Principal = COORDINATOR, *,
          at: datetime | None = None, minutes: int = 60) -> Meeting:
    with acting(by.sub):
        return app.request_meeting(
            by, caller_ref="C-0000ABCD", contact_id=None, kind="home",
            proposed_at=at or datetime.now(UTC) + timedelta(hours=2),
            expected_minutes=minutes, venue=None, address=ADDRESS,
            reason="asked for a visit after discharge")


def _approved(app: OutreachApplication, **how: Any) -> Meeting:
    meeting = _home(app, **how)
    app.assess_risk(COORDINATOR, meeting.id, level="low", factors=["animals"],
                    mitigations="the dog is kept in the kitchen", expected_version=None)
    return app.approve(COORDINATOR, meeting.id, conditions="both phones charged",
                       expected_version=None)


def _scheduled(app: OutreachApplication, feed: RosterFeed, **how: Any
               ) -> tuple[Meeting, str, str]:
    a, b = feed.supporter(), feed.supporter()
    meeting = _approved(app, **how)
    return app.schedule(COORDINATOR, meeting.id, supporter_ids=[a, b],
                        expected_version=None), a, b


def _in_progress(app: OutreachApplication, feed: RosterFeed, minutes: int = 30
                 ) -> tuple[Meeting, str, str]:
    meeting, a, b = _scheduled(app, feed, at=datetime.now(UTC))
    for sid in (a, b):
        with acting(sid):
            app.check_in(supporter(sid), meeting.id, expected_minutes=minutes,
                         expected_version=None)
    return app.get(meeting.id), a, b


def _overdue_events(app: OutreachApplication) -> int:
    return sum(1 for e in app.integration_events(0, 1000) if e.type == "SafetyCheckOverdue")


def test_a_home_visit_from_request_to_outcome(app: OutreachApplication,
                                              feed: RosterFeed) -> None:
    meeting, a, b = _in_progress(app, feed)
    assert meeting.status == "in_progress"
    for sid in (a, b):
        with acting(sid):
            app.check_out(supporter(sid), meeting.id, expected_version=None)
    done = app.record_outcome(supporter(a), meeting.id, what_happened="talked for an hour",
                              follow_up="ring on Friday", expected_version=None)
    assert done.status == "completed"
    # Sealed with the caller's key: readable through the key store, never plaintext.
    assert done.address != ADDRESS and app.keys.open(done.address) == ADDRESS
    assert app.keys.open(done.outcome["what_happened"]) == "talked for an hour"
    rows, _ = app.list_meetings(COORDINATOR, status="completed", start=None, end=None,
                                limit=10, cursor=None)
    assert [(r["id"], r["attendees"]) for r in rows] == [(str(meeting.id), sorted([a, b]))]
    events = app.integration_events(0, 1000)
    assert [e.type for e in events] == [
        "MeetingRequested", "MeetingRiskAssessed", "MeetingApproved", "MeetingScheduled",
        "MeetingCheckedIn", "MeetingCheckedIn", "MeetingCheckedOut", "MeetingCheckedOut",
        "MeetingCompleted"]
    published = b"".join(e.to_bytes() for e in events)
    for text in (ADDRESS, "dog", "phones charged", "talked", "Friday", "discharge"):
        assert text.encode() not in published


def test_supporters_see_the_meetings_they_requested_or_attend(
        app: OutreachApplication, feed: RosterFeed) -> None:
    meeting, a, _b = _scheduled(app, feed)
    mine = _home(app, supporter("sup-9"))
    assert app.meeting_for(supporter(a), meeting.id).id == meeting.id
    assert app.meeting_for(supporter("sup-9"), mine.id).id == mine.id
    assert app.meeting_for(AUDITOR, mine.id).id == mine.id
    with pytest.raises(NotKnown):
        app.meeting_for(supporter("sup-9"), meeting.id)
    with pytest.raises(NotKnown):  # nor act on it
        app.cancel(supporter("sup-9"), meeting.id, reason="no", expected_version=None)

    def ids(p: Principal) -> set[str]:
        rows, _ = app.list_meetings(p, status=None, start=None, end=None, limit=50,
                                    cursor=None)
        return {r["id"] for r in rows}

    assert ids(supporter(a)) == {str(meeting.id)}
    assert ids(supporter("sup-9")) == {str(mine.id)}
    assert ids(COORDINATOR) == ids(AUDITOR) == {str(meeting.id), str(mine.id)}


def test_attendees_come_from_the_roster_and_are_not_double_booked(
        app: OutreachApplication, feed: RosterFeed) -> None:
    first, a, b = _scheduled(app, feed)
    gone, ineligible, free = feed.supporter(), feed.supporter(eligible=False), feed.supporter()
    feed.deactivate(gone)
    clash = _approved(app, at=first.proposed_at + timedelta(minutes=30))
    version = clash.version
    for ids, says in (([gone, free], "deactivated"), ([ineligible, free], "not eligible"),
                      ([str(uuid.uuid4()), free], "unknown"),
                      ([a, free], "double-booked")):
        with pytest.raises(InvalidCommand) as e:
            app.schedule(COORDINATOR, clash.id, supporter_ids=ids, expected_version=None)
        assert e.value.field == "supporter_ids" and says in e.value.message
    assert app.get(clash.id).version == version  # nothing stored
    later = _approved(app, at=clash.ends_at)  # just after: not overlapping
    assert app.schedule(COORDINATOR, later.id, supporter_ids=[a, b],
                        expected_version=None).attendees == [a, b]
    # A cancelled meeting books nobody.
    app.cancel(COORDINATOR, first.id, reason="caller unwell", expected_version=None)
    assert app.schedule(COORDINATOR, clash.id, supporter_ids=[a, free],
                        expected_version=None).status == "scheduled"


def test_illegal_transitions_and_stale_versions(app: OutreachApplication) -> None:
    meeting = _home(app)
    with pytest.raises(Conflicting) as e:
        app.approve(COORDINATOR, meeting.id, conditions=None, expected_version=None)
    assert "requested" in e.value.message
    with pytest.raises(Conflicting):
        app.check_in(COORDINATOR, meeting.id, expected_minutes=30, expected_version=None)
    with pytest.raises(VersionMismatch):
        app.assess_risk(COORDINATOR, meeting.id, level="low", factors=[], mitigations=None,
                        expected_version=meeting.version + 1)
    app.assess_risk(COORDINATOR, meeting.id, level="high", factors=["known_violence"],
                    mitigations=None, expected_version=meeting.version)
    with pytest.raises(RuleBroken) as broken:
        app.approve(COORDINATOR, meeting.id, conditions=None, expected_version=None)
    assert "community" in broken.value.message
    requester = supporter("sup-1")
    asked = _home(app, requester)
    with pytest.raises(NotPermitted):
        app.decline(requester, asked.id, reason="no", expected_version=None)
    assert app.decline(COORDINATOR, meeting.id, reason="too risky",
                       expected_version=None).status == "declined"


def test_the_overdue_check_fires_once_after_the_deadline_and_clears_on_resolve(
        app: OutreachApplication, feed: RosterFeed, app_runtime: Build) -> None:
    meeting, a, b = _in_progress(app, feed, minutes=30)
    deadline = meeting.deadline(app.grace)
    assert app.grace == timedelta(minutes=30)
    listed, _ = app.list_meetings(COORDINATOR, status="in_progress", start=None, end=None,
                                  limit=5, cursor=None)
    assert [r["deadline"] for r in listed] == [deadline]
    app.tick(deadline - timedelta(seconds=5))
    assert _overdue_events(app) == 0
    with acting(a):
        app.check_out(supporter(a), meeting.id, expected_version=None)
    # A restart between the check-in and the deadline: the deadline is in the events.
    again = app_runtime("outreach").app
    assert isinstance(again, OutreachApplication)
    with acting("service:outreach"):
        again.tick(deadline + timedelta(seconds=1))
        again.tick(deadline + timedelta(minutes=5))
        app.tick(deadline + timedelta(minutes=6))
    assert _overdue_events(again) == 1
    alert = again.get(meeting.id).alert
    assert alert is not None and alert["missing"] == [b]
    rows, _ = again.alerts(open_only=True, limit=10, cursor=None)
    assert [(r["id"], r["missing"]) for r in rows] == [(str(meeting.id), [b])]
    with pytest.raises(NotPermitted):
        again.resolve_alert(supporter(a), meeting.id, what_was_done="rang", expected_version=None)
    again.resolve_alert(COORDINATOR, meeting.id, what_was_done="rang b, who was fine",
                        expected_version=None)
    assert again.alerts(open_only=True, limit=10, cursor=None)[0] == []
    assert len(again.alerts(open_only=False, limit=10, cursor=None)[0]) == 1
    with pytest.raises(Conflicting):  # once
        again.resolve_alert(COORDINATOR, meeting.id, what_was_done="again",
                            expected_version=None)
    assert views.overdue(again.views(), deadline + timedelta(hours=1)) == []


def test_a_scheduled_meeting_nobody_checks_in_to_is_overdue_after_its_planned_end(
        app: OutreachApplication, feed: RosterFeed) -> None:
    """Nobody knows where the supporters are if they never check in: the alarm fires
    once after the planned end plus the grace, naming both."""
    meeting, a, b = _scheduled(app, feed, at=datetime.now(UTC))
    deadline = meeting.ends_at + app.grace
    with acting("service:outreach"):
        app.tick(deadline - timedelta(seconds=5))
        assert _overdue_events(app) == 0
        app.tick(deadline + timedelta(seconds=1))
        app.tick(deadline + timedelta(minutes=1))
    assert _overdue_events(app) == 1
    alert = app.get(meeting.id).alert
    assert alert is not None and sorted(alert["missing"]) == sorted([a, b])


def test_both_checked_out_in_time_raises_nothing(app: OutreachApplication,
                                                 feed: RosterFeed) -> None:
    meeting, a, b = _in_progress(app, feed, minutes=15)
    for sid in (a, b):
        with acting(sid):
            app.check_out(supporter(sid), meeting.id, expected_version=None)
    app.tick(datetime.now(UTC) + timedelta(hours=3))
    assert _overdue_events(app) == 0 and app.get(meeting.id).alert is None
