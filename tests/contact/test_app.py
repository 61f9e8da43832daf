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

from services.contact import read_model as views
from services.contact.app import ContactApplication
from services.contact.domain import Contact, FollowUp, NewCaller
from services.reporting.app import ReportingApplication
from services.reporting.handlers import london_month
from services.system import ServiceRuntime
from shared.config import Settings
from shared.eventstore import readtables
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
from shared.privacy import MasterKeyMismatch
from shared.sms import OutboxSmsSender, TwilioSmsSender
from shared.web.auth import Principal, Role
from tests.contact.rota import RotaFeed

NUMBER = "+447700900123"
COORDINATOR = Principal(sub="coord-1", role=Role.COORDINATOR, name="")


Build = Callable[..., ServiceRuntime]


@pytest.fixture
def runtime(app_runtime: Build) -> ServiceRuntime:
    return app_runtime("contact")


@pytest.fixture
def app(runtime: ServiceRuntime) -> Iterator[ContactApplication]:
    """The contact application as the composition root builds it (never started), with a
    supporter acting, as the web layer would set."""
    built = runtime.app
    assert isinstance(built, ContactApplication)
    with acting("sup-1", "corr-1"):
        yield built


@pytest.fixture
def rota(runtime: ServiceRuntime) -> RotaFeed:
    """The shift service's rota, published into this contact runtime."""
    return RotaFeed(runtime)


def supporter(sub: str) -> Principal:
    return Principal(sub=sub, role=Role.SUPPORTER, name="")


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
                              "issues": ["social_isolation"]}
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
        app: ContactApplication, rota: RotaFeed) -> None:
    ref = _caller(app)
    first = _log(app, caller_ref=ref, summary="Talked about her brother",
                 started_at=_recent(60))
    second = _log(app, caller_ref=ref, summary="Rang again", started_at=_recent(10))
    coordinator = COORDINATOR
    rows = app.caller_history(ref, purpose="caller rang again", principal=coordinator)
    assert [r.contact_id for r in rows] == [str(second.id), str(first.id)]  # newest first
    on_shift = supporter(rota.on_shift())  # on the rota tonight; has logged nothing
    app.caller_history(ref, purpose="rang again", principal=on_shift)
    for someone in (supporter(rota.supporter()),
                    Principal(sub="aud-1", role=Role.AUDITOR, name="")):
        with pytest.raises(NotPermitted, match="on shift"):
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
        app.referrals.receive(received_at=None, source="gp", referrer_organisation="GP",
                             caller_ref=None, new_caller=NewCaller(phone="07700 900777"),
                             reason="low mood", consent_to_contact=False)
    assert info.value.field == "consent_to_contact" and _stored(app) == before
    with pytest.raises(NotKnown):
        app.lookup_caller("07700 900777")  # the phone claim was not kept either
    referral = app.referrals.receive(received_at=None, source="gp", referrer_organisation="GP",
                                    caller_ref=None, new_caller=NewCaller(phone="07700 900777"),
                                    reason="low mood", consent_to_contact=True)
    assert app.lookup_caller("07700 900777").caller_ref == referral.caller_ref
    with acting("coord-1"):
        decided = app.referrals.decide(referral.id, accept=True, reason="fits",
                                      expected_version=None)
    assert decided.status == "accepted" and decided.decided_by == "coord-1"
    with pytest.raises(RuleBroken):
        app.referrals.decide(referral.id, accept=False, reason="no", expected_version=None)
    queue, _ = app.referrals.queue("accepted", 10)
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
    thread, can_reply = app.texts.thread(first, COORDINATOR)
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
    assert len(set(ids)) == 1 and len(app.texts.thread(ids[0], COORDINATOR)[0].messages) == 4


def test_replies_go_to_the_outbox_only_with_consent_and_a_refusal_records_nothing(
        app: ContactApplication) -> None:
    contact_id, _ = app.texts.receive(message_sid="SM1", from_number=NUMBER, body="hello?")
    _, n = app.texts.reply(contact_id, body="We're here. Want to talk?", principal=COORDINATOR)
    assert n == 2 and app.texts.sender.pending()[0]["to"] == NUMBER  # type: ignore[attr-defined]
    caller_ref = app.texts.thread(contact_id, COORDINATOR)[0].caller_ref
    app.change_consent(caller_ref, consent_to_keep_history=None, consent_to_text=False,
                       expected_version=None)
    before = _stored(app)
    with pytest.raises(RuleBroken, match="consented"):
        app.texts.reply(contact_id, body="still there?", principal=COORDINATOR)
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


