"""The links between records, without I/O: corrections of what a contact was about and
where the caller was signposted (a text conversation gets them this way), an accepted
referral's first-contact follow-up and the contact that makes it, and directory
entries open 24/7. Events stored before a field existed replay with its default."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.contact.domain import Caller, Contact, DirectoryEntry, Referral, is_open
from services.contact.public_events import public_event
from shared.kernel import InvalidCommand, RuleBroken, acting

NOW = datetime(2026, 11, 29, 22, 0, tzinfo=UTC)
ENTRY_A, ENTRY_B = str(uuid.uuid4()), str(uuid.uuid4())


@pytest.fixture(autouse=True)
def _coordinator_acts() -> Iterator[None]:
    with acting("coord-1", "c-1"):
        yield


def sealed(text: str = "x") -> str:
    return f"pd1:subject:{text}"


def log(**overrides: Any) -> Contact:
    fields: dict[str, Any] = {"channel": "phone", "started_at": NOW - timedelta(minutes=30),
                              "ended_at": NOW - timedelta(minutes=10),
                              "issues": ["bereavement"], "now": NOW}
    fields.update(overrides)
    return Contact.log(**fields)


def replayed(events: list[Any], of: type, drop: tuple[str, ...]) -> Any:
    """The aggregate rebuilt from its events, as if the fields ``drop`` of the events
    ``of`` a class had not existed when they were stored (such an event lacks them)."""
    aggregate = None
    for ev in events:
        if isinstance(ev, of):
            for name in drop:
                assert name in vars(ev)
                vars(ev).pop(name)
        aggregate = ev.mutate(aggregate)
    return aggregate


# -- corrections -----------------------------------------------------------------------


def test_a_correction_sets_summary_caller_is_and_signposting_leaving_the_rest() -> None:
    c = log(summary=sealed("first"), signposted_to=[ENTRY_A])
    c.correct(reason=sealed("re-read"), summary=sealed("second"), caller_is="professional",
              signposted_to=[ENTRY_B, ENTRY_B, ENTRY_A], now=NOW)
    assert (c.summary, c.caller_is, c.signposted_to) == (
        sealed("second"), "professional", [ENTRY_B, ENTRY_A])
    assert c.issues == ["bereavement"] and c.corrections == 1 and c.version == 2
    c.correct(reason=sealed("none after all"), signposted_to=[], now=NOW)
    assert c.signposted_to == [] and c.summary == sealed("second")
    logged, *_ = c.collect_events()
    assert logged.signposted_to == [ENTRY_A]  # the original stays in the history


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"summary": "in clear"}, "summary"),
    ({"caller_is": "a_stranger"}, "caller_is"),
    ({}, "issues"),
])
def test_a_bad_correction_is_refused_naming_the_field(kwargs: dict[str, Any],
                                                      field: str) -> None:
    c = log()
    with pytest.raises(InvalidCommand) as info:
        c.correct(reason=sealed(), now=NOW, **kwargs)
    assert info.value.field == field and c.version == 1


def test_a_text_conversation_gets_a_summary_caller_is_and_signposting() -> None:
    caller = Caller.register(caller_ref="C-0000AAAA", alias=None, phone=None, gender=None,
                             age_band=None, consent_to_keep_history=True,
                             consent_to_text=True)
    thread = Contact.open_text_thread(caller_id=caller.id, caller_ref=caller.caller_ref,
                                      age_band=None, gender=None, started_at=NOW, now=NOW)
    thread.correct(reason=sealed(), issues=["housing"], summary=sealed("texted"),
                   caller_is="person_in_crisis", signposted_to=[ENTRY_A], now=NOW)
    assert (thread.issues, thread.summary, thread.caller_is, thread.signposted_to) == (
        ["housing"], sealed("texted"), "person_in_crisis", [ENTRY_A])


def test_a_correction_stored_before_the_new_fields_replays_as_before() -> None:
    c = log(summary=sealed("kept"), caller_is="professional", signposted_to=[ENTRY_A])
    c.correct(reason=sealed(), issues=["housing"], now=NOW)
    old = replayed(c.collect_events(), Contact.Corrected,
                   ("summary", "caller_is", "signposted_to"))
    assert (old.issues, old.summary, old.caller_is, old.signposted_to, old.corrections) == (
        ["housing"], sealed("kept"), "professional", [ENTRY_A], 1)


def test_the_public_correction_carries_codes_and_ids_never_the_summary() -> None:
    c = log()
    c.correct(reason=sealed(), summary=sealed("secret words"), caller_is="professional",
              signposted_to=[ENTRY_A], now=NOW)
    pub = public_event(c.collect_events()[-1])
    assert pub is not None and pub.type == "ContactCorrected"
    assert pub.data["caller_is"] == "professional" and pub.data["signposted_to"] == [ENTRY_A]
    assert pub.data["issues"] is None and "summary" not in pub.data
    assert "pd1:" not in repr(pub.data) and "secret" not in repr(pub.data)


# -- referrals ---------------------------------------------------------------------------


def a_caller(ref: str = "C-0000BBBB") -> Caller:
    return Caller.register(caller_ref=ref, alias=None, phone=None, gender=None,
                           age_band=None, consent_to_keep_history=True, consent_to_text=False)


def a_referral(caller: Caller, *, by: str = "gp-system") -> Referral:
    with acting(by, "c-2"):
        return Referral.receive(received_at=NOW - timedelta(days=1), source="gp",
                                referrer_organisation=None, caller=caller, reason=None,
                                consent_to_contact=True, now=NOW)


def test_accepting_opens_first_contact_due_within_the_days_given() -> None:
    referral = a_referral(a_caller())
    assert referral.referred_by == "gp-system" and referral.first_contact_due_by is None
    referral.decide(accept=True, reason=sealed(), now=NOW,
                    first_contact_within=timedelta(days=3))
    assert referral.status == "accepted" and referral.first_contact_due_by == NOW + timedelta(
        days=3)
    pub = public_event(referral.collect_events()[-1])
    assert pub is not None and pub.data == {
        "referral_id": str(referral.id),
        "first_contact_due_by": (NOW + timedelta(days=3)).isoformat()}


def test_an_acceptance_stored_before_the_follow_up_existed_has_none() -> None:
    referral = a_referral(a_caller())
    referral.decide(accept=True, reason=sealed(), now=NOW)
    old = replayed(referral.collect_events(), Referral.Accepted, ("first_contact_due_by",))
    assert old.status == "accepted" and old.first_contact_due_by is None


def test_a_declined_referral_opens_nothing() -> None:
    referral = a_referral(a_caller())
    referral.decide(accept=False, reason=sealed(), now=NOW)
    assert referral.first_contact_due_by is None


@pytest.mark.parametrize("decision", [None, False])
def test_only_an_accepted_referral_takes_a_first_contact(decision: bool | None) -> None:
    caller = a_caller()
    referral = a_referral(caller)
    if decision is not None:
        referral.decide(accept=decision, reason=sealed(), now=NOW)
    with pytest.raises(InvalidCommand) as info:
        referral.check_first_contact(caller_id=caller.id, answered=True)
    assert info.value.field == "referral_id" and "not accepted" in str(info.value)
    with pytest.raises(InvalidCommand):
        referral.make_first_contact(contact_id=uuid.uuid4(), at=NOW)


def test_first_contact_is_with_the_referred_person_and_answered() -> None:
    caller = a_caller()
    referral = a_referral(caller)
    referral.decide(accept=True, reason=sealed(), now=NOW)
    referral.check_first_contact(caller_id=caller.id, answered=True)
    referral.check_first_contact(caller_id=None, answered=True)  # the referral's caller
    for caller_id, answered, words in ((a_caller("C-0000CCCC").id, True, "another caller"),
                                       (caller.id, False, "missed call")):
        with pytest.raises(InvalidCommand) as info:
            referral.check_first_contact(caller_id=caller_id, answered=answered)
        assert info.value.field == "referral_id" and words in str(info.value)


def test_the_first_contact_is_recorded_once_and_kept() -> None:
    referral = a_referral(a_caller())
    referral.decide(accept=True, reason=sealed(), now=NOW)
    first, second = uuid.uuid4(), uuid.uuid4()
    assert referral.make_first_contact(contact_id=first, at=NOW - timedelta(hours=1))
    version = referral.version
    referral.check_first_contact(caller_id=None, answered=True)  # still fine to name
    assert not referral.make_first_contact(contact_id=second, at=NOW)
    assert referral.version == version and referral.status == "contacted"
    assert referral.first_contact == {"contact_id": first, "at": NOW - timedelta(hours=1)}
    with pytest.raises(RuleBroken):
        referral.decide(accept=False, reason=sealed(), now=NOW)
    made = referral.collect_events()[-1]
    pub = public_event(made)
    assert pub is not None and pub.type == "ReferralFirstContactMade"
    assert pub.data == {"referral_id": str(referral.id), "contact_id": str(first),
                        "at": (NOW - timedelta(hours=1)).isoformat()}


# -- the directory ---------------------------------------------------------------------------


def entry(**kw: Any) -> DirectoryEntry:
    fields: dict[str, Any] = {"name": "Samaritans", "helps_with": ["suicidal_thoughts"],
                              "phone": "116 123", "opening_hours": [], "address": None,
                              "notes": None, "open_24_7": True}
    fields.update(kw)
    return DirectoryEntry.add(**fields)


def test_an_entry_open_24_7_is_open_at_any_time() -> None:
    e = entry()
    assert e.open_24_7 and e.opening_hours == []
    for hours in range(0, 24 * 7, 5):
        assert is_open(e.opening_hours, NOW + timedelta(hours=hours, minutes=59),
                       open_24_7=e.open_24_7)
    assert not is_open([], NOW)


def test_open_24_7_with_opening_hours_is_refused() -> None:
    with pytest.raises(InvalidCommand) as info:
        entry(opening_hours=[{"day": "mon", "opens": "09:00", "closes": "17:00"}])
    assert info.value.field == "opening_hours"
    e = entry(open_24_7=False, opening_hours=[{"day": "mon", "opens": "09:00",
                                               "closes": "17:00"}])
    with pytest.raises(InvalidCommand):
        e.update(name="Samaritans", helps_with=["suicidal_thoughts"], phone=None,
                 opening_hours=e.opening_hours, address=None, notes=None, open_24_7=True)
    assert e.version == 1 and not e.open_24_7
    e.update(name="Samaritans", helps_with=["suicidal_thoughts"], phone=None,
             opening_hours=[], address=None, notes=None, open_24_7=True)
    assert e.open_24_7 and e.version == 2


def test_an_entry_stored_before_open_24_7_existed_is_not_open_24_7() -> None:
    e = entry(open_24_7=False, opening_hours=[{"day": "sun", "opens": "18:00",
                                               "closes": "23:00"}])
    old = replayed(e.collect_events(), DirectoryEntry.Added, ("open_24_7",))
    assert old.open_24_7 is False and old.opening_hours[0]["day"] == "sun"
