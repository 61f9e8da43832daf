"""The contact figures of the monitoring report (``services.reporting.contact_figures``):
each figure and its definition, from integration events applied by the handlers to the
reporting read tables on SQLite and PostgreSQL. ``figures`` takes UTC instants: turning
a London month into them is the report's job (tested with it).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from services.reporting import contact_figures
from services.reporting.contact_figures import HANDLERS, figures
from services.reporting.read_model import directory_names, metadata
from services.system import ServiceRuntime
from shared.messaging.envelope import IntegrationEvent, envelope_id

MARCH = (datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC))
APRIL = (datetime(2026, 4, 1, tzinfo=UTC), datetime(2026, 5, 1, tzinfo=UTC))
IN_MARCH = datetime(2026, 3, 10, 21, 0, tzinfo=UTC)
IN_APRIL = datetime(2026, 4, 10, 21, 0, tzinfo=UTC)
LATER = datetime(2026, 6, 1, tzinfo=UTC)  # "now" for the follow-ups, after both months


class Feed:
    """Integration events, numbered as one log per service, applied by the handlers
    (one transaction each, as the projection does); the figures read back."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.n: dict[str, int] = {}
        self.applied: list[IntegrationEvent] = []

    def __call__(self, type: str, data: dict[str, Any], *, service: str = "contact",
                 at: datetime | None = None) -> IntegrationEvent:
        n = self.n[service] = self.n.get(service, 0) + 1
        ev = IntegrationEvent(
            id=envelope_id(service, n), service=service, notification_id=n,
            previous_notification_id=n - 1, aggregate_type="Contact",
            aggregate_id=uuid.uuid4(), aggregate_version=1, type=type,
            occurred_at=at or IN_APRIL, actor="coord-1", data=data)
        self.apply(ev)
        return ev

    def apply(self, ev: IntegrationEvent) -> None:
        handler = HANDLERS.get((ev.service, ev.type))
        with self.engine.begin() as conn:
            if handler is not None:  # reporting has no use for the others
                handler(conn, ev)
        self.applied.append(ev)

    def figures(self, period: tuple[datetime, datetime],
                now: datetime = LATER) -> dict[str, Any]:
        with self.engine.connect() as conn:
            return figures(conn, *period, now=now)

    def contact(self, started_at: datetime = IN_APRIL, *, answered: bool = True,
                channel: str = "phone", direction: str = "inbound",
                issues: list[str] | None = None, caller_ref: str | None = None,
                gender: str | None = None, age_band: str | None = None,
                caller_is: str | None = None, shift_id: str | None = None,
                signposted_to: list[str] | None = None) -> str:
        cid = str(uuid.uuid4())
        self("ContactLogged", {
            "contact_id": cid, "channel": channel, "direction": direction,
            "answered": answered, "started_at": started_at.isoformat(), "ended_at": None,
            "issues": ["other"] if issues is None and answered else (issues or []),
            "caller_is": caller_is, "caller_ref": caller_ref, "age_band": age_band,
            "gender": gender, "shift_id": shift_id, "supporter_ids": [],
            "signposted_to": signposted_to or []})
        return cid


@pytest.fixture
def feed(app_runtime: Callable[..., ServiceRuntime]) -> Feed:
    runtime = app_runtime("reporting")
    metadata.create_all(runtime.engine)  # made by the projection at start, if not yet
    return Feed(runtime.engine)


def test_its_tables_are_reportings_read_model() -> None:
    """Made, dropped and replayed with the reporting read model (no personal data)."""
    for table in (contact_figures.contacts, contact_figures.referrals,
                  contact_figures.follow_ups, contact_figures.shift_slots):
        assert metadata.tables[table.name] is table
    columns = {c.name for t in metadata.sorted_tables if t.name.startswith("rm_cf_")
               for c in t.c}
    assert not columns & {"name", "alias", "phone", "summary", "reason", "body"}