# ------------------------------------------------------------ hardening (issue 7)


def test_who_handled_a_contact_is_an_exact_id(app: ContactApplication,
                                               rota: RotaFeed) -> None:
    """The supporters named are kept as a list and matched exactly: a comma-joined pair,
    or a part of an id, names nobody."""
    a, b = rota.supporter(), rota.supporter()
    _log(app, supporter_ids=[a, b], summary="Private words")
    rows, _ = app.list_contacts(caller_ref=None, start=None, end=None, limit=10, cursor=None)
    named = views.supporters_of(rows[0])
    assert named == [a, b]
    for stranger in (f"{a},{b}", a[:8], "%", rota.supporter()):
        assert not app.sees_personal(supporter(stranger), named), stranger
    for handler in (a, b):
        assert app.sees_personal(supporter(handler), named)


def test_times_sort_as_they_compare_even_for_a_record_stored_before_the_rule(
        app: ContactApplication) -> None:
    """Read tables keep native UTC times: a contact stored (before the plausibility rule,
    and before supporters were the rota's) in the year 387 sorts before 2026, pages and
    filters right."""
    ancient = Contact._create(
        Contact.Logged, id=uuid.uuid4(), channel="phone", direction="inbound",
        started_at=datetime(387, 7, 26, 12, tzinfo=UTC), ended_at=None, issues=["other"],
        caller_id=None, caller_ref=None, age_band=None, gender=None, shift_id=None,
        supporter_ids=["sup-old"], caller_is=None, summary=None, signposted_to=[],
        answered=True, phone=None)
    app.save(ancient)
    recent = _log(app)
    page, cursor = app.list_contacts(caller_ref=None, start=None, end=None, limit=1,
                                     cursor=None)
    assert [r.contact_id for r in page] == [str(recent.id)] and cursor
    rest, last = app.list_contacts(caller_ref=None, start=None, end=None, limit=1,
                                   cursor=cursor)
    assert [r.contact_id for r in rest] == [str(ancient.id)] and last is None
    assert readtables.from_ts(rest[0].started_at) == datetime(387, 7, 26, 12, tzinfo=UTC)
    since_2000, _ = app.list_contacts(caller_ref=None, limit=10, cursor=None,
                                      start=datetime(2000, 1, 1, tzinfo=UTC),
                                      end=datetime(2200, 1, 1, tzinfo=UTC))
    assert [r.contact_id for r in since_2000] == [str(recent.id)]


def test_follow_ups_due_sort_and_page_by_native_time(app: ContactApplication) -> None:
    now = datetime.now(UTC)
    later = _log(app, follow_up=FollowUp(by=now + timedelta(days=700), what="in two years"))
    sooner = _log(app, follow_up=FollowUp(by=now + timedelta(hours=1, microseconds=7),
                                          what="soon"))
    page, cursor = app.follow_ups_due(now + timedelta(days=800), 1)
    assert [i["contact_id"] for i in page] == [str(sooner.id)] and cursor
    assert page[0]["due_by"] == now + timedelta(hours=1, microseconds=7)
    rest, _ = app.follow_ups_due(now + timedelta(days=800), 1, cursor)
    assert [i["contact_id"] for i in rest] == [str(later.id)]


@pytest.mark.parametrize("n", ["99999999999999999999", "\u00b2", "-1", "1e3", ""])
def test_a_cursor_with_a_number_no_column_holds_is_refused(app: ContactApplication,
                                                          n: str) -> None:
    cursor = readtables.encode_cursor("follow-ups", datetime.now(UTC), str(uuid.uuid4()), n)
    with pytest.raises(InvalidCommand) as info:
        app.follow_ups_due(datetime.now(UTC), 10, cursor)
    assert (info.value.location, info.value.field) == ("query", "cursor")


