"""Ringing back, at the aggregates, without I/O: when a caller's number may be shown
and on what grounds, when a missed call may be rung back (its number shown, a call-back
placed), and a contact that answers a missed call completing its call-back follow-up.
Each event survives a round trip through the stored form and replays to the same state.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from eventsourcing.application import Application

from services.contact.domain import Caller, Contact, FollowUp, new_caller_ref
from services.contact.domain.ringback import (
    CallBackAnswered,
    CallBackPlaced,
    NumberRevealed,
    called_back_note,
)
from services.contact.public_events import public_event
from shared.kernel import InvalidCommand, NotPermitted, RuleBroken, acting

NOW = datetime.now(UTC)


@pytest.fixture(autouse=True)
def _supporter_acts() -> Iterator[None]:
    with acting("supporter-1", "c-1"):
        yield


def sealed(text: str = "x") -> str:
    return f"pd1:subject:{text}"


def a_caller(**kw: Any) -> Caller:
    fields: dict[str, Any] = {"caller_ref": new_caller_ref(), "alias": None,
                              "phone": sealed("phone"), "gender": None, "age_band": None,
                              "consent_to_keep_history": False, "consent_to_text": False}
    fields.update(kw)
    return Caller.register(**fields)


def missed(**kw: Any) -> Contact:
    fields: dict[str, Any] = {"channel": "phone", "started_at": NOW - timedelta(minutes=20),
                              "issues": [], "answered": False, "phone": sealed("number"),
                              "number_known": True}
    fields.update(kw)
    return Contact.log(**fields)


def answered(**kw: Any) -> Contact:
    fields: dict[str, Any] = {"channel": "phone", "direction": "outbound",
                              "started_at": NOW - timedelta(minutes=5),
                              "issues": ["social_isolation"]}
    fields.update(kw)
    return Contact.log(**fields)


def replayed(aggregate: Any) -> Any:
    """The aggregate rebuilt from its events' stored form (the application's mapper)."""
    app = Application[uuid.UUID]()
    app.save(aggregate)
    return app.repository.get(aggregate.id)


# ---------------------------------------------------------------------- a caller


def test_a_callers_number_is_shown_only_on_grounds_of_consent_and_each_is_recorded() -> None:
    refused = a_caller()
    with pytest.raises(NotPermitted, match="not consented to being contacted"):
        refused.reveal_phone(purpose=sealed("why"), referral_accepted=False,
                             call_back_open=False)
    assert refused.phone_reveals == 0
    for caller, grounds, expected in (
            (a_caller(consent_to_text=True), {}, "consent_to_text"),
            (a_caller(), {"referral_accepted": True}, "referral_accepted"),
            (a_caller(), {"call_back_open": True}, "call_back_open")):
        given = {"referral_accepted": False, "call_back_open": False, **grounds}
        caller.reveal_phone(purpose=sealed("ring back"), **given)
        event = caller.pending_events[-1]
        assert isinstance(event, Caller.PhoneRevealed)
        assert (event.grounds, event.purpose) == (expected, sealed("ring back"))
        assert event.meta["actor"] == "supporter-1"
        assert replayed(caller).phone_reveals == 1
        published = public_event(event)
        assert published is not None and published.type == "CallerPhoneRevealed"
        assert published.data == {"by": "supporter-1", "grounds": expected}


def test_no_number_for_an_erased_caller_one_without_a_number_or_without_a_purpose() -> None:
    erased = a_caller(consent_to_text=True)
    erased.erase()
    with pytest.raises(RuleBroken, match="erased"):
        erased.check_phone_revealable(referral_accepted=True, call_back_open=True)
    with pytest.raises(RuleBroken, match="no phone number"):
        a_caller(phone=None, consent_to_text=True).reveal_phone(
            purpose=sealed(), referral_accepted=False, call_back_open=False)
    consenting = a_caller(consent_to_text=True)
    with pytest.raises(InvalidCommand) as info:
        consenting.reveal_phone(purpose="in clear", referral_accepted=False,
                                call_back_open=False)
    assert info.value.field == "purpose"
    with pytest.raises(InvalidCommand):
        consenting.reveal_phone(purpose=None, referral_accepted=False, call_back_open=False)
    assert consenting.phone_reveals == 0


# ---------------------------------------------------------------- a missed call


def test_a_missed_call_is_rung_back_while_its_call_back_is_open_the_coordinator_any_time(
) -> None:
    call = missed()
    assert call.open_call_back == 1
    call.check_ring_back(caller=None, any_time=False)
    call.reveal_number(purpose=sealed("ring back"), caller=None, any_time=False)
    n = call.record_call_back(placed_at=NOW, provider_ref="CA123")
    assert n == 1 and call.call_backs[0]["placed_by"] == "supporter-1"
    call.complete_follow_up(n=1, outcome=None)
    assert call.open_call_back is None
    with pytest.raises(NotPermitted, match="only the coordinator"):
        call.check_ring_back(caller=None, any_time=False)
    with acting("coord-1"):
        call.reveal_number(purpose=sealed(), caller=None, any_time=True)
        assert call.record_call_back(placed_at=NOW, provider_ref="CA124") == 2
    kinds = [type(e) for e in call.pending_events]
    assert kinds.count(NumberRevealed) == 2 and kinds.count(CallBackPlaced) == 2
    again = replayed(call)
    assert [(c["n"], c["placed_by"], c["provider_ref"]) for c in again.call_backs] == [
        (1, "supporter-1", "CA123"), (2, "coord-1", "CA124")]
    assert again.number_reveals == 2


def test_only_a_missed_call_with_a_number_is_rung_back() -> None:
    with pytest.raises(RuleBroken, match="only a missed call"):
        answered().check_ring_back(caller=None, any_time=True)
    with pytest.raises(RuleBroken, match="no number"):
        missed(phone=None, number_known=False).check_ring_back(caller=None, any_time=True)
    caller = a_caller()
    of_caller = missed(phone=None, caller=caller)  # the caller's number is the call's
    assert of_caller.open_call_back == 1
    of_caller.check_ring_back(caller=caller, any_time=False)
    caller.erase()
    with pytest.raises(RuleBroken, match="erased"):
        of_caller.check_ring_back(caller=caller, any_time=True)
    with pytest.raises(RuleBroken):
        answered().record_call_back(placed_at=NOW, provider_ref="CA1")


def test_the_call_back_event_and_its_public_form_carry_no_number() -> None:
    call = missed()
    call.record_call_back(placed_at=NOW, provider_ref="CA9")
    event = call.pending_events[-1]
    assert isinstance(event, CallBackPlaced)
    assert set(vars(event)) >= {"n", "placed_at", "provider_ref", "meta"}
    assert "number" not in str(vars(event))
    published = public_event(event)
    assert published is not None and published.type == "CallBackPlaced"
    assert set(published.data) == {"contact_id", "n", "placed_at"}


# ----------------------------------------------------------------- responds_to


def test_a_contact_that_gets_through_completes_the_missed_calls_call_back() -> None:
    caller = a_caller()
    call = missed(phone=None, caller=caller)
    back = answered(caller=caller, responds_to=call.id)
    assert back.responds_to == call.id
    assert call.answered_by(back.id, caller_id=back.caller_id,
                            outcome=sealed(called_back_note(back.id))) == 1
    follow_up = call.follow_ups[0]
    assert follow_up["completed_at"] is not None and follow_up["answered_by"] == back.id
    assert follow_up["outcome"] == sealed(called_back_note(back.id))
    *_, completed, answered_event = call.pending_events
    assert isinstance(completed, Contact.FollowUpCompleted)
    assert isinstance(answered_event, CallBackAnswered)
    published = public_event(answered_event)
    assert published is not None and published.data == {
        "contact_id": str(call.id), "n": 1, "answered_by": str(back.id)}
    assert replayed(call).follow_ups[0]["answered_by"] == back.id
    # Done once: a second contact finds nothing open.
    assert call.answered_by(uuid.uuid4(), caller_id=None, outcome=None) is None


def test_responds_to_names_a_missed_call_of_the_same_caller() -> None:
    with pytest.raises(InvalidCommand, match="not a missed call") as info:
        answered().check_answerable_by(None)
    assert info.value.field == "responds_to"
    call = missed(caller=a_caller())
    with pytest.raises(InvalidCommand, match="another caller"):
        call.check_answerable_by(a_caller().id)
    call.check_answerable_by(None)
    call.check_answerable_by(call.caller_id)


def test_an_agreed_follow_up_is_not_a_call_back() -> None:
    call = missed(follow_up=FollowUp(by=NOW + timedelta(days=1), what=sealed()))
    assert call.follow_ups[0]["kind"] == "agreed" and call.open_call_back is None
    with pytest.raises(NotPermitted):
        call.check_ring_back(caller=None, any_time=False)