def test_total_counts_answered_contacts_and_missed_calls_apart(feed: Feed) -> None:
    feed.contact(channel="phone")
    feed.contact(channel="phone", direction="outbound")
    thread = feed.contact(channel="text", issues=[])
    feed.contact(answered=False)
    feed.contact(answered=False)
    feed.contact(IN_MARCH)  # another month
    # A text thread reopened, and its messages, are the same contact.
    feed("TextReceived", {"contact_id": thread, "at": IN_APRIL.isoformat()})
    feed("ContactReopened", {"contact_id": thread})
    feed("TextReceived", {"contact_id": thread, "at": (IN_APRIL + timedelta(hours=5))
                          .isoformat()})

    c = feed.figures(APRIL)["contacts"]
    assert c["total"] == 3 and c["missed_calls"] == 2
    assert c["by_channel"] == {"phone": 2, "text": 1}
    assert c["by_direction"] == {"inbound": 2, "outbound": 1}
    assert feed.figures(MARCH)["contacts"]["total"] == 1
    assert feed.figures(MARCH)["contacts"]["missed_calls"] == 0


def test_the_period_is_start_inclusive_end_exclusive(feed: Feed) -> None:
    start, end = APRIL
    feed.contact(start)
    feed.contact(end - timedelta(microseconds=1))
    feed.contact(end)
    feed.contact(start - timedelta(microseconds=1))
    assert feed.figures(APRIL)["contacts"]["total"] == 2
    assert feed.figures(MARCH)["contacts"]["total"] == 1


def test_by_issue_counts_each_category_of_a_contact_as_last_corrected(feed: Feed) -> None:
    a = feed.contact(issues=["bereavement", "social_isolation"])
    feed.contact(issues=["social_isolation"])
    thread = feed.contact(channel="text", issues=[])
    feed.contact(answered=False, issues=["self_harm"])  # missed: in no breakdown
    assert feed.figures(APRIL)["contacts"]["by_issue"] == {
        "bereavement": 1, "social_isolation": 2}

    feed("ContactCorrected", {"contact_id": a, "issues": ["overdose", "self_harm"],
                              "ended_at": None, "caller_is": None, "signposted_to": None})
    feed("ContactCorrected", {"contact_id": thread, "issues": ["self_harm"],
                              "ended_at": None, "caller_is": None, "signposted_to": None})
    feed("ContactCorrected", {"contact_id": a, "issues": None, "ended_at": IN_APRIL
                              .isoformat(), "caller_is": None, "signposted_to": None})
    assert feed.figures(APRIL)["contacts"]["by_issue"] == {
        "overdose": 1, "self_harm": 2, "social_isolation": 1}


def test_caller_is_as_last_corrected_or_not_recorded(feed: Feed) -> None:
    a = feed.contact()
    feed.contact(caller_is="professional")
    feed.contact(caller_is="person_in_crisis")
    assert feed.figures(APRIL)["contacts"]["by_caller_is"] == {
        "not_recorded": 1, "person_in_crisis": 1, "professional": 1}
    feed("ContactCorrected", {"contact_id": a, "issues": None, "ended_at": None,
                              "caller_is": "carer_family_friend", "signposted_to": None})
    assert feed.figures(APRIL)["contacts"]["by_caller_is"] == {
        "carer_family_friend": 1, "not_recorded": 0, "person_in_crisis": 1,
        "professional": 1}


def test_by_risk_level_is_each_contacts_latest_assessment(feed: Feed) -> None:
    a, b = feed.contact(), feed.contact()
    feed.contact()  # never assessed
    missed = feed.contact(answered=False)
    for cid, n, level in ((a, 1, "low"), (a, 2, "high"), (b, 1, "medium"),
                          (missed, 1, "low")):
        feed("RiskAssessed", {"contact_id": cid, "n": n, "level": level,
                              "supersedes": n - 1 or None})
    assert feed.figures(APRIL)["contacts"]["by_risk_level"] == {
        "high": 1, "medium": 1, "not_assessed": 1}
    feed("RiskAssessed", {"contact_id": a, "n": 3, "level": "none", "supersedes": 2})
    assert feed.figures(APRIL)["contacts"]["by_risk_level"] == {
        "medium": 1, "none": 1, "not_assessed": 1}