@pytest.mark.parametrize("parts", [("0001-01-01T00:00:00+01:00", "x"),
                                   ("2026-11-29T22:00:00", str(uuid.uuid4())),
                                   ("2026-11-29T22:00:00+00:00", "\x00"),
                                   ("2026-11-29T22:00:00+00:00", "x" * 300)])
def test_a_cursor_whose_parts_are_not_what_the_list_gave_out_is_refused(
        app: ContactApplication, parts: tuple[str, str]) -> None:
    with pytest.raises(InvalidCommand) as info:
        app.list_contacts(caller_ref=None, start=None, end=None, limit=10,
                          cursor=readtables.encode_cursor("contacts", *parts))
    assert (info.value.location, info.value.field) == ("query", "cursor")


def test_a_partner_cannot_tell_a_known_caller_from_someone_new(
        app: ContactApplication) -> None:
    """A referral with a known number is that caller's, matched inside; a partner may not
    name a caller_ref, whatever it is (known, unknown, erased): one answer."""
    ref = _caller(app)  # Sunny, 07700 900123, consents to texts
    with acting("gp-system"):
        referral = app.referrals.receive(
            received_at=None, source="gp", referrer_organisation="Stockwell GP",
            caller_ref=None, reason="low mood", consent_to_contact=True, by_partner=True,
            new_caller=NewCaller(alias="Pat", phone="+44 7700 900123", consent_to_text=False))
    assert referral.caller_ref == ref
    caller = app.get_caller(ref)  # their record is theirs: not written over
    assert app.keys.reveal(caller.alias) == "Sunny" and caller.consent_to_text
    erased = _caller(app, phone="07700 900456")
    app.erase_caller(erased)
    answers = set()
    for named in (ref, "C-ZZZZZZZZ", erased):
        with pytest.raises(InvalidCommand) as info:
            app.referrals.receive(received_at=None, source="gp", referrer_organisation=None,
                                  caller_ref=named, new_caller=None, reason=None,
                                  consent_to_contact=True, by_partner=True)
        answers.add((info.value.field, info.value.message))
    assert len(answers) == 1 and answers.pop()[0] == "caller_ref"
    by_coordinator = app.referrals.receive(
        received_at=None, source="self", referrer_organisation=None, caller_ref=ref,
        new_caller=None, reason=None, consent_to_contact=True)
    assert by_coordinator.caller_ref == ref


def test_a_referrers_organisation_is_sealed_with_the_callers_key_and_erased_with_it(
        app: ContactApplication) -> None:
    referral = app.referrals.receive(
        received_at=None, source="gp", referrer_organisation="Stockwell Practice",
        caller_ref=None, new_caller=NewCaller(phone="07700 900777"), reason=None,
        consent_to_contact=True, by_partner=True)
    sealed = referral.referrer_organisation
    assert sealed is not None and "Stockwell" not in sealed
    assert app.keys.reveal(sealed) == "Stockwell Practice"
    app.erase_caller(referral.caller_ref)
    assert app.keys.reveal(app.referrals.get(referral.id).referrer_organisation) == "[erased]"


# ------------------------------------------------------- the rota (issue 8: shifts)


def _now() -> datetime:
    return datetime.now(UTC)


def test_on_shift_is_from_before_the_start_to_after_the_end_of_a_shift_on_the_rota(
        app: ContactApplication, rota: RotaFeed) -> None:
    now = _now()
    soon, later, just_ended, long_ended = (rota.supporter() for _ in range(4))
    rota.shift(now + timedelta(minutes=20), now + timedelta(hours=6), soon)
    rota.shift(now + timedelta(minutes=40), now + timedelta(hours=6), later)
    rota.shift(now - timedelta(hours=6), now - timedelta(minutes=50), just_ended)
    rota.shift(now - timedelta(hours=6), now - timedelta(minutes=70), long_ended)
    assert app.may_read_history(supporter(soon))  # 30 minutes before the start
    assert app.may_read_history(supporter(just_ended))  # 60 minutes after the end
    assert not app.may_read_history(supporter(later))
    assert not app.may_read_history(supporter(long_ended))
    assert app.may_read_history(COORDINATOR)  # always, on the rota or not
    assert not app.may_read_history(Principal(sub=soon, role=Role.AUDITOR, name=""))


