"""The contact service's rules as unit tests: no I/O."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from services.contact.domain import (
    Caller,
    Contact,
    DirectoryEntry,
    Referral,
    caller_id_for,
    is_open,
    new_caller_ref,
)
from shared.domain import InvalidCommand, RuleBroken
from shared.privacy import normalise_uk_phone

NOW = datetime(2026, 11, 29, 22, 0, tzinfo=UTC)
META = {"actor": "s-1"}
LONDON = ZoneInfo("Europe/London")


def sealed(text: str = "x") -> str:
    return f"pd1:subject:{text}"


def contact(**kw: object) -> Contact:
    fields: dict[str, object] = {"channel": "phone", "started_at": NOW - timedelta(minutes=20),
                                 "issues": ["self_harm"], "meta": META, "now": NOW}
    fields.update(kw)
    return Contact.log(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"direction": "sideways"}, "direction"),
        ({"caller_is": "neighbour"}, "caller_is"),
        ({"age_band": "30s"}, "age_band"),
        ({"gender": "x"}, "gender"),
        ({"supporter_ids": [""]}, "supporter_ids"),
        ({"supporter_ids": [f"s{i}" for i in range(11)]}, "supporter_ids"),
        ({"follow_up_what": sealed()}, "follow_up.by"),
    ],
)
def test_enums_and_lists_are_validated(kw: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidCommand) as info:
        contact(**kw)
    assert info.value.field == field


@pytest.mark.parametrize("field", ["summary", "phone", "follow_up_what"])
def test_personal_data_must_arrive_sealed(field: str) -> None:
    kw: dict[str, object] = {field: "Jo from Brixton, 07700 900123"}
    if field == "follow_up_what":
        kw["follow_up_by"] = NOW + timedelta(days=1)
    with pytest.raises(InvalidCommand) as info:
        contact(**kw)
    assert "sealed" in info.value.message


def test_risk_trail_is_never_overwritten_only_superseded() -> None:
    c = contact()
    c.assess_risk(level="high", factors=sealed("f"), protective_factors=None,
                  decision=sealed("d"), reasoning=sealed("r"), meta=META, now=NOW)
    c.assess_risk(level="low", factors=None, protective_factors=sealed("p"),
                  decision=sealed("d2"), reasoning=None, meta={"actor": "s-2"}, now=NOW)
    assert [r["level"] for r in c.risk_trail] == ["high", "low"]
    assert c.risk_trail[1]["supersedes"] == 1 and c.risk_trail[0]["supersedes"] is None
    assert c.risk_trail[0]["decision"] == sealed("d")  # untouched by the later one
    assert c.risk_level == "low"
    with pytest.raises(InvalidCommand):
        c.assess_risk(level="extreme", factors=None, protective_factors=None,
                      decision=sealed(), reasoning=None, meta=META)


def test_immediate_risk_needs_an_escalation_or_a_reason_to_close() -> None:
    c = contact()
    c.assess_risk(level="immediate", factors=None, protective_factors=None,
                  decision=sealed(), reasoning=None, meta=META, now=NOW)
    with pytest.raises(RuleBroken):
        c.close(no_escalation_reason=None, meta=META)
    c.close(no_escalation_reason=sealed("paramedics already on scene"), meta=META)
    assert c.closed

    escalated = contact()
    escalated.assess_risk(level="immediate", factors=None, protective_factors=None,
                          decision=sealed(), reasoning=None, meta=META, now=NOW)
    escalated.escalate(kind="emergency_services", reason=sealed(), reference=None, meta=META,
                       now=NOW)
    escalated.close(no_escalation_reason=None, meta=META)
    assert escalated.closed
    with pytest.raises(RuleBroken):
        escalated.close(no_escalation_reason=None, meta=META)


def test_a_lower_later_assessment_lifts_the_closing_rule() -> None:
    c = contact()
    for level in ("immediate", "medium"):
        c.assess_risk(level=level, factors=None, protective_factors=None, decision=sealed(),
                      reasoning=None, meta=META, now=NOW)
    c.close(no_escalation_reason=None, meta=META)
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


def test_distressing_contact_requests_a_debrief() -> None:
    c = contact(distressing=True, supporter_ids=["s-1", "s-2"])
    names = [type(e).__name__ for e in c.collect_events()]
    assert names == ["Logged", "DebriefRequested"] and c.debrief_requested


def test_follow_ups_complete_once() -> None:
    c = contact(follow_up_by=NOW + timedelta(days=1), follow_up_what=sealed("ring Tue"))
    c.complete_follow_up(n=1, outcome=None, meta=META, now=NOW)
    assert c.follow_ups[0]["completed_at"] == NOW
    with pytest.raises(RuleBroken):
        c.complete_follow_up(n=1, outcome=None, meta=META)
    with pytest.raises(LookupError):
        c.complete_follow_up(n=2, outcome=None, meta=META)


def test_texts_only_with_consent_and_only_on_text_threads() -> None:
    thread = Contact.open_text_thread(caller_id=uuid.uuid4(), caller_ref="C-00000000",
                                      age_band=None, gender=None, started_at=NOW, meta=META)
    thread.receive_message(body=sealed("hi"), at=NOW, meta=META)
    with pytest.raises(RuleBroken):
        thread.send_message(body=sealed("hello"), at=NOW, provider_ref="r", caller_consents=False,
                            meta=META)
    thread.send_message(body=sealed("hello"), at=NOW, provider_ref="r", caller_consents=True,
                        meta=META)
    assert [m["direction"] for m in thread.messages] == ["inbound", "outbound"]
    with pytest.raises(RuleBroken):
        contact().send_message(body=sealed(), at=NOW, provider_ref="r", caller_consents=True,
                               meta=META)


def test_caller_history_needs_consent_and_erasure_is_final() -> None:
    ref = new_caller_ref()
    caller = Caller.register(caller_ref=ref, alias=sealed(), phone=None, gender="female",
                             age_band="25_31", consent_to_keep_history=False,
                             consent_to_text=True, meta=META)
    assert caller.id == caller_id_for(ref)
    with pytest.raises(RuleBroken):
        caller.read_history(purpose=sealed("rang again"), meta=META)
    caller.change_consent(consent_to_keep_history=True, consent_to_text=None, meta=META)
    caller.read_history(purpose=sealed("rang again"), meta=META)
    caller.erase(meta=META)
    assert caller.erased and not caller.consent_to_text
    with pytest.raises(RuleBroken):
        caller.read_history(purpose=sealed(), meta=META)
    with pytest.raises(RuleBroken):
        caller.erase(meta=META)


def test_referral_needs_consent_and_is_decided_once() -> None:
    kw: dict[str, object] = {"received_at": NOW - timedelta(days=3), "source": "gp",
                             "referrer_organisation": "Stockwell GP", "caller_id": uuid.uuid4(),
                             "caller_ref": "C-00000000", "reason": sealed(), "meta": META,
                             "now": NOW}
    with pytest.raises(InvalidCommand) as info:
        Referral.receive(consent_to_contact=False, **kw)  # type: ignore[arg-type]
    assert info.value.field == "consent_to_contact"
    with pytest.raises(InvalidCommand):
        Referral.receive(consent_to_contact=True, **{**kw, "source": "police"})  # type: ignore[arg-type]
    r = Referral.receive(consent_to_contact=True, **kw)  # type: ignore[arg-type]
    r.decide(accept=False, reason=sealed(), meta=META)
    assert r.status == "declined"
    with pytest.raises(RuleBroken):
        r.decide(accept=True, reason=sealed(), meta=META)


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
                           address=None, notes=None, meta=META)
    with pytest.raises(InvalidCommand):
        DirectoryEntry.add(name=" ", helps_with=["bereavement"], phone=None, opening_hours=[],
                           address=None, notes=None, meta=META)


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