def test_by_shift_slot_and_contacts_outside_shifts(feed: Feed) -> None:
    sat, fri, extra, late = (str(uuid.uuid4()) for _ in range(4))
    for shift_id, slot in ((sat, "sat 20:00-02:00"), (fri, "fri 20:00-02:00"),
                           (extra, None)):
        feed("ShiftPublished", {"shift_id": shift_id, "slot": slot, "starts_at": None,
                                "ends_at": None, "required": 2}, service="shift")
    for on in (sat, sat, fri, extra, late, None, None):
        feed.contact(shift_id=on)
    feed.contact(shift_id=sat, answered=False)  # missed: not in the breakdown

    c = feed.figures(APRIL)["contacts"]
    assert c["by_shift_slot"] == {"extra": 1, "fri 20:00-02:00": 1, "sat 20:00-02:00": 2,
                                  "unknown": 1}
    assert c["outside_shifts"] == 2
    # The late shift's ShiftPublished arrives (another service's stream): it is resolved.
    feed("ShiftPublished", {"shift_id": late, "slot": "sat 20:00-02:00", "starts_at": None,
                            "ends_at": None, "required": 2}, service="shift")
    assert feed.figures(APRIL)["contacts"]["by_shift_slot"] == {
        "extra": 1, "fri 20:00-02:00": 1, "sat 20:00-02:00": 3}


def test_signposting_by_the_directory_services_name(feed: Feed) -> None:
    samaritans, foodbank, gone = (str(uuid.uuid4()) for _ in range(3))
    with feed.engine.begin() as conn:  # fed by reporting's directory handler
        conn.execute(sa.insert(directory_names), [
            {"entry_id": samaritans, "name": "Samaritans"},
            {"entry_id": foodbank, "name": "Foodbank"}])
    a = feed.contact(signposted_to=[samaritans])
    feed.contact(signposted_to=[samaritans, foodbank])
    feed.contact(signposted_to=[gone])
    feed.contact(answered=False, signposted_to=[foodbank])
    assert feed.figures(APRIL)["contacts"]["signposting"] == {
        "Foodbank": 1, "Samaritans": 2, gone: 1}
    feed("ContactCorrected", {"contact_id": a, "issues": None, "ended_at": None,
                              "caller_is": None, "signposted_to": [foodbank]})
    assert feed.figures(APRIL)["contacts"]["signposting"] == {
        "Foodbank": 2, "Samaritans": 1, gone: 1}


def test_unique_new_and_repeat_callers_across_periods(feed: Feed) -> None:
    feed.contact(IN_MARCH, caller_ref="CR-A")
    feed.contact(IN_APRIL, caller_ref="CR-A")
    feed.contact(IN_APRIL + timedelta(days=1), caller_ref="CR-A")
    feed.contact(IN_APRIL, caller_ref="CR-B")
    feed.contact(IN_APRIL, answered=False, caller_ref="CR-C")  # missed: not a caller
    feed.contact(IN_MARCH, answered=False, caller_ref="CR-B")  # nor is a missed call first
    feed.contact(IN_APRIL)  # anonymous: a contact, not a caller

    april = feed.figures(APRIL)
    assert april["contacts"]["total"] == 4
    assert {k: april["callers"][k] for k in ("unique", "new", "repeat")} == {
        "unique": 2, "new": 1, "repeat": 1}
    march = feed.figures(MARCH)["callers"]
    assert (march["unique"], march["new"], march["repeat"]) == (1, 1, 0)

    # A contact logged late, started earlier, is the first ever: B is no longer new.
    feed.contact(datetime(2026, 2, 1, tzinfo=UTC), caller_ref="CR-B")
    assert feed.figures(APRIL)["callers"]["new"] == 0


