"""The contact domain's rules, without I/O: each rule tested once, here, at the
aggregate that enforces it."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from services.contact.domain import (
    Caller,
    Contact,
    DirectoryEntry,
    FollowUp,
    Referral,
    Rota,
    RotaSupporter,
    caller_id_for,
    check_referrer_may_name_caller,
    is_open,
    new_caller_ref,
)
from services.contact.domain.codes import ISSUES, MAX_SUPPORTERS
from services.contact.public_events import public_event
from shared.kernel import InvalidCommand, NotKnown, NotPermitted, RuleBroken, acting
from shared.privacy import normalise_uk_phone

NOW = datetime(2026, 11, 29, 22, 0, tzinfo=UTC)
LONDON = ZoneInfo("Europe/London")


@pytest.fixture(autouse=True)
def _supporter_acts() -> Iterator[None]:
    """Who acts: set once per command by the web layer; here, for every test."""
    with acting("supporter-1", "c-1"):
        yield


def sealed(text: str = "x") -> str:
    return f"pd1:subject:{text}"


def log(**overrides: object) -> Contact:
    fields: dict[str, object] = {
        "channel": "phone",
        "started_at": NOW - timedelta(minutes=30),
        "ended_at": NOW - timedelta(minutes=10),
        "issues": ["bereavement"],
        "now": NOW,
    }
    fields.update(overrides)
    return Contact.log(**fields)  # type: ignore[arg-type]


def contact(**kw: object) -> Contact:
    fields: dict[str, object] = {"channel": "phone", "started_at": NOW - timedelta(minutes=20),
                                 "issues": ["self_harm"], "now": NOW}
    fields.update(kw)
    return Contact.log(**fields)  # type: ignore[arg-type]


def a_caller(**kw: object) -> Caller:
    fields: dict[str, object] = {"caller_ref": new_caller_ref(), "alias": sealed(), "phone": None,
                                 "gender": "female", "age_band": "25_31",
                                 "consent_to_keep_history": False, "consent_to_text": True}
    fields.update(kw)
    return Caller.register(**fields)  # type: ignore[arg-type]


def test_every_event_records_who_acted_and_the_correlation() -> None:
    c = log()
    with acting("coord-2"):
        c.close(no_escalation_reason=None)
    logged, closed = c.collect_events()
    assert logged.meta == {"actor": "supporter-1", "correlation_id": "c-1"}  # type: ignore[attr-defined]
    assert closed.meta == {"actor": "coord-2"}  # type: ignore[attr-defined]


def test_a_logged_contact_keeps_its_coded_fields_in_utc() -> None:
    london = datetime(2026, 7, 1, 23, 30).astimezone()  # any offset is kept as UTC
    c = log(started_at=london, ended_at=None, issues=["housing", "housing", "abuse"])
    assert c.started_at.tzinfo == UTC and c.started_at == london
    assert c.issues == ["housing", "abuse"]  # duplicates folded, order kept
    assert c.version == 1 and c.logged_by == "supporter-1"


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"channel": "fax"}, "channel"),
        ({"issues": []}, "issues"),
        ({"issues": ["unicorns"]}, "issues"),
        ({"issues": "housing"}, "issues"),
        ({"started_at": datetime(2026, 11, 29, 21, 0)}, "started_at"),  # naive
        ({"started_at": NOW + timedelta(hours=1), "ended_at": None}, "started_at"),
        ({"ended_at": NOW - timedelta(hours=1)}, "ended_at"),  # before the start
        ({"ended_at": NOW + timedelta(hours=1)}, "ended_at"),
    ],
)
def test_invalid_contacts_are_refused_naming_the_field(overrides: dict[str, object],
                                                       field: str) -> None:
    with pytest.raises(InvalidCommand) as info:
        log(**overrides)
    assert info.value.field == field


def test_a_small_clock_skew_is_tolerated() -> None:
    c = log(started_at=NOW + timedelta(minutes=2), ended_at=None)
    assert c.started_at == NOW + timedelta(minutes=2)


def test_a_correction_is_a_new_event_with_its_reason_and_keeps_the_original() -> None:
    c = log()
    with acting("coord"):
        c.correct(reason="pd1:s:re-read", issues=["panic_attack"], now=NOW)
    logged, corrected = c.collect_events()
    assert isinstance(logged, Contact.Logged) and logged.issues == ["bereavement"]
    assert isinstance(corrected, Contact.Corrected)
    assert corrected.reason == "pd1:s:re-read" and corrected.meta["actor"] == "coord"
    assert c.issues == ["panic_attack"] and c.corrections == 1 and c.version == 2


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"reason": " ", "issues": ["housing"]}, "reason"),
        ({"reason": "x"}, "issues"),
        ({"reason": "x", "issues": []}, "issues"),
        ({"reason": "x", "ended_at": NOW - timedelta(hours=2)}, "ended_at"),
    ],
)
def test_invalid_corrections_are_refused(kwargs: dict[str, object], field: str) -> None:
    c = log()
    with pytest.raises(InvalidCommand) as info:
        c.correct(now=NOW, **kwargs)  # type: ignore[arg-type]
    assert info.value.field == field
    assert c.version == 1


def test_public_events_carry_coded_fields_only() -> None:
    c = log()
    c.correct(reason="pd1:s:sealed", issues=["housing"], now=NOW)
    logged, corrected = c.collect_events()
    pub = public_event(logged)
    assert pub is not None and pub.type == "ContactLogged"
    assert "summary" not in pub.data and "phone" not in pub.data
    assert {"contact_id", "channel", "issues", "caller_ref", "age_band"} <= set(pub.data)
    pub2 = public_event(corrected)
    assert pub2 is not None and pub2.type == "ContactCorrected"
    assert "reason" not in pub2.data
    assert "pd1:" not in repr(pub2.data)


def test_issue_codes_are_the_fifteen_of_the_monitoring_form() -> None:
    assert len(ISSUES) == 15 and "suicidal_thoughts" in ISSUES


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"direction": "sideways"}, "direction"),
        ({"caller_is": "neighbour"}, "caller_is"),
        ({"supporter_ids": [""]}, "supporter_ids"),
        ({"supporter_ids": [f"s{i}" for i in range(11)]}, "supporter_ids"),
        ({"follow_up": FollowUp(what=sealed())}, "follow_up.by"),
    ],
)
def test_enums_and_lists_are_validated(kw: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidCommand) as info:
        contact(**kw)
    assert info.value.field == field


@pytest.mark.parametrize("field", ["summary", "phone", "follow_up"])
def test_personal_data_must_arrive_sealed(field: str) -> None:
    plain = "Jo from Brixton, 07700 900123"
    kw: dict[str, object] = {field: plain}
    if field == "follow_up":
        kw[field] = FollowUp(by=NOW + timedelta(days=1), what=plain)
    with pytest.raises(InvalidCommand) as info:
        contact(**kw)
    assert "sealed" in info.value.message


def test_risk_trail_is_never_overwritten_only_superseded() -> None:
    c = contact()
    c.assess_risk(level="high", factors=sealed("f"), protective_factors=None,
                  decision=sealed("d"), reasoning=sealed("r"), now=NOW)
    c.assess_risk(level="low", factors=None, protective_factors=sealed("p"),
                  decision=sealed("d2"), reasoning=None, now=NOW)
    assert [r["level"] for r in c.risk_trail] == ["high", "low"]
    assert c.risk_trail[1]["supersedes"] == 1 and c.risk_trail[0]["supersedes"] is None
    assert c.risk_trail[0]["decision"] == sealed("d")  # untouched by the later one
    assert c.risk_level == "low"
    with pytest.raises(InvalidCommand):
        c.assess_risk(level="extreme", factors=None, protective_factors=None,
                      decision=sealed(), reasoning=None)


def test_immediate_risk_needs_an_escalation_or_a_reason_to_close() -> None:
    c = contact()
    c.assess_risk(level="immediate", factors=None, protective_factors=None,
                  decision=sealed(), reasoning=None, now=NOW)
    with pytest.raises(RuleBroken):
        c.close(no_escalation_reason=None)
    c.close(no_escalation_reason=sealed("paramedics already on scene"))
    assert c.closed

    escalated = contact()
    escalated.assess_risk(level="immediate", factors=None, protective_factors=None,
                          decision=sealed(), reasoning=None, now=NOW)
    escalated.escalate(kind="emergency_services", reason=sealed(), reference=None,
                       now=NOW)
    escalated.close(no_escalation_reason=None)
    assert escalated.closed
    with pytest.raises(RuleBroken):
        escalated.close(no_escalation_reason=None)


def test_a_lower_later_assessment_lifts_the_closing_rule() -> None:
    c = contact()
    for level in ("immediate", "medium"):
        c.assess_risk(level=level, factors=None, protective_factors=None, decision=sealed(),
                      reasoning=None, now=NOW)
    c.close(no_escalation_reason=None)
    assert c.closed


def test_missed_calls_phone_only_and_call_back_when_number_known() -> None:
    with pytest.raises(InvalidCommand) as info:
        contact(channel="text", answered=False, issues=[])
    assert info.value.field == "answered"
    missed = contact(answered=False, issues=[], phone=sealed("n"), number_known=True)
    assert missed.follow_ups[0]["kind"] == "call_back"
    assert missed.follow_ups[0]["due_by"] == missed.started_at + timedelta(hours=1)
    unknown = contact(answered=False, issues=[])
    assert unknown.follow_ups == []
    with pytest.raises(InvalidCommand):
        contact(answered=True, issues=[])  # an answered call names its issues


def _rota_of(n: int) -> tuple[Rota, list[str]]:
    ids = [str(uuid.uuid4()) for _ in range(n)]
    return Rota(supporters={i: RotaSupporter(id=i) for i in ids}), ids


def test_distressing_contact_requests_a_debrief() -> None:
    rota, ids = _rota_of(2)
    c = contact(distressing=True, supporter_ids=ids, rota=rota)
    events = c.collect_events()
    assert [type(e).__name__ for e in events] == ["Logged", "DebriefRequested"]
    assert c.debrief_requested and events[1].supporter_ids == ids  # type: ignore[attr-defined]


def test_follow_ups_complete_once() -> None:
    c = contact(follow_up=FollowUp(by=NOW + timedelta(days=1), what=sealed("ring Tue")))
    c.complete_follow_up(n=1, outcome=None, now=NOW)
    assert c.follow_ups[0]["completed_at"] == NOW
    with pytest.raises(RuleBroken):
        c.complete_follow_up(n=1, outcome=None)
    with pytest.raises(NotKnown):
        c.complete_follow_up(n=2, outcome=None)


def test_texts_only_with_consent_and_only_on_text_threads() -> None:
    texter = a_caller(consent_to_text=False)
    thread = Contact.open_text_thread(caller_id=texter.id, caller_ref=texter.caller_ref,
                                      age_band=None, gender=None, started_at=NOW)
    thread.receive_message(body=sealed("hi"), at=NOW)
    with pytest.raises(RuleBroken, match="consented"):
        thread.send_message(body=sealed("hello"), at=NOW, provider_ref="r", caller=texter)
    with pytest.raises(RuleBroken, match="no known caller"):
        thread.send_message(body=sealed("hello"), at=NOW, provider_ref="r", caller=None)
    texter.change_consent(consent_to_keep_history=None, consent_to_text=True)
    with acting("s-2"):
        thread.send_message(body=sealed("hello"), at=NOW, provider_ref="r", caller=texter)
    assert [m["direction"] for m in thread.messages] == ["inbound", "outbound"]
    assert thread.messages[1]["by"] == "s-2"
    texter.erase()  # an erased caller gets no more texts, whatever they consented to
    with pytest.raises(RuleBroken, match="consented"):
        thread.send_message(body=sealed("hello"), at=NOW, provider_ref="r", caller=texter)
    with pytest.raises(RuleBroken, match="only a text conversation"):
        contact().send_message(body=sealed(), at=NOW, provider_ref="r", caller=texter)


def test_caller_history_needs_consent_and_erasure_is_final() -> None:
    caller = a_caller()
    assert caller.id == caller_id_for(caller.caller_ref)
    with pytest.raises(NotPermitted):
        caller.read_history(purpose=sealed("rang again"))
    caller.change_consent(consent_to_keep_history=True, consent_to_text=None)
    caller.read_history(purpose=sealed("rang again"))
    caller.erase()
    assert caller.erased and not caller.consent_to_text
    with pytest.raises(RuleBroken):
        caller.read_history(purpose=sealed())
    with pytest.raises(RuleBroken):
        caller.erase()


def test_referral_needs_consent_and_is_decided_once() -> None:
    kw: dict[str, object] = {"received_at": NOW - timedelta(days=3), "source": "gp",
                             "referrer_organisation": sealed("Stockwell GP"), "caller": a_caller(),
                             "reason": sealed(), "now": NOW}
    with pytest.raises(InvalidCommand) as info:
        Referral.receive(consent_to_contact=False, **kw)  # type: ignore[arg-type]
    assert info.value.field == "consent_to_contact"
    with pytest.raises(InvalidCommand):
        Referral.receive(consent_to_contact=True, **{**kw, "source": "police"})  # type: ignore[arg-type]
    r = Referral.receive(consent_to_contact=True, **kw)  # type: ignore[arg-type]
    with acting("coord-1"):
        r.decide(accept=False, reason=sealed())
    assert r.status == "declined" and r.decided_by == "coord-1"
    with pytest.raises(RuleBroken):
        r.decide(accept=True, reason=sealed())


def test_directory_opening_hours_in_london_time_across_midnight() -> None:
    hours = [{"day": "sun", "opens": "18:00", "closes": "23:30"},
             {"day": "fri", "opens": "22:00", "closes": "02:00"}]
    sunday_22 = datetime(2026, 11, 29, 22, 0, tzinfo=LONDON)  # a Sunday
    assert is_open(hours, sunday_22)
    assert not is_open(hours, sunday_22.replace(hour=17))
    saturday_01 = datetime(2026, 11, 28, 1, 0, tzinfo=LONDON)
    assert is_open(hours, saturday_01)
    assert not is_open(hours, saturday_01.replace(hour=3))
    # 21:30 UTC on a summer Sunday is 22:30 in London (BST): open.
    summer = datetime(2026, 7, 5, 21, 30, tzinfo=UTC).astimezone(LONDON)
    assert is_open(hours, summer)
    with pytest.raises(InvalidCommand):
        DirectoryEntry.add(name="X", helps_with=["bereavement"], phone=None,
                           opening_hours=[{"day": "sun", "opens": "25:00", "closes": "01:00"}],
                           address=None, notes=None)
    with pytest.raises(InvalidCommand):
        DirectoryEntry.add(name=" ", helps_with=["bereavement"], phone=None, opening_hours=[],
                           address=None, notes=None)


@pytest.mark.parametrize(
    "raw", ["07700 900123", "+44 7700 900123", "+447700900123", "447700900123",
            "0044 7700 900 123", "(07700) 900-123", "+44 (0)7700 900123"],
)
def test_uk_numbers_normalise_to_e164(raw: str) -> None:
    assert normalise_uk_phone(raw) == "+447700900123"


@pytest.mark.parametrize("raw", ["12345", "+33 6 12 34 56 78", "07700", "phone me"])
def test_non_uk_numbers_are_refused(raw: str) -> None:
    with pytest.raises(InvalidCommand) as info:
        normalise_uk_phone(raw)
    assert info.value.field == "phone"


def test_a_contact_names_a_caller_only_while_their_data_exists() -> None:
    caller = a_caller(age_band="18_24")
    c = contact(caller=caller)
    assert (c.caller_id, c.caller_ref, c.age_band) == (caller.id, caller.caller_ref, "18_24")
    caller.erase()
    with pytest.raises(InvalidCommand) as info:
        contact(caller=caller)
    assert info.value.field == "caller_ref"
    with pytest.raises(InvalidCommand) as info:
        Referral.receive(received_at=NOW, source="gp", referrer_organisation=None, caller=caller,
                         reason=None, consent_to_contact=True, now=NOW)
    assert info.value.field == "caller_ref"


def test_a_needed_follow_up_says_when_one_not_needed_is_not_recorded() -> None:
    with pytest.raises(InvalidCommand) as info:
        contact(follow_up=FollowUp(needed=True, by=None))
    assert info.value.field == "follow_up.by"
    assert contact(follow_up=FollowUp(needed=False, what=sealed())).follow_ups == []
    due = NOW + timedelta(days=2)
    agreed = contact(follow_up=FollowUp(by=due, what=sealed("ring")))
    assert agreed.follow_ups[0]["kind"] == "agreed" and agreed.follow_ups[0]["due_by"] == due


def test_at_most_the_maximum_of_supporters_on_one_contact() -> None:
    rota, ids = _rota_of(MAX_SUPPORTERS + 1)
    assert len(contact(supporter_ids=ids[:MAX_SUPPORTERS], rota=rota).supporter_ids) \
        == MAX_SUPPORTERS
    with pytest.raises(InvalidCommand, match=f"at most {MAX_SUPPORTERS}"):
        contact(supporter_ids=ids, rota=rota)


@pytest.mark.parametrize(
    ("slot", "field"),
    [
        ({"day": "someday", "opens": "10:00", "closes": "12:00"}, "opening_hours.0.day"),
        ({"day": "mon", "opens": "10:00:00", "closes": "12:00"}, "opening_hours.0.opens"),
        ({"day": "mon", "opens": "9:00", "closes": "12:00"}, "opening_hours.0.opens"),
        ({"day": "mon", "opens": "10:00", "closes": "24:00"}, "opening_hours.0.closes"),
        ({"day": "mon", "opens": "10:00"}, "opening_hours.0.closes"),
        ({"day": "mon", "opens": "10:00", "closes": "10:00"}, "opening_hours.0.closes"),
    ],
)
def test_opening_hours_are_london_hh_mm_slots(slot: dict[str, str], field: str) -> None:
    with pytest.raises(InvalidCommand) as info:
        DirectoryEntry.add(name="Samaritans", helps_with=["bereavement"], phone=None,
                           opening_hours=[slot], address=None, notes=None)
    assert info.value.field == field


# ------------------------------------------------------------------ plausible times

EPOCH_2000 = datetime(2000, 1, 1, tzinfo=UTC)
YEAR_1_PLUS_1 = datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=1)))  # UTC: year 0
YEAR_9999_MINUS_1 = datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone(timedelta(hours=-1)))


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda: log(started_at=EPOCH_2000 - timedelta(seconds=1), ended_at=None), "started_at"),
        (lambda: log(started_at=datetime(387, 7, 26, tzinfo=UTC), ended_at=None), "started_at"),
        (lambda: log(started_at=YEAR_1_PLUS_1, ended_at=None), "started_at"),
        (lambda: log(started_at=YEAR_9999_MINUS_1, ended_at=None), "started_at"),
        (lambda: log(ended_at=YEAR_9999_MINUS_1), "ended_at"),
        (lambda: log().correct(reason=sealed(), ended_at=YEAR_9999_MINUS_1, now=NOW),
         "ended_at"),
        (lambda: Referral.receive(received_at=datetime(1999, 12, 31, tzinfo=UTC), source="gp",
                                  referrer_organisation=None, caller=a_caller(), reason=None,
                                  consent_to_contact=True, now=NOW), "received_at"),
        (lambda: Referral.receive(received_at=YEAR_1_PLUS_1, source="gp",
                                  referrer_organisation=None, caller=a_caller(), reason=None,
                                  consent_to_contact=True, now=NOW), "received_at"),
        (lambda: contact(follow_up=FollowUp(by=datetime(1999, 12, 31, tzinfo=UTC),
                                            what=sealed())), "follow_up.by"),
        (lambda: contact(follow_up=FollowUp(by=NOW + timedelta(days=732), what=sealed())),
         "follow_up.by"),
        (lambda: contact(follow_up=FollowUp(by=YEAR_9999_MINUS_1, what=sealed())),
         "follow_up.by"),
        (lambda: Contact.open_text_thread(caller_id=caller_id_for("C-00000000"),
                                          caller_ref="C-00000000", age_band=None, gender=None,
                                          started_at=YEAR_1_PLUS_1), "started_at"),
        (lambda: contact(channel="text").receive_message(body=sealed(), at=YEAR_1_PLUS_1),
         "at"),
        (lambda: contact(channel="text").receive_message(
            body=sealed(), at=NOW + timedelta(days=2), now=NOW), "at"),
    ],
)
def test_times_are_plausible_or_refused_naming_the_field(make: Callable[[], object],
                                                         field: str) -> None:
    """A contact, referral or text from 2000-01-01 to a day ahead; a follow-up not before
    2000 and at most two years ahead. A time out of Python's range is refused the same
    way, never an OverflowError."""
    with pytest.raises(InvalidCommand) as info:
        make()
    assert info.value.field == field


def test_the_edges_of_the_plausible_windows_are_accepted() -> None:
    assert log(started_at=EPOCH_2000, ended_at=None).started_at == EPOCH_2000
    far = NOW + timedelta(days=730)
    assert contact(follow_up=FollowUp(by=far, what=sealed())).follow_ups[0]["due_by"] == far
    r = Referral.receive(received_at=EPOCH_2000, source="gp", referrer_organisation=None,
                         caller=a_caller(), reason=None, consent_to_contact=True, now=NOW)
    assert r.received_at == EPOCH_2000


# ------------------------------------------------------------------ immediate risk


def test_an_immediate_assessment_after_closing_reopens_the_contact_until_escalated() -> None:
    """The rule holds whatever the order: closed at low risk, then assessed at immediate
    risk, the contact is open again and closes only with an escalation or a reason."""
    c = contact()
    c.assess_risk(level="low", factors=None, protective_factors=None, decision=sealed(),
                  reasoning=None, now=NOW)
    c.close(no_escalation_reason=None)
    c.assess_risk(level="immediate", factors=None, protective_factors=None,
                  decision=sealed(), reasoning=None, now=NOW)
    assert not c.closed and c.risk_level == "immediate"
    *_, assessed, reopened = c.collect_events()
    assert isinstance(assessed, Contact.RiskAssessed)
    assert isinstance(reopened, Contact.Reopened)
    published = public_event(reopened)
    assert published is not None and published.type == "ContactReopened"
    with pytest.raises(RuleBroken, match="immediate risk"):
        c.close(no_escalation_reason=None)
    c.escalate(kind="crisis_team", reason=sealed(), reference=None, now=NOW)
    c.close(no_escalation_reason=None)
    assert c.closed
    c.assess_risk(level="immediate", factors=None, protective_factors=None,  # escalated:
                  decision=sealed(), reasoning=None, now=NOW)               # stays closed
    assert c.closed


# ------------------------------------------------------------- who sees what, erasure


def test_an_erased_caller_has_no_phone() -> None:
    caller = a_caller(phone=sealed("n"))
    assert caller.has_phone
    caller.erase()
    assert not caller.has_phone


def test_a_referrers_organisation_must_arrive_sealed() -> None:
    """A GP practice tied to a caller is personal data, sealed with the caller's key."""
    kw: dict[str, object] = {"received_at": NOW, "source": "gp", "caller": a_caller(),
                             "reason": None, "consent_to_contact": True, "now": NOW}
    with pytest.raises(InvalidCommand) as info:
        Referral.receive(referrer_organisation="Stockwell GP", **kw)  # type: ignore[arg-type]
    assert info.value.field == "referrer_organisation"
    r = Referral.receive(referrer_organisation=sealed("GP"), **kw)  # type: ignore[arg-type]
    assert r.referrer_organisation == sealed("GP")


def test_a_partner_refers_with_details_never_by_caller_ref() -> None:
    """Whether a reference is known, unknown or erased would tell a partner who calls the
    line: a partner's referral brings the person's details; the coordinator may name one."""
    with pytest.raises(InvalidCommand) as info:
        check_referrer_may_name_caller(by_partner=True, names_caller=True)
    assert info.value.field == "caller_ref"
    check_referrer_may_name_caller(by_partner=True, names_caller=False)
    check_referrer_may_name_caller(by_partner=False, names_caller=True)