def test_naming_a_supporter_on_a_contact_does_not_put_them_on_shift(
        app: ContactApplication, rota: RotaFeed) -> None:
    named = rota.supporter()
    _log(app, supporter_ids=[named], started_at=_recent(5))
    assert not app.may_read_history(supporter(named))
    with acting(named):  # not even when they log it themselves
        _log(app, supporter_ids=[named], started_at=_recent(1))
    assert not app.may_read_history(supporter(named))


def test_the_rota_changes_who_is_on_shift(app: ContactApplication, rota: RotaFeed) -> None:
    now = _now()
    a, b, c = (rota.supporter() for _ in range(3))
    tonight = rota.shift(now - timedelta(hours=1), now + timedelta(hours=5), a)
    assert app.may_read_history(supporter(a))
    rota.unassign(tonight, a)
    assert not app.may_read_history(supporter(a))
    rota.assign(tonight, b)
    rota.swap(tonight, b, c)
    assert not app.may_read_history(supporter(b)) and app.may_read_history(supporter(c))
    rota.deactivate(c)
    assert not app.may_read_history(supporter(c))


def test_the_on_shift_window_is_a_setting(app_runtime: Build) -> None:
    runtime = app_runtime("contact", on_shift_before_min=0, on_shift_after_min=0)
    app, rota = runtime.app, RotaFeed(runtime)
    assert isinstance(app, ContactApplication)
    now = _now()
    early, late = rota.supporter(), rota.supporter()
    rota.shift(now + timedelta(minutes=5), now + timedelta(hours=6), early)
    rota.shift(now - timedelta(hours=6), now - timedelta(minutes=5), late)
    assert not app.may_read_history(supporter(early))
    assert not app.may_read_history(supporter(late))


def test_a_contacts_shift_defaults_to_the_shift_on_at_its_start(
        app: ContactApplication, rota: RotaFeed) -> None:
    now = _now()
    evening = rota.shift(now - timedelta(hours=2), now + timedelta(hours=4))
    extra = rota.shift(now - timedelta(hours=3), now - timedelta(minutes=30))
    on_evening = _log(app, started_at=_recent(10))
    on_both = _log(app, started_at=_recent(60))
    before_any = _log(app, started_at=now - timedelta(hours=4))
    named = uuid.uuid4()
    chosen = _log(app, started_at=_recent(10), shift_id=named)
    assert on_evening.shift_id == uuid.UUID(evening)
    assert on_both.shift_id == uuid.UUID(extra)  # both hold it: the earliest to start
    assert before_any.shift_id is None and chosen.shift_id == named
    logged = {e.data["contact_id"]: e.data["shift_id"]
              for e in app.integration_events(0, 10) if e.type == "ContactLogged"}
    assert logged[str(on_evening.id)] == evening and logged[str(before_any.id)] is None


def test_missed_calls_count_under_the_shift_of_the_rota(
        app: ContactApplication, rota: RotaFeed, app_runtime: Build) -> None:
    """A missed call's ContactLogged carries the shift_id of the rota (the default: the
    shift it was missed on), and reporting counts missed calls apart."""
    now = _now()
    tonight = rota.shift(now - timedelta(hours=2), now + timedelta(hours=4))
    _log(app, answered=False, issues=[], phone="07700 900123")
    _log(app, answered=False, issues=[], started_at=_recent(30))
    _log(app, answered=False, issues=[], started_at=now - timedelta(hours=3))
    _log(app)  # answered: counted apart
    missed_on = sorted(e.data["shift_id"] or "unassigned"
                       for e in app.integration_events(0, 100)
                       if e.type == "ContactLogged" and not e.data["answered"])
    assert missed_on == sorted([tonight, tonight, "unassigned"])
    reporting = app_runtime("reporting")
    assert isinstance(reporting.app, ReportingApplication)
    reporting.projection.apply_many(app.integration_events(0, 100))
    contacts = reporting.app.monthly(london_month(now - timedelta(minutes=30)))["contacts"]
    assert contacts["total"] == 1
    if london_month(now - timedelta(hours=3)) == london_month(now - timedelta(minutes=30)):
        assert contacts["missed_calls"] == 3
    else:  # the month turned in the last three hours: the earlier call is last month's
        assert contacts["missed_calls"] == 2