def test_gender_and_age_band_from_each_callers_latest_contact(feed: Feed) -> None:
    feed.contact(IN_APRIL, caller_ref="CR-A", gender="female", age_band="18_24")
    feed.contact(IN_APRIL + timedelta(hours=1), caller_ref="CR-A", gender="non_binary",
                 age_band="25_31")
    feed.contact(IN_APRIL, caller_ref="CR-B", gender="not_disclosed", age_band="41_50")
    feed.contact(IN_APRIL, caller_ref="CR-C", gender="male", age_band=None)
    feed.contact(IN_APRIL, caller_ref="CR-D", gender=None, age_band="not_disclosed")
    feed.contact(IN_APRIL, gender="female", age_band="18_24")  # anonymous: not a caller
    feed.contact(IN_MARCH, caller_ref="CR-C", gender="female")  # another period

    c = feed.figures(APRIL)["callers"]
    assert c["by_gender"] == {"male": 1, "non_binary": 1}
    assert c["gender_not_disclosed"] == 2
    assert c["by_age_band"] == {"25_31": 1, "41_50": 1}
    assert c["age_band_not_disclosed"] == 2
    assert c["unique"] == 4


def test_referrals_received_and_decided_in_the_period(feed: Feed) -> None:
    def received(at: datetime, source: str) -> str:
        rid = str(uuid.uuid4())
        feed("ReferralReceived", {"referral_id": rid, "source": source,
                                  "received_at": at.isoformat(), "caller_ref": None}, at=at)
        return rid

    march_gp = received(IN_MARCH, "gp")
    march_cmht = received(IN_MARCH, "cmht")
    april_self = received(IN_APRIL, "self")
    received(IN_APRIL, "gp")
    received(IN_APRIL + timedelta(days=1), "self")
    feed("ReferralAccepted", {"referral_id": march_gp, "first_contact_due_by": None},
         at=IN_MARCH)
    feed("ReferralDeclined", {"referral_id": march_cmht}, at=IN_APRIL)
    feed("ReferralAccepted", {"referral_id": april_self, "first_contact_due_by": None},
         at=IN_APRIL)

    april = feed.figures(APRIL)["referrals"]
    assert april == {"total": 3, "by_source": {"gp": 1, "self": 2}, "accepted": 1,
                     "declined": 1}
    march = feed.figures(MARCH)["referrals"]
    assert march == {"total": 2, "by_source": {"cmht": 1, "gp": 1}, "accepted": 1,
                     "declined": 0}


def test_escalations_by_kind_when_recorded(feed: Feed) -> None:
    a, b = feed.contact(IN_MARCH), feed.contact()
    feed("ContactEscalated", {"contact_id": a, "n": 1, "kind": "crisis_team"}, at=IN_MARCH)
    feed("ContactEscalated", {"contact_id": a, "n": 2, "kind": "gp"}, at=IN_APRIL)
    feed("ContactEscalated", {"contact_id": b, "n": 1, "kind": "crisis_team"}, at=IN_APRIL)
    assert feed.figures(APRIL)["escalations"] == {
        "total": 2, "by_kind": {"crisis_team": 1, "gp": 1}}
    assert feed.figures(MARCH)["escalations"] == {"total": 1, "by_kind": {"crisis_team": 1}}


