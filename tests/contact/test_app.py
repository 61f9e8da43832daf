"""The contact application: its use cases with their real adapters (event store, keys,
phone index, read tables, SMS outbox), built by the composition root, with no HTTP and
no NATS, on SQLite and PostgreSQL. The rules themselves are tested at the domain
(``test_domain.py``); here, that the application loads, seals, saves and reads right.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from eventsourcing.persistence import IntegrityError

from services.contact.app import ContactApplication
from services.contact.domain import Contact, FollowUp, NewCaller
from services.system import ServiceRuntime
from shared.config import Settings
from shared.kernel import (
    Conflicting,
    InvalidCommand,
    NotKnown,
    NotPermitted,
    RuleBroken,
    VersionMismatch,
    acting,
)
from shared.privacy import MasterKeyMismatch
from shared.sms import OutboxSmsSender, TwilioSmsSender
from shared.web.auth import Principal, Role

NUMBER = "+447700900123"


Build = Callable[..., ServiceRuntime]


@pytest.fixture
def app(app_runtime: Build) -> Iterator[ContactApplication]:
    """The contact application as the composition root builds it (never started), with a
    supporter acting, as the web layer would set."""
    built = app_runtime("contact").app
    assert isinstance(built, ContactApplication)
    with acting("sup-1", "corr-1"):
        yield built


def _recent(minutes: int = 30) -> datetime:
    return datetime.now(UTC) - timedelta(minutes=minutes)


def _caller(app: ContactApplication, **fields: Any) -> str:
    values: dict[str, Any] = {"alias": "Sunny", "phone": "07700 900123", "gender": "female",
                              "age_band": "25_31", "consent_to_keep_history": True,
                              "consent_to_text": True}
    values.update(fields)
    return app.register_caller(NewCaller(**values)).caller_ref


def _log(app: ContactApplication, **fields: Any) -> Contact:
    values: dict[str, Any] = {"channel": "phone", "started_at": _recent(),
                              "issues": ["social_isolation"], "supporter_ids": ["sup-1"]}
    values.update(fields)
    return app.log_contact(**values)


def _stored(app: ContactApplication) -> int:
    return app.max_notification_id()


def test_a_caller_is_registered_sealed_and_found_by_any_written_form(
        app: ContactApplication) -> None:
    ref = _caller(app)
    caller = app.get_caller(ref)
    assert caller.alias is not None and "Sunny" not in caller.alias
    assert app.keys.reveal(caller.alias) == "Sunny" and app.keys.open(caller.phone) == NUMBER
    for written in ("+447700900123", "+44 7700 900 123", "07700900123"):
        assert app.lookup_caller(written).caller_ref == ref
    with pytest.raises(NotKnown):
        app.lookup_caller("07700 900999")
    with pytest.raises(InvalidCommand) as info:
        app.lookup_caller("not a phone")
    assert (info.value.location, info.value.field) == ("query", "phone")


def test_a_known_number_is_not_registered_twice_and_nothing_is_stored(
        app: ContactApplication) -> None:
    _caller(app)
    before = _stored(app)
    with pytest.raises(Conflicting):
        app.register_caller(NewCaller(phone="+44 7700 900123"))
    assert _stored(app) == before


def test_every_event_records_who_acted_and_the_correlation(app: ContactApplication) -> None:
    contact = _log(app)
    with acting("coord-9"):
        app.close_contact(contact.id, no_escalation_reason=None)
    events = app.integration_events(0, 10)
    assert [(e.type, e.actor, e.correlation_id) for e in events] == [
        ("ContactLogged", "sup-1", "corr-1"), ("ContactClosed", "coord-9", None)]


def test_history_is_read_by_those_on_shift_with_consent_and_each_read_is_recorded(
        app: ContactApplication) -> None:
    ref = _caller(app)
    first = _log(app, caller_ref=ref, summary="Talked about her brother",
                 started_at=_recent(60))
    second = _log(app, caller_ref=ref, summary="Rang again", started_at=_recent(10))
    coordinator = Principal(sub="coord-1", role=Role.COORDINATOR, name="")
    rows = app.caller_history(ref, purpose="caller rang again", principal=coordinator)
    assert [r.contact_id for r in rows] == [str(second.id), str(first.id)]  # newest first
    on_shift = Principal(sub="sup-1", role=Role.SUPPORTER, name="")  # took a call tonight
    app.caller_history(ref, purpose="rang again", principal=on_shift)
    for someone in (Principal(sub="sup-off", role=Role.SUPPORTER, name=""),
                    Principal(sub="aud-1", role=Role.AUDITOR, name="")):
        with pytest.raises(NotPermitted):
            app.caller_history(ref, purpose="curious", principal=someone)
    assert app.get_caller(ref).history_reads == 2
    other = _caller(app, phone="07700 900456", consent_to_keep_history=False)
    before = _stored(app)
    with pytest.raises(NotPermitted, match="consented"):
        app.caller_history(other, purpose="x" * 5, principal=coordinator)
    assert _stored(app) == before


def test_a_stale_version_is_refused_and_a_lost_race_conflicts(
        app: ContactApplication, app_runtime: Build) -> None:
    contact = _log(app)
    with pytest.raises(VersionMismatch) as info:
        app.correct_contact(contact.id, reason="misheard", issues=["abuse"], ended_at=None,
                            expected_version=7)
    assert info.value.current == 1
    other = app_runtime("contact").app  # a second process on the same store
    theirs = other.get_contact(contact.id)
    app.correct_contact(contact.id, reason="misheard", issues=["abuse"], ended_at=None)
    theirs.correct(reason=app.keys.seal(str(contact.id), "x") or "", issues=["housing"])
    with pytest.raises(IntegrityError):
        other.save(theirs)
    assert app.get_contact(contact.id).issues == ["abuse"]


def test_risk_trail_escalation_and_closing(app: ContactApplication) -> None:
    contact = _log(app)
    app.assess_risk(contact.id, level="immediate", factors="plan and means",
                    protective_factors=None, decision="call 999", reasoning=None)
    with pytest.raises(RuleBroken, match="immediate risk"):
        app.close_contact(contact.id, no_escalation_reason=None)
    app.escalate(contact.id, kind="emergency_services", reason="ambulance", reference="CAD-1")
    closed = app.close_contact(contact.id, no_escalation_reason=None)
    assert closed.closed and closed.version == 4
    assert app.keys.reveal(closed.risk_trail[0]["factors"]) == "plan and means"
    assert closed.risk_trail[0]["assessed_by"] == "sup-1"


def test_missed_calls_and_agreed_follow_ups_are_listed_until_done(
        app: ContactApplication) -> None:
    missed = _log(app, answered=False, issues=[], phone="07700 900123", supporter_ids=[])
    due = datetime.now(UTC) + timedelta(days=1)
    agreed = _log(app, follow_up=FollowUp(by=due, what="ring on Tuesday"))
    _log(app, follow_up=FollowUp(needed=False, what="nothing to do"))
    items, _ = app.follow_ups_due(due + timedelta(minutes=1), 10)
    assert [(i["contact_id"], i["kind"]) for i in items] == [
        (str(missed.id), "call_back"), (str(agreed.id), "agreed")]
    app.complete_follow_up(missed.id, 1, outcome="rang back, all well")
    with pytest.raises(NotKnown):
        app.complete_follow_up(missed.id, 2, outcome=None)
    items, _ = app.follow_ups_due(due + timedelta(minutes=1), 10)
    assert [i["contact_id"] for i in items] == [str(agreed.id)]


def test_referrals_need_consent_register_new_callers_atomically_and_are_decided_once(
        app: ContactApplication) -> None:
    before = _stored(app)
    with pytest.raises(InvalidCommand) as info:
        app.receive_referral(received_at=None, source="gp", referrer_organisation="GP",
                             caller_ref=None, new_caller=NewCaller(phone="07700 900777"),
                             reason="low mood", consent_to_contact=False)
    assert info.value.field == "consent_to_contact" and _stored(app) == before
    with pytest.raises(NotKnown):
        app.lookup_caller("07700 900777")  # the phone claim was not kept either
    referral = app.receive_referral(received_at=None, source="gp", referrer_organisation="GP",
                                    caller_ref=None, new_caller=NewCaller(phone="07700 900777"),
                                    reason="low mood", consent_to_contact=True)
    assert app.lookup_caller("07700 900777").caller_ref == referral.caller_ref
    with acting("coord-1"):
        decided = app.decide_referral(referral.id, accept=True, reason="fits",
                                      expected_version=None)
    assert decided.status == "accepted" and decided.decided_by == "coord-1"
    with pytest.raises(RuleBroken):
        app.decide_referral(referral.id, accept=False, reason="no", expected_version=None)
    queue, _ = app.list_referrals("accepted", 10)
    assert [r.id for r in queue] == [referral.id]


def test_directory_search_by_need_and_london_opening_hours(app: ContactApplication) -> None:
    late = app.add_directory_entry({"name": "Night Line", "helps_with": ["bereavement"],
                                    "phone": None, "address": None, "notes": None,
                                    "opening_hours": [{"day": "sun", "opens": "20:00",
                                                       "closes": "02:00"}]})
    app.add_directory_entry({"name": "Day Centre", "helps_with": ["housing"], "phone": None,
                             "address": None, "notes": None,
                             "opening_hours": [{"day": "sun", "opens": "09:00",
                                                "closes": "17:00"}]})
    sunday_late = datetime(2026, 11, 29, 23, 0, tzinfo=UTC)  # a Sunday, 23:00 in London
    found, _ = app.search_directory(None, sunday_late, 10)
    assert [e["name"] for e in found] == ["Night Line"]
    found, _ = app.search_directory("housing", None, 10)
    assert [e["name"] for e in found] == ["Day Centre"]
    app.remove_directory_entry(late.id, expected_version=None)
    with pytest.raises(NotKnown):
        app.get_directory_entry(late.id)
    with pytest.raises(InvalidCommand) as info:
        _log(app, signposted_to=[late.id])
    assert info.value.field == "signposted_to"


def test_erasure_shreds_personal_data_keeps_the_codes_and_refuses_new_records(
        app: ContactApplication) -> None:
    ref = _caller(app)
    contact = _log(app, caller_ref=ref, summary="Private words")
    app.erase_caller(ref)
    app.erase_caller(ref)  # idempotent
    caller = app.get_caller(ref)
    assert caller.erased and app.keys.reveal(caller.alias) == "[erased]"
    again = app.get_contact(contact.id)
    assert app.keys.open(again.summary) is None and again.issues == ["social_isolation"]
    with pytest.raises(NotKnown):
        app.lookup_caller(NUMBER)
    before = _stored(app)
    with pytest.raises(InvalidCommand) as info:
        _log(app, caller_ref=ref, summary="more words")
    assert info.value.field == "caller_ref" and _stored(app) == before


def test_a_different_master_key_is_refused_at_start(app_runtime: Build) -> None:
    app_runtime("contact")  # made the keys table under the generated master key
    with pytest.raises(MasterKeyMismatch):
        app_runtime("contact", master_key="ab" * 32)


# ----------------------------------------------------------------------------- texts


def test_inbound_texts_open_a_thread_append_and_a_replay_adds_nothing(
        app: ContactApplication) -> None:
    first, replayed = app.texts.receive(message_sid="SM1", from_number="07700 900123",
                                        body="can we talk")
    assert not replayed
    second, _ = app.texts.receive(message_sid="SM2", from_number="+447700900123", body="?")
    assert second == first
    before = _stored(app)
    assert app.texts.receive(message_sid="SM2", from_number="07700900123", body="?") == (
        first, True)
    assert _stored(app) == before
    thread, can_reply = app.texts.thread(first)
    assert [app.keys.reveal(m["body"]) for m in thread.messages] == ["can we talk", "?"]
    assert can_reply  # texting in opts in to replies
    events = app.integration_events(0, 50)
    assert {e.actor for e in events} == {"sms-provider"}


def test_concurrent_texts_from_a_new_number_make_one_caller_and_one_thread(
        app: ContactApplication) -> None:
    ids: list[uuid.UUID] = []

    def text(n: int) -> None:
        contact_id, _ = app.texts.receive(message_sid=f"SM{n}", from_number=NUMBER, body="hi")
        ids.append(contact_id)

    threads = [threading.Thread(target=text, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(ids)) == 1 and len(app.texts.thread(ids[0])[0].messages) == 4


def test_replies_go_to_the_outbox_only_with_consent_and_a_refusal_records_nothing(
        app: ContactApplication) -> None:
    contact_id, _ = app.texts.receive(message_sid="SM1", from_number=NUMBER, body="hello?")
    _, n = app.texts.reply(contact_id, body="We're here. Want to talk?")
    assert n == 2 and app.texts.sender.pending()[0]["to"] == NUMBER  # type: ignore[attr-defined]
    caller_ref = app.texts.thread(contact_id)[0].caller_ref
    app.change_consent(caller_ref, consent_to_keep_history=None, consent_to_text=False,
                       expected_version=None)
    before = _stored(app)
    with pytest.raises(RuleBroken, match="consented"):
        app.texts.reply(contact_id, body="still there?")
    assert _stored(app) == before and len(app.texts.sender.pending()) == 1  # type: ignore[attr-defined]


def test_the_sms_provider_is_chosen_by_settings(app_runtime: Build, settings: Settings) -> None:
    line = "+442079460000"
    outbox = app_runtime("contact").app.texts
    assert isinstance(outbox.sender, OutboxSmsSender)
    generated = (settings.data_dir / "secrets" / "sms-auth-token").read_text().strip()
    assert outbox.auth_token == generated and len(generated) >= 32
    assert app_runtime("contact").app.texts.auth_token == generated  # kept across restarts
    twilio = app_runtime("contact", sms_provider="twilio", sms_auth_token="tok",
                         sms_account_sid="AC1", sms_from_number=line).app.texts
    assert isinstance(twilio.sender, TwilioSmsSender)
    assert twilio.auth_token == "tok" and twilio.sender.from_number == line
    with pytest.raises(ValueError, match="SMS_ACCOUNT_SID"):
        app_runtime("contact", sms_provider="twilio", sms_auth_token="tok")
