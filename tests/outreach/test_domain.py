"""The outreach domain's rules, without I/O: the meeting's state machine (every command
in every status), each approval rule, the attendees, the safety check-ins and their
overdue alarm, the outcome, and the decision trail that replays to the same state."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from eventsourcing.application import Application

from services.outreach.domain import ASSESSMENT_MAX_AGE, GRACE, STATUSES, Meeting
from shared.kernel import Conflicting, InvalidCommand, NotPermitted, RuleBroken, acting

NOW = datetime(2026, 11, 29, 22, 0, tzinfo=UTC)
WHEN = NOW + timedelta(days=2)  # the proposed time
CALLER = "C-7K2M9PQR"
REQUESTER, COORD, A, B, C = "sup-req", "coord-1", "sup-a", "sup-b", "sup-c"
MIN = timedelta(minutes=1)


@pytest.fixture(autouse=True)
def _coordinator_acts() -> Iterator[None]:
    """Who acts: set once per command by the web layer; here, the coordinator unless a
    test says otherwise."""
    with acting(COORD, "c-1"):
        yield


def sealed(text: str = "x") -> str:
    return f"pd1:{CALLER}:{text}"


def ok(_: str) -> str | None:
    return None


def free(_ids: list[str], _start: datetime, _end: datetime) -> list[str]:
    return []


# ----------------------------------------------------------------------- builders


def request(**kw: Any) -> Meeting:
    fields: dict[str, Any] = {
        "caller_ref": CALLER, "contact_id": None, "kind": "community", "proposed_at": WHEN,
        "expected_minutes": 90, "venue": sealed("cafe"), "address": None,
        "reason": sealed("reason"), "requested_by": REQUESTER,
        "requested_by_role": "supporter", "now": NOW}
    if kw.get("kind") == "home":
        fields.update(venue=None, address=sealed("address"))
    fields.update(kw)
    with acting(fields["requested_by"]):
        return Meeting.request(**fields)


def assessed(level: str = "low", at: datetime = NOW, **kw: Any) -> Meeting:
    m = request(**kw)
    m.assess_risk(level=level, factors=["animals"], mitigations=sealed("m"), now=at)
    return m


def approved(**kw: Any) -> Meeting:
    m = assessed(**kw)
    m.approve(by=COORD, by_role="coordinator", conditions=sealed("c"), now=NOW)
    return m


def scheduled(**kw: Any) -> Meeting:
    m = approved(**kw)
    m.schedule(supporter_ids=[A, B], eligible=ok, busy=free, now=NOW)
    return m


def check_in(m: Meeting, who: str, at: datetime = WHEN, minutes: int = 60) -> None:
    with acting(who):
        m.check_in(supporter_id=who, expected_minutes=minutes, now=at)


def check_out(m: Meeting, who: str, at: datetime) -> None:
    with acting(who):
        m.check_out(supporter_id=who, now=at)


def in_progress() -> Meeting:
    """A checked in, B not yet."""
    m = scheduled()
    check_in(m, A)
    return m


def both_out() -> Meeting:
    m = in_progress()
    check_in(m, B, WHEN + 5 * MIN)
    check_out(m, A, WHEN + 50 * MIN)
    check_out(m, B, WHEN + 55 * MIN)
    return m


def overdue() -> Meeting:
    m = in_progress()
    assert m.raise_overdue(now=WHEN + 2 * timedelta(hours=1))
    return m


def declined() -> Meeting:
    m = request()
    m.decline(by_role="coordinator", reason=sealed("no"), now=NOW)
    return m


def completed() -> Meeting:
    m = both_out()
    m.record_outcome(what_happened=sealed("ok"), follow_up=None, now=WHEN + 60 * MIN)
    return m


def cancelled() -> Meeting:
    m = approved()
    m.cancel(reason=sealed("ill"), now=NOW)
    return m


# ------------------------------------------------------------- the state machine

BUILD: dict[str, Callable[[], Meeting]] = {
    "requested": request, "risk_assessed": assessed, "approved": approved,
    "declined": declined, "scheduled": scheduled,
    "in_progress": in_progress,  # one attendee checked in
    "in_progress (both out)": both_out, "in_progress (overdue)": overdue,
    "completed": completed, "cancelled": cancelled,
}
LATER = WHEN + 3 * timedelta(hours=1)
COMMANDS: dict[str, Callable[[Meeting], Any]] = {
    "assess_risk": lambda m: m.assess_risk(level="low", factors=[], mitigations=None, now=NOW),
    "approve": lambda m: m.approve(by=COORD, by_role="coordinator", conditions=None, now=NOW),
    "decline": lambda m: m.decline(by_role="coordinator", reason=sealed(), now=NOW),
    "schedule": lambda m: m.schedule(supporter_ids=[A, B], eligible=ok, busy=free, now=NOW),
    "check_in": lambda m: m.check_in(supporter_id=B, expected_minutes=60, now=LATER),
    "check_out": lambda m: m.check_out(supporter_id=A, now=LATER),
    "resolve_alert": lambda m: m.resolve_alert(by_role="coordinator",
                                               what_was_done=sealed("rang"), now=LATER),
    "record_outcome": lambda m: m.record_outcome(what_happened=sealed("ok"), follow_up=None,
                                                 now=LATER),
    "cancel": lambda m: m.cancel(reason=sealed("r"), now=LATER),
}
ALLOWED = {
    "requested": {"assess_risk", "decline", "cancel"},
    "risk_assessed": {"assess_risk", "approve", "decline", "cancel"},
    "approved": {"schedule", "cancel"},
    "declined": set(),
    "scheduled": {"check_in", "cancel"},
    "in_progress": {"check_in", "check_out", "cancel"},
    "in_progress (both out)": {"record_outcome", "cancel"},
    "in_progress (overdue)": {"check_in", "check_out", "resolve_alert", "cancel"},
    "completed": set(),
    "cancelled": set(),
}
STATUS_AFTER = {"assess_risk": "risk_assessed", "approve": "approved", "decline": "declined",
                "schedule": "scheduled", "check_in": "in_progress",
                "record_outcome": "completed", "cancel": "cancelled"}


def test_the_builders_reach_every_status() -> None:
    assert {BUILD[name]().status for name in BUILD} == STATUSES


@pytest.mark.parametrize("state", list(BUILD))
@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_command_in_every_status(state: str, command: str) -> None:
    m = BUILD[state]()
    status, version = m.status, m.version
    if command in ALLOWED[state]:
        COMMANDS[command](m)
        assert m.version == version + 1
        assert m.status == STATUS_AFTER.get(command, status)
    else:
        with pytest.raises(Conflicting) as err:
            COMMANDS[command](m)
        assert f"the meeting is {status}" in err.value.message
        assert m.version == version and m.status == status  # nothing recorded


def test_a_conflict_says_what_is_needed() -> None:
    with pytest.raises(Conflicting, match="is requested; approval needs a risk assessment"):
        COMMANDS["approve"](request())
    with pytest.raises(Conflicting, match="is approved; check-in needs the meeting scheduled"):
        COMMANDS["check_in"](approved())
    with pytest.raises(Conflicting, match=f"is in_progress; both attendees check out first "
                                          f"\\({A}, {B} not yet\\)"):
        COMMANDS["record_outcome"](in_progress())


@pytest.mark.parametrize("state", list(BUILD))
def test_the_overdue_alarm_fires_only_in_progress_without_both_check_outs(state: str) -> None:
    """In progress, or scheduled with nobody checked in by its planned end (+ grace)."""
    m = BUILD[state]()
    assert m.raise_overdue(now=WHEN + timedelta(days=1)) is (state in ("in_progress",
                                                                      "scheduled"))


def test_a_scheduled_meeting_nobody_checks_in_to_is_overdue_after_its_planned_end() -> None:
    m = BUILD["scheduled"]()
    deadline = m.ends_at + GRACE
    assert m.deadline() == deadline
    assert m.raise_overdue(now=deadline) is False
    assert m.raise_overdue(now=deadline + timedelta(seconds=1)) is True
    assert m.alert is not None and sorted(m.alert["missing"]) == sorted(m.attendees)
    assert m.raise_overdue(now=deadline + timedelta(hours=1)) is False  # once


# ------------------------------------------------------------------- the request


@pytest.mark.parametrize(("kw", "field"), [
    ({"venue": None}, "venue"),
    ({"address": sealed("a")}, "address"),
    ({"kind": "home", "address": None}, "address"),
    ({"kind": "home", "venue": sealed("v")}, "venue"),
    ({"kind": "home", "address": "12 High Street"}, "address"),  # not sealed
    ({"venue": "Cafe Nero"}, "venue"),
    ({"reason": None}, "reason"),
    ({"reason": "plain text"}, "reason"),
    ({"kind": "office"}, "kind"),
    ({"expected_minutes": 14}, "expected_minutes"),
    ({"expected_minutes": 481}, "expected_minutes"),
    ({"expected_minutes": True}, "expected_minutes"),
    ({"proposed_at": NOW - 6 * MIN}, "proposed_at"),
    ({"proposed_at": NOW + timedelta(days=400)}, "proposed_at"),
    ({"proposed_at": datetime(2026, 12, 1, 10, 0)}, "proposed_at"),  # naive
    ({"requested_by_role": "auditor"}, "requested_by_role"),
    ({"requested_by": " "}, "requested_by"),
    ({"caller_ref": ""}, "caller_ref"),
    ({"contact_id": "not-a-uuid"}, "contact_id"),
])
def test_a_bad_request_names_the_field(kw: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidCommand) as err:
        request(**kw)
    assert err.value.field == field


def test_a_request_records_what_was_asked_with_its_end() -> None:
    m = request(kind="home", proposed_at=NOW - 4 * MIN)  # a few minutes past: allowed
    assert (m.status, m.kind, m.caller_ref, m.requested_by) == ("requested", "home", CALLER,
                                                                REQUESTER)
    assert m.address == sealed("address") and m.venue is None
    assert m.ends_at == NOW - 4 * MIN + timedelta(minutes=90)


@pytest.mark.parametrize(("kw", "field"), [
    ({"level": "extreme"}, "level"),
    ({"factors": ["weather"]}, "factors"),
    ({"factors": "animals"}, "factors"),
    ({"mitigations": "keep the dog out"}, "mitigations"),
])
def test_a_bad_assessment_names_the_field(kw: dict[str, Any], field: str) -> None:
    m = request()
    fields: dict[str, Any] = {"level": "low", "factors": [], "mitigations": None, "now": NOW}
    with pytest.raises(InvalidCommand) as err:
        m.assess_risk(**{**fields, **kw})
    assert err.value.field == field and m.status == "requested"


# -------------------------------------------------------------- the approval rules


def test_a_home_visit_cannot_be_approved_without_a_risk_assessment() -> None:
    m = request(kind="home")
    with pytest.raises(Conflicting, match="is requested; approval needs a risk assessment"):
        m.approve(by=COORD, by_role="coordinator", conditions=None, now=NOW)
    assert m.approval is None


def test_a_home_visit_needs_an_assessment_from_the_last_seven_days() -> None:
    m = assessed(kind="home", at=NOW - ASSESSMENT_MAX_AGE - MIN)
    with pytest.raises(RuleBroken, match="older than 7 days: reassess"):
        m.approve(by=COORD, by_role="coordinator", conditions=None, now=NOW)
    with pytest.raises(RuleBroken, match="older than 1 days"):  # the setting
        assessed(kind="home", at=NOW - timedelta(days=2)).approve(
            by=COORD, by_role="coordinator", conditions=None, now=NOW,
            max_age=timedelta(days=1))
    m.assess_risk(level="low", factors=[], mitigations=None, now=NOW - ASSESSMENT_MAX_AGE)
    m.approve(by=COORD, by_role="coordinator", conditions=None, now=NOW)  # exactly 7 days
    assert m.status == "approved" and m.approval and m.approval["assessment_n"] == 2


def test_a_community_meeting_has_no_age_limit_on_its_assessment() -> None:
    m = assessed(at=NOW - timedelta(days=30))
    m.approve(by=COORD, by_role="coordinator", conditions=None, now=NOW)
    assert m.status == "approved"


def test_a_high_risk_home_visit_is_never_approved() -> None:
    m = assessed(level="high", kind="home")
    with pytest.raises(RuleBroken, match="meet in the community instead"):
        m.approve(by=COORD, by_role="coordinator", conditions=None, now=NOW)
    assert m.status == "risk_assessed"
    community = assessed(level="high")  # in the community the coordinator may
    community.approve(by=COORD, by_role="coordinator", conditions=sealed("c"), now=NOW)
    assert community.status == "approved"


def test_a_supporter_may_self_approve_only_a_low_risk_community_meeting_they_requested(
) -> None:
    m = assessed()
    with acting(REQUESTER):
        m.approve(by=REQUESTER, by_role="supporter", conditions=None, now=NOW)
    assert m.approval == {"approved_by": REQUESTER, "at": NOW, "conditions": None,
                          "assessment_n": 1, "self_approved": True}
    refused = [
        (assessed(level="medium"), REQUESTER, "supporter"),  # not low risk
        (assessed(kind="home"), REQUESTER, "supporter"),  # a home visit
        (assessed(), A, "supporter"),  # not the requester
        (assessed(requested_by=COORD, requested_by_role="coordinator"), COORD, "supporter"),
        (assessed(), REQUESTER, "auditor"),
    ]
    for meeting, by, role in refused:
        with pytest.raises(NotPermitted, match="only the coordinator approves"):
            meeting.approve(by=by, by_role=role, conditions=None, now=NOW)
        assert meeting.status == "risk_assessed"


def test_the_approver_may_not_attend_unless_they_self_approved() -> None:
    m = approved()
    with pytest.raises(RuleBroken, match="the approver may not attend"):
        m.schedule(supporter_ids=[COORD, A], eligible=ok, busy=free, now=NOW)
    assert m.status == "approved" and m.attendees == []
    own = assessed()
    own.approve(by=REQUESTER, by_role="supporter", conditions=None, now=NOW)
    own.schedule(supporter_ids=[REQUESTER, A], eligible=ok, busy=free, now=NOW)
    assert own.attendees == [REQUESTER, A]


def test_only_the_coordinator_declines() -> None:
    m = assessed()
    with pytest.raises(NotPermitted, match="only the coordinator declines"):
        m.decline(by_role="supporter", reason=sealed("no"), now=NOW)
    with pytest.raises(InvalidCommand) as err:
        m.decline(by_role="coordinator", reason="plain", now=NOW)
    assert err.value.field == "reason" and m.status == "risk_assessed"
    m.decline(by_role="coordinator", reason=sealed("no"), now=NOW)
    assert m.declined == {"declined_by": COORD, "at": NOW, "reason": sealed("no")}


# ------------------------------------------------------------------- attendees


@pytest.mark.parametrize("ids", [[A], [A, B, C], [A, A], [], "sup-a,sup-b", [A, ""]])
def test_exactly_two_distinct_attendees(ids: Any) -> None:
    m = approved()
    with pytest.raises(InvalidCommand) as err:
        m.schedule(supporter_ids=ids, eligible=ok, busy=free, now=NOW)
    assert err.value.field == "supporter_ids" and m.status == "approved"


def test_attendees_must_be_active_and_eligible() -> None:
    m = approved()
    reasons = {B: "not eligible: safeguarding_adults"}
    with pytest.raises(InvalidCommand, match=f"supporter {B} cannot attend: not eligible: "
                                             "safeguarding_adults") as err:
        m.schedule(supporter_ids=[A, B], eligible=reasons.get, busy=free, now=NOW)
    assert err.value.field == "supporter_ids" and m.attendees == []


def test_attendees_must_not_be_double_booked() -> None:
    m = approved()
    asked: list[tuple[list[str], datetime, datetime]] = []

    def busy(ids: list[str], start: datetime, end: datetime) -> list[str]:
        asked.append((ids, start, end))
        return [B]

    with pytest.raises(InvalidCommand, match=f"double-booked on another meeting at that "
                                             f"time: {B}"):
        m.schedule(supporter_ids=[A, B], eligible=ok, busy=busy, now=NOW)
    assert asked == [([A, B], WHEN, WHEN + timedelta(minutes=90))]
    assert m.status == "approved"
    m.schedule(supporter_ids=[A, C], eligible=ok, busy=free, now=NOW)
    assert m.status == "scheduled" and m.attendees == [A, C]


# --------------------------------------------------------------------- check-ins


def test_only_attendees_check_in_and_out_once_each() -> None:
    m = scheduled()
    with pytest.raises(NotPermitted):
        check_in(m, C)
    with pytest.raises(InvalidCommand) as err:
        m.check_in(supporter_id=A, expected_minutes=0, now=WHEN)
    assert err.value.field == "expected_minutes"
    check_in(m, A)
    with pytest.raises(Conflicting, match="already checked in"):
        check_in(m, A)
    with pytest.raises(Conflicting, match=f"supporter {B} checks in first"):
        check_out(m, B, WHEN)
    with pytest.raises(NotPermitted):
        check_out(m, C, WHEN)
    check_out(m, A, WHEN + 30 * MIN)
    with pytest.raises(Conflicting, match="already checked out"):
        check_out(m, A, WHEN + 31 * MIN)
    assert m.check_ins == {A: {"at": WHEN, "expected_end": WHEN + 60 * MIN}}
    assert m.check_outs == {A: WHEN + 30 * MIN}


def test_overdue_not_before_the_deadline_plus_grace_and_once_after() -> None:
    m = scheduled()
    check_in(m, A, WHEN, 60)
    check_in(m, B, WHEN + 10 * MIN, 60)  # the later expected end counts
    deadline = WHEN + 70 * MIN + GRACE
    assert m.deadline() == deadline
    assert m.raise_overdue(now=deadline) is False
    assert m.alert is None
    check_out(m, A, deadline - MIN)
    assert m.raise_overdue(now=deadline + timedelta(seconds=1)) is True
    assert m.alert == {"raised_at": deadline + timedelta(seconds=1), "deadline": deadline,
                       "missing": [B], "resolved_at": None, "what_was_done": None,
                       "resolved_by": None}
    assert m.raise_overdue(now=deadline + timedelta(hours=1)) is False  # fires once
    m.resolve_alert(by_role="coordinator", what_was_done=sealed("rang B"), now=deadline + MIN)
    assert m.raise_overdue(now=deadline + timedelta(hours=2)) is False  # even once resolved
    assert [e["event"] for e in m.trail()].count("SafetyCheckOverdue") == 1


def test_the_grace_is_a_setting() -> None:
    m = in_progress()
    end = WHEN + 60 * MIN
    assert m.raise_overdue(now=end + 6 * MIN, grace=timedelta(minutes=10)) is False
    assert m.raise_overdue(now=end + 11 * MIN, grace=timedelta(minutes=10)) is True
    assert m.alert and m.alert["deadline"] == end + 10 * MIN


def test_no_alarm_when_both_checked_out_even_late() -> None:
    m = both_out()
    assert m.raise_overdue(now=WHEN + timedelta(days=1)) is False
    assert m.alert is None


def test_the_deadline_derives_from_the_check_in_events() -> None:
    m = scheduled()
    check_in(m, A, WHEN, 45)
    check_in(m, B, WHEN + 5 * MIN, 30)
    replayed = replay(m)
    assert replayed.expected_end == WHEN + 45 * MIN
    assert replayed.deadline(GRACE) == m.deadline(GRACE) == WHEN + 45 * MIN + GRACE
    assert replayed.raise_overdue(now=WHEN + 45 * MIN + GRACE + MIN) is True


def test_an_alert_is_resolved_only_by_the_coordinator_while_open() -> None:
    m = in_progress()
    with pytest.raises(Conflicting, match="no open safety alert"):
        m.resolve_alert(by_role="coordinator", what_was_done=sealed(), now=LATER)
    assert m.raise_overdue(now=LATER)
    with pytest.raises(NotPermitted):
        m.resolve_alert(by_role="supporter", what_was_done=sealed(), now=LATER)
    with pytest.raises(InvalidCommand) as err:
        m.resolve_alert(by_role="coordinator", what_was_done="rang them", now=LATER)
    assert err.value.field == "what_was_done" and m.alert_open
    with acting(COORD):
        m.resolve_alert(by_role="coordinator", what_was_done=sealed("rang"), now=LATER + MIN)
    assert not m.alert_open
    assert m.alert and (m.alert["resolved_by"], m.alert["resolved_at"]) == (COORD, LATER + MIN)
    with pytest.raises(Conflicting, match="no open safety alert"):
        m.resolve_alert(by_role="coordinator", what_was_done=sealed(), now=LATER)


# ------------------------------------------------------------------ the end


def test_the_outcome_only_after_both_check_outs() -> None:
    m = in_progress()
    check_in(m, B, WHEN + MIN)
    check_out(m, A, WHEN + 40 * MIN)
    with pytest.raises(Conflicting, match=f"\\({B} not yet\\)"):
        m.record_outcome(what_happened=sealed("ok"), follow_up=None, now=LATER)
    check_out(m, B, WHEN + 41 * MIN)
    with pytest.raises(InvalidCommand) as err:
        m.record_outcome(what_happened=sealed("ok"), follow_up="call Tuesday", now=LATER)
    assert err.value.field == "follow_up"
    m.record_outcome(what_happened=sealed("ok"), follow_up=sealed("tue"), now=LATER)
    assert m.status == "completed"
    assert m.outcome == {"what_happened": sealed("ok"), "follow_up": sealed("tue"),
                         "at": LATER, "recorded_by": COORD}


@pytest.mark.parametrize("state", ["requested", "risk_assessed", "approved", "scheduled",
                                   "in_progress", "in_progress (both out)"])
def test_a_meeting_is_cancelled_any_time_before_completed(state: str) -> None:
    m = BUILD[state]()
    before = m.status
    m.cancel(reason=sealed("ill"), now=LATER)
    assert m.status == "cancelled"
    assert m.cancellation == {"reason": sealed("ill"), "at": LATER, "cancelled_by": COORD,
                              "from_status": before}
    with pytest.raises(Conflicting, match="is cancelled"):
        m.cancel(reason=sealed("again"), now=LATER)


# --------------------------------------------------------- the trail, and replay


def replay(m: Meeting) -> Meeting:
    """The meeting rebuilt from its events, as the application loads it."""
    copy: Any = None
    for e in m.collect_events():
        copy = e.mutate(copy)
    assert copy is not None
    return copy


def a_home_visit_walked_through() -> Meeting:
    m = request(kind="home")
    with acting("sup-x"):
        m.assess_risk(level="low", factors=["animals"], mitigations=sealed("dog"), now=NOW)
    with acting(COORD):
        m.assess_risk(level="medium", factors=["animals", "no_mobile_signal"],
                      mitigations=sealed("m2"), now=NOW + MIN)
        m.approve(by=COORD, by_role="coordinator", conditions=sealed("c"), now=NOW + 2 * MIN)
        m.schedule(supporter_ids=[A, B], eligible=ok, busy=free, now=NOW + 3 * MIN)
    check_in(m, A, WHEN, 60)
    check_in(m, B, WHEN + MIN, 60)
    m.raise_overdue(now=WHEN + 2 * timedelta(hours=1))
    m.resolve_alert(by_role="coordinator", what_was_done=sealed("rang"),
                    now=WHEN + 2 * timedelta(hours=1) + MIN)
    check_out(m, A, WHEN + 2 * timedelta(hours=1) + 2 * MIN)
    check_out(m, B, WHEN + 2 * timedelta(hours=1) + 3 * MIN)
    m.record_outcome(what_happened=sealed("ok"), follow_up=None, now=LATER)
    return m


def test_a_later_assessment_supersedes_and_the_trail_keeps_every_decision() -> None:
    m = a_home_visit_walked_through()
    assert [a["level"] for a in m.assessments] == ["low", "medium"]
    assert m.latest_assessment and m.latest_assessment["n"] == 2
    assert m.assessments[0]["assessed_by"] == "sup-x"
    assert m.approval and m.approval["assessment_n"] == 2  # it relied on the latest
    trail = m.trail()
    assert [(e["event"], e["actor"], e["at"]) for e in trail] == [
        ("Requested", REQUESTER, NOW),
        ("RiskAssessed", "sup-x", NOW),
        ("RiskAssessed", COORD, NOW + MIN),
        ("Approved", COORD, NOW + 2 * MIN),
        ("Scheduled", COORD, NOW + 3 * MIN),
        ("CheckedIn", A, WHEN),
        ("CheckedIn", B, WHEN + MIN),
        ("SafetyCheckOverdue", COORD, WHEN + 2 * timedelta(hours=1)),
        ("SafetyAlertResolved", COORD, WHEN + 2 * timedelta(hours=1) + MIN),
        ("CheckedOut", A, WHEN + 2 * timedelta(hours=1) + 2 * MIN),
        ("CheckedOut", B, WHEN + 2 * timedelta(hours=1) + 3 * MIN),
        ("Completed", COORD, LATER),
    ]
    assert trail[1]["level"] == "low" and trail[2]["factors"] == ["animals",
                                                                  "no_mobile_signal"]
    assert trail[3]["assessment_n"] == 2 and trail[3]["self_approved"] is False
    assert trail[5]["expected_end"] == WHEN + 60 * MIN
    assert trail[7]["missing"] == [A, B]
    trail[2]["factors"].append("other")  # a copy: the meeting is not changed through it
    assert m.trail()[2]["factors"] == ["animals", "no_mobile_signal"]


def test_a_decline_is_in_the_trail_with_its_actor() -> None:
    m = assessed()
    m.decline(by_role="coordinator", reason=sealed("no"), now=NOW + MIN)
    assert m.trail()[-1] == {"event": "Declined", "at": NOW + MIN, "actor": COORD,
                             "reason": sealed("no")}


def test_replaying_the_events_gives_the_same_state() -> None:
    m = a_home_visit_walked_through()
    state = dict(m.__dict__)
    again = replay(m)
    assert again.__dict__ == state and again.trail() == m.trail()


def test_the_events_survive_storage_and_reload() -> None:
    """Through the library's transcoder (in memory): lists, dicts, UUIDs and times."""
    app: Application[Any] = Application()
    m = a_home_visit_walked_through()
    state = dict(m.__dict__)
    app.save(m)
    loaded = app.repository.get(m.id)
    assert loaded.__dict__ == state and loaded.trail() == m.trail()