def test_follow_ups_due_completed_and_overdue(feed: Feed) -> None:
    cid = feed.contact(IN_MARCH)
    due = {1: IN_APRIL, 2: IN_APRIL, 3: IN_APRIL, 4: IN_MARCH,
           5: APRIL[1] - timedelta(hours=1)}
    for n, due_by in due.items():
        feed("FollowUpDue", {"contact_id": cid, "n": n, "kind": "agreed",
                             "due_by": due_by.isoformat()}, at=IN_MARCH)
    feed("FollowUpCompleted", {"contact_id": cid, "n": 1}, at=IN_APRIL - timedelta(hours=1))
    feed("FollowUpCompleted", {"contact_id": cid, "n": 2}, at=IN_APRIL + timedelta(days=2))
    # 3 never completed; 4 (due in March) completed in April, late.
    feed("FollowUpCompleted", {"contact_id": cid, "n": 4}, at=IN_APRIL)

    assert feed.figures(APRIL)["follow_ups"] == {"due": 4, "completed": 3, "overdue": 3}
    assert feed.figures(MARCH)["follow_ups"] == {"due": 1, "completed": 0, "overdue": 1}
    # Before the last one's due time it is not overdue yet; after it, it is.
    assert feed.figures(APRIL, now=APRIL[1] - timedelta(hours=2))["follow_ups"][
        "overdue"] == 2
    feed("FollowUpCompleted", {"contact_id": cid, "n": 5}, at=APRIL[1] - timedelta(hours=2))
    assert feed.figures(APRIL)["follow_ups"] == {"due": 4, "completed": 4, "overdue": 2}


def test_a_duplicate_event_changes_no_figure(feed: Feed) -> None:
    sat = str(uuid.uuid4())
    feed("ShiftPublished", {"shift_id": sat, "slot": "sat 20:00-02:00", "starts_at": None,
                            "ends_at": None, "required": 2}, service="shift")
    a = feed.contact(IN_APRIL, caller_ref="CR-A", issues=["housing"], shift_id=sat,
                     gender="female")
    feed.contact(IN_MARCH, caller_ref="CR-A")
    feed.contact(answered=False)
    feed("ContactCorrected", {"contact_id": a, "issues": ["abuse"], "ended_at": None,
                              "caller_is": "professional", "signposted_to": None})
    feed("RiskAssessed", {"contact_id": a, "n": 1, "level": "high", "supersedes": None})
    feed("ContactEscalated", {"contact_id": a, "n": 1, "kind": "gp"})
    feed("FollowUpDue", {"contact_id": a, "n": 1, "kind": "agreed",
                         "due_by": (IN_APRIL + timedelta(days=1)).isoformat()})
    feed("FollowUpCompleted", {"contact_id": a, "n": 1}, at=IN_APRIL + timedelta(hours=1))
    rid = str(uuid.uuid4())
    feed("ReferralReceived", {"referral_id": rid, "source": "gp",
                              "received_at": IN_APRIL.isoformat(), "caller_ref": "CR-A"})
    feed("ReferralAccepted", {"referral_id": rid, "first_contact_due_by": None})
    before = (feed.figures(MARCH), feed.figures(APRIL))
    assert before[1]["contacts"]["by_issue"] == {"abuse": 1}
    assert before[1]["follow_ups"]["completed"] == 1

    # Every event again, in order and then the first ones again last (a late redelivery:
    # the ContactLogged must not undo its correction, a completion must not move).
    for ev in list(feed.applied):
        feed.apply(ev)
    for ev in list(feed.applied)[:3]:
        feed.apply(ev)
    assert (feed.figures(MARCH), feed.figures(APRIL)) == before


def test_figures_of_an_empty_period(feed: Feed) -> None:
    assert feed.figures(APRIL) == {
        "contacts": {"total": 0, "by_channel": {}, "by_direction": {},
                     "by_caller_is": {"not_recorded": 0}, "by_issue": {},
                     "by_risk_level": {"not_assessed": 0}, "by_shift_slot": {},
                     "outside_shifts": 0, "missed_calls": 0, "signposting": {}},
        "callers": {"unique": 0, "new": 0, "repeat": 0, "by_gender": {},
                    "gender_not_disclosed": 0, "by_age_band": {},
                    "age_band_not_disclosed": 0},
        "referrals": {"total": 0, "by_source": {}, "accepted": 0, "declined": 0},
        "escalations": {"total": 0, "by_kind": {}},
        "follow_ups": {"due": 0, "completed": 0, "overdue": 0},
    }