def test_supporters_named_are_active_supporters_of_the_rota_or_422(
        app: ContactApplication, rota: RotaFeed) -> None:
    known, gone = rota.supporter(), rota.supporter()
    rota.deactivate(gone)
    before = _stored(app)
    for ids in ([str(uuid.uuid4())], [gone], ["sup-1"], [known, "Wilhelmina Frobisher"]):
        with pytest.raises(InvalidCommand) as info:
            _log(app, supporter_ids=ids)
        assert (info.value.location, info.value.field) == ("body", "supporter_ids")
        assert "Wilhelmina" not in info.value.message
    assert _stored(app) == before
    logged = _log(app, supporter_ids=[uuid.UUID(known), known.upper()], distressing=True)
    assert logged.supporter_ids == [known]
    debrief = [e for e in app.integration_events(0, 10) if e.type == "DebriefRequested"]
    assert debrief[0].data["supporter_ids"] == [known]


def test_a_new_text_is_routed_to_the_supporters_on_call(
        app: ContactApplication, rota: RotaFeed) -> None:
    now = _now()
    a, b, off, gone = (rota.supporter() for _ in range(4))
    tonight = rota.shift(now - timedelta(hours=1), now + timedelta(hours=5), a, b, gone)
    rota.shift(now + timedelta(minutes=10), now + timedelta(hours=6), off)  # not yet on call
    rota.deactivate(gone)
    first, _ = app.texts.receive(message_sid="SM1", from_number=NUMBER, body="hello?")
    thread = app.get_contact(first)
    assert thread.supporter_ids == sorted([a, b]) and thread.shift_id == uuid.UUID(tonight)
    rota.unassign(tonight, b)  # a later message goes to the same thread, as it was routed
    again, _ = app.texts.receive(message_sid="SM2", from_number=NUMBER, body="anyone?")
    assert again == first and app.get_contact(first).supporter_ids == sorted([a, b])
    # Nobody on call: the thread is nobody's but the coordinator's (a new thread: with
    # no reopening window, a text after closing never continues the closed one).
    app.correct_contact(first, reason="set", issues=["social_isolation"], ended_at=None)
    app.close_contact(first, no_escalation_reason=None)
    app.settings.text_reopen_window_h = 0
    rota.unassign(tonight, a)
    lonely, _ = app.texts.receive(message_sid="SM3", from_number=NUMBER, body="hello?")
    assert lonely != first and app.get_contact(lonely).supporter_ids == []


def test_text_threads_are_read_and_answered_on_shift(
        app: ContactApplication, rota: RotaFeed) -> None:
    contact_id, _ = app.texts.receive(message_sid="SM1", from_number=NUMBER, body="hello?")
    on, off = supporter(rota.on_shift()), supporter(rota.supporter())
    assert app.texts.thread(contact_id, on)[0].id == contact_id
    app.texts.reply(contact_id, body="We're here.", principal=on)
    before = _stored(app)
    with pytest.raises(NotPermitted, match="on shift"):
        app.texts.thread(contact_id, off)
    with pytest.raises(NotPermitted, match="on shift"):
        app.texts.reply(contact_id, body="hello", principal=off)
    assert _stored(app) == before and len(app.texts.sender.pending()) == 1  # type: ignore[attr-defined]


def test_an_unreadable_rota_event_is_set_aside_and_what_follows_applied(
        rota: RotaFeed) -> None:
    sid = str(uuid.uuid4())
    bad = rota.projection.apply_events([rota_event(
        rota.projection.last_applied("shift") + 1, "ShiftPublished",
        {"shift_id": sid, "starts_at": "2026-11-28T20:00:00", "ends_at": "tomorrow"})])
    assert bad.failed and not bad.applied
    assert rota.supporter()  # the next event applies
    (failure,) = rota.projection.failures()
    assert failure["error_type"] == "ValueError" and "2026" not in failure["message"]


def rota_event(n: int, type: str, data: dict[str, Any]) -> IntegrationEvent:
    return IntegrationEvent(
        id=envelope_id("shift", n), service="shift", notification_id=n,
        previous_notification_id=n - 1, aggregate_type="Shift", aggregate_id=uuid.uuid4(),
        aggregate_version=1, type=type, occurred_at=datetime.now(UTC), actor="c", data=data)
