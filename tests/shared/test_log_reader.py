"""The log read as integration events (``shared.eventstore.log_reader``): the events of
the library's path it replaces (``integration_events_slow``), value for value and type for
type, for real events of every service, on SQLite and PostgreSQL; an unknown transcoding
fails as the library fails, a gap keeps the position before it, the links are the
chain's and an unchained tail is chained first."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from eventsourcing.persistence import Notification, StoredEvent

from services.contact.domain import FollowUp, NewCaller
from services.shift.domain.codes import DEFAULT_REQUIRED_COURSES
from services.system import ServiceRuntime
from shared.audit.chain import Chainer, audit_chain, read_links
from shared.eventstore.application import ServiceApplication, _default_public
from shared.eventstore.log_reader import decode_state
from shared.kernel import acting
from shared.messaging.envelope import ENVELOPE_NAMESPACE, IntegrationEvent
from shared.messaging.relay import PositionStore, Relay
from shared.web.auth import Principal, Role
from tests.contact.rota import RotaFeed
from tests.outreach.test_app import RosterFeed

Build = Callable[..., ServiceRuntime]
COORDINATOR = Principal(sub="coord-1", role=Role.COORDINATOR, name="")


# -- the library's path, as it was ------------------------------------------------------
def to_integration_event_slow(app: ServiceApplication, n: Notification, previous: int,
                              chain_hash: bytes | None = None) -> IntegrationEvent:
    event = app.mapper.to_domain_event(n)
    public = app.public_event(event) or _default_public(event)
    meta: dict[str, Any] = getattr(event, "meta", None) or {}
    return IntegrationEvent(
        id=uuid.uuid5(ENVELOPE_NAMESPACE, f"{app.service}:{n.id}"), service=app.service,
        notification_id=n.id, previous_notification_id=previous,
        aggregate_type=type(event).__qualname__.split(".")[0],
        aggregate_id=event.originator_id, aggregate_version=event.originator_version,
        type=public.type, occurred_at=getattr(event, "timestamp", None) or datetime.now(UTC),
        actor=str(meta.get("actor", "system")), correlation_id=meta.get("correlation_id"),
        causation_id=meta.get("causation_id"), schema_version=public.schema_version,
        data=public.data, chain_hash=chain_hash.hex() if chain_hash is not None else None)


def integration_events_slow(app: ServiceApplication, after: int,
                            limit: int) -> list[IntegrationEvent]:
    notifications = app.recorder.select_notifications(start=after, limit=limit,
                                                      inclusive_of_start=False)
    if not notifications:
        return []
    previous = app.previous_notification_id(notifications[0].id)
    hashes = app.chain_hashes([n.id for n in notifications]) if app.chain_hashes else {}
    out = []
    for n in notifications:
        out.append(to_integration_event_slow(app, n, previous, hashes.get(n.id)))
        previous = n.id
    return out


def typed(value: Any) -> Any:
    """A value with the type of everything in it, for comparing exactly."""
    if isinstance(value, dict):
        return (dict, [(typed(k), typed(v)) for k, v in value.items()])
    if isinstance(value, list | tuple):
        return (type(value), [typed(v) for v in value])
    if isinstance(value, datetime):
        return (datetime, value, type(value.tzinfo), value.utcoffset())
    return (type(value), value)


def assert_same(fast: list[IntegrationEvent], slow: list[IntegrationEvent]) -> None:
    assert len(fast) == len(slow) and slow
    for a, b in zip(fast, slow, strict=True):
        assert type(a) is IntegrationEvent and a.model_dump() == b.model_dump() and a == b
        assert typed(a.__dict__) == typed(b.__dict__)
        assert a.model_fields_set == b.model_fields_set and a.subject == b.subject
        assert a.model_dump_json() == b.model_dump_json()
        assert (a.__pydantic_extra__, a.__pydantic_private__) == (None, None) == (
            b.__pydantic_extra__, b.__pydantic_private__)


def assert_read_alike(app: ServiceApplication) -> int:
    """Every page size, and each event alone (the relay's path), read the same both
    ways, through the one-query read and the fast decoding (not a silent fallback)."""
    head = app.max_notification_id()
    assert head > 0
    read = app.log_reader._read(0, 3)
    assert read is not None and read[2]  # one query, the links joined
    every = app.recorder.select_notifications(start=0, limit=head + 1)
    for n in every:  # the fast decoding gives the library's event, without falling back
        ours = app.log_reader.events._decode(n.topic, n.originator_id,
                                             n.originator_version, n.state)
        theirs = app.mapper.to_domain_event(n)
        assert type(ours) is type(theirs) and typed(ours.__dict__) == typed(theirs.__dict__)
    for limit in (1, 7, head + 5):
        after = 0
        while True:
            fast, slow = app.integration_events(after, limit), integration_events_slow(
                app, after, limit)
            if not slow:
                assert fast == []
                break
            assert_same(fast, slow)
            after = slow[-1].notification_id
    hashes = app.chain_hashes([n.id for n in every]) if app.chain_hashes else {}
    previous = 0
    for n in every:
        assert_same([app.to_integration_event(n, previous, hashes.get(n.id))],
                     [to_integration_event_slow(app, n, previous, hashes.get(n.id))])
        previous = n.id
    return head


# -- real events of every service (the times from when each filling starts) --------------
def fill_contact(runtime: ServiceRuntime) -> None:
    now = datetime.now(UTC)
    app: Any = runtime.app
    rota = RotaFeed(runtime)
    with acting("sup-1", "corr-1"):
        ref = app.register_caller(NewCaller(
            alias="Sunny", phone="07700 900123", gender="female", age_band="25_31",
            consent_to_keep_history=True, consent_to_text=True)).caller_ref
        app.register_caller(NewCaller(phone="07700 900456"))
        entry = app.add_directory_entry({
            "name": "Night Line", "helps_with": ["bereavement"], "phone": "0800 123 456",
            "address": "1 High St", "notes": "ask for Sam",
            "opening_hours": [{"day": "sun", "opens": "20:00", "closes": "02:00"}]})
        app.update_directory_entry(entry.id, {
            "name": "Night Line", "helps_with": ["bereavement", "housing"], "phone": None,
            "address": None, "notes": None, "opening_hours": [], "open_24_7": True}, None)
        other = app.add_directory_entry({"name": "Day Centre", "helps_with": ["housing"],
                                         "phone": None, "address": None, "notes": None,
                                         "opening_hours": []})
        app.remove_directory_entry(other.id, expected_version=None)
        sup = rota.on_shift()
        shift_id = uuid.UUID(rota.shift(now - timedelta(hours=2), now + timedelta(hours=4)))
        full = app.log_contact(
            channel="phone", direction="outbound", started_at=now - timedelta(minutes=40),
            ended_at=now - timedelta(minutes=5), issues=["bereavement", "housing"],
            caller_ref=ref, shift_id=shift_id, supporter_ids=[sup, rota.supporter()],
            caller_is="person_in_crisis", summary="Talked about her brother",
            signposted_to=[entry.id], follow_up=FollowUp(by=now + timedelta(days=1),
                                                         what="ring on Tuesday"),
            distressing=True)
        app.assess_risk(full.id, level="immediate", factors="plan and means",
                        protective_factors="her sister", decision="call 999",
                        reasoning="said so")
        app.escalate(full.id, kind="emergency_services", reason="ambulance",
                     reference="CAD-1")
        app.correct_contact(full.id, reason="misheard", issues=["abuse"],
                            ended_at=now - timedelta(minutes=4), summary="corrected",
                            caller_is="professional", signposted_to=[entry.id])
        app.assess_risk(full.id, level="low", factors=None, protective_factors=None,
                        decision="none", reasoning=None)
        app.close_contact(full.id, no_escalation_reason=None)
        app.complete_follow_up(full.id, 1, outcome="rang back")
        missed = app.log_contact(channel="phone", started_at=now - timedelta(minutes=30),
                                 issues=[], answered=False, phone="07700 900999")
        app.complete_follow_up(missed.id, 1, outcome=None)
        plain = app.log_contact(channel="text", started_at=now - timedelta(minutes=20),
                                issues=["social_isolation"])
        app.close_contact(plain.id, no_escalation_reason="none needed")
        referral = app.referrals.receive(
            received_at=None, source="gp", referrer_organisation="GP", caller_ref=None,
            new_caller=NewCaller(phone="07700 900777"), reason="low mood",
            consent_to_contact=True)
        app.referrals.decide(referral.id, accept=True, reason="fits", expected_version=None)
        declined = app.referrals.receive(
            received_at=now - timedelta(days=1), source="gp", referrer_organisation=None,
            caller_ref=ref, new_caller=None, reason=None, consent_to_contact=True)
        app.referrals.decide(declined.id, accept=False, reason="no", expected_version=None)
        app.log_contact(channel="phone", started_at=now - timedelta(minutes=10),
                        issues=["housing"], referral_id=referral.id)
        app.caller_history(ref, purpose="caller rang again", principal=COORDINATOR)
        app.change_consent(ref, consent_to_keep_history=None, consent_to_text=False,
                           expected_version=None)
        contact_id, _ = app.texts.receive(message_sid="SM1", from_number="07700 900321",
                                          body="can we talk")
        app.texts.reply(contact_id, body="We're here.", principal=COORDINATOR)
        app.erase_caller(ref)


def fill_shift(runtime: ServiceRuntime) -> None:
    now = datetime.now(UTC)
    app: Any = runtime.app
    with acting("coord-1", "corr-1"):
        people = []
        for name in ("Ann Example", "Bo Example", "Cy Example"):
            s = app.register_supporter(name=name, phone="07700 900123",
                                       email="ann@example.org", role="supporter",
                                       start_date=date(2026, 1, 5))
            for course in sorted(DEFAULT_REQUIRED_COURSES):
                s = app.record_training(s.id, course=course, completed_on=date(2026, 1, 10),
                                        expires_on=None, expected_version=None)
            people.append(s)
        a, b, c = people
        app.record_supervision(a.id, kind="group", on=date(2026, 2, 1), by="coord-1",
                               notes="fine", expected_version=None)
        app.publish_week("2026-W49")
        shift = app.shifts.add_extra(starts_at=now - timedelta(hours=1),
                                     ends_at=now + timedelta(hours=5), required=2)
        app.shifts.assign(shift.id, a.id, None)
        app.shifts.assign(shift.id, b.id, None)
        app.shifts.swap(shift.id, b.id, c.id, None)
        app.shifts.check_in(shift.id, str(a.id), now)
        app.shifts.unassign(shift.id, c.id, reason="unwell", expected_version=None)
        bag = app.bags.register(label="Bag 1", items=None)
        app.bags.hand_over(bag.id, from_supporter_id="coord-1", to_supporter_id=str(a.id),
                           items_checked={"phone": True, "phone_charged": False,
                                          "resource_booklet": True, "service_directory": True},
                           at=now - timedelta(hours=1), notes="charger", expected_version=1)
        app.deactivate(b.id, reason="left", expected_version=None)
    with acting("service:shift"):
        app.tick(now + timedelta(days=1))


def fill_outreach(runtime: ServiceRuntime) -> None:
    now = datetime.now(UTC)
    app: Any = runtime.app
    feed = RosterFeed(runtime)
    a, b = feed.supporter(), feed.supporter()
    with acting("coord-1", "corr-1"):
        meeting = app.request_meeting(
            COORDINATOR, caller_ref="C-0000ABCD", contact_id=uuid.uuid4(), kind="home",
            proposed_at=now, expected_minutes=30, venue=None,
            address="12 Acacia Avenue, Leeds", reason="asked for a visit")
        app.assess_risk(COORDINATOR, meeting.id, level="low", factors=["animals"],
                        mitigations="dog in the kitchen", expected_version=None)
        app.approve(COORDINATOR, meeting.id, conditions="phones charged",
                    expected_version=None)
        app.schedule(COORDINATOR, meeting.id, supporter_ids=[a, b], expected_version=None)
        for sid in (a, b):
            with acting(sid):
                app.check_in(Principal(sub=sid, role=Role.SUPPORTER, name=""), meeting.id,
                             expected_minutes=30, expected_version=None)
        with acting("service:outreach"):
            app.tick(app.get(meeting.id).deadline(app.grace) + timedelta(minutes=1))
        app.resolve_alert(COORDINATOR, meeting.id, what_was_done="rang them",
                          expected_version=None)
        for sid in (a, b):
            with acting(sid):
                app.check_out(Principal(sub=sid, role=Role.SUPPORTER, name=""), meeting.id,
                              expected_version=None)
        app.record_outcome(COORDINATOR, meeting.id, what_happened="talked",
                           follow_up="ring on Friday", expected_version=None)
        other = app.request_meeting(
            COORDINATOR, caller_ref="C-0000ABCE", contact_id=None, kind="home",
            proposed_at=now + timedelta(days=2), expected_minutes=60, venue=None,
            address="3 Elm Road", reason="a visit")
        app.decline(COORDINATOR, other.id, reason="too far", expected_version=None)


FILL = {"contact": fill_contact, "shift": fill_shift, "outreach": fill_outreach}


@pytest.mark.parametrize("service", sorted(FILL))
def test_every_event_of_every_service_reads_as_the_library_reads_it(
        app_runtime: Build, service: str) -> None:
    runtime = app_runtime(service)
    FILL[service](runtime)
    head = assert_read_alike(runtime.app)
    types = {e.type for e in runtime.app.integration_events(0, head)}
    assert head >= 12 and len(types) >= 10, types  # many kinds of event, not one


def test_without_the_chain_or_with_other_links_the_events_are_the_same(
        app_runtime: Build) -> None:
    runtime = app_runtime("contact")
    fill_contact(runtime)
    app = runtime.app
    app.chain_hashes = None
    assert_same(app.integration_events(0, 100), integration_events_slow(app, 0, 100))
    assert all(e.chain_hash is None for e in app.integration_events(0, 100))
    app.chain_hashes = lambda ids: {i: bytes([i % 256]) * 32 for i in ids if i % 2}
    assert_same(app.integration_events(3, 100), integration_events_slow(app, 3, 100))
    assert app.integration_events(0, 2)[0].chain_hash == "01" * 32
    other = app_runtime("shift").engine  # a chain kept elsewhere: its links, not ours
    head = app.max_notification_id()
    with other.begin() as conn:
        conn.execute(sa.insert(audit_chain), [{"notification_id": i, "hash": bytes([i]) * 32}
                                              for i in range(1, head + 1)])
    app.chain_hashes = Chainer(app.recorder, other).hashes
    fast = app.integration_events(0, 100)
    assert_same(fast, integration_events_slow(app, 0, 100))
    assert [e.chain_hash for e in fast] == [bytes([i]).hex() * 32 for i in range(1, head + 1)]


# -- the rules -----------------------------------------------------------------------------
def _store(app: ServiceApplication, *states: bytes) -> list[int]:
    """Stored events (a caller's, erased) with these states, straight into the log: saved
    without the app, so neither decoded nor chained by it."""
    topic = "services.contact.domain.caller:Caller.Erased"
    app.recorder.insert_events([StoredEvent(originator_id=uuid.uuid4(), originator_version=1,
                                            topic=topic, state=s) for s in states])
    head = app.max_notification_id()
    return list(range(head - len(states) + 1, head + 1))


def _state(**extra: Any) -> bytes:
    stamp = '{"_type_":"datetime_iso","_data_":"2026-11-30T02:22:46.477906+00:00"}'
    fields = "".join(f',"{k}":{v}' for k, v in extra.items())
    return (f'{{"timestamp":{stamp},"caller_ref":"C-1","meta":{{"actor":"a"}}{fields}}}'
            ).encode()


def _failure(read: Callable[[], object]) -> tuple[type, str]:
    with pytest.raises(Exception) as info:
        read()
    return type(info.value), str(info.value)


def test_an_unknown_transcoding_fails_as_the_library_fails(app_runtime: Build) -> None:
    app = app_runtime("contact").app
    (bad,) = _store(app, _state(x='{"_type_":"nope","_data_":"1"}'))
    fast = _failure(lambda: app.integration_events(0, 10))
    assert fast == _failure(lambda: integration_events_slow(app, 0, 10))
    assert "nope" in fast[1] and fast[0].__name__ == "MapperDeserialisationError"
    (n,) = app.recorder.select_notifications(start=bad, limit=1)
    assert _failure(lambda: app.to_integration_event(n, 0)) == _failure(
        lambda: to_integration_event_slow(app, n, 0))


def test_what_orjson_reads_otherwise_is_read_the_librarys_way(app_runtime: Build) -> None:
    app = app_runtime("contact").app
    odd = {"big": str(2**70), "small": str(-(2**64)), "nested": (
        '{"a":[1,{"_type_":"uuid_hex","_data_":"' + uuid.uuid4().hex + '"}],'
        '"b":{"_type_":"decimal_str","_data_":"1.50"},"c":{"_type_":"x","y":1}}'),
        "two": '{"_data_":[1.5],"_type_":"datetime_iso"}', "f": "1e300"}
    _store(app, _state(**{k: v for k, v in odd.items() if k != "two"}))
    assert_same(app.integration_events(0, 10), integration_events_slow(app, 0, 10))
    events = app.log_reader.events
    (n,) = app.recorder.select_notifications(start=1, limit=1)
    ours = events.decode(n.topic, n.originator_id, n.originator_version, n.state)
    assert ours.big == 2**70 and type(ours.big) is int  # orjson alone gives a float
    assert ours.small == -(2**64) and type(ours.small) is int
    names = app.mapper.transcoder.names  # type: ignore[attr-defined]
    with pytest.raises(Exception):  # any: the caller then asks the library
        decode_state(_state(two=odd["two"]), names)


def test_a_gap_in_the_log_keeps_the_position_before_it(app_runtime: Build) -> None:
    runtime = app_runtime("contact")
    fill_contact(runtime)
    app = runtime.app
    recorder: Any = app.recorder
    table, column = recorder.events_table_name, "rowid"
    if runtime.engine.dialect.name == "postgresql":
        table = f"{recorder.datastore.schema}.{table}"
        column = "notification_id"
    with runtime.engine.begin() as conn:  # as a rolled-back insert leaves it on PostgreSQL
        conn.execute(sa.text(f"DELETE FROM {table} WHERE {column} IN (5, 6, 7)"))
    for after in (3, 4, 5, 6, 7):
        fast = app.integration_events(after, 3)
        assert_same(fast, integration_events_slow(app, after, 3))
        first = 8 if after >= 4 else 4
        assert fast[0].notification_id == first
        assert fast[0].previous_notification_id == (4 if first == 8 else 3)


def test_links_are_the_chains_and_an_unchained_tail_is_chained_first(
        app_runtime: Build) -> None:
    runtime = app_runtime("contact")
    fill_contact(runtime)
    app = runtime.app
    tail = _store(app, _state(), _state(), _state())
    assert read_links(runtime.engine, tail[0] - 1, 10) == []  # not chained yet
    events = app.integration_events(tail[0] - 3, 10)
    links = dict(read_links(runtime.engine, 0, 10_000))
    assert set(tail) <= set(links)  # chained by the read
    assert [e.chain_hash for e in events] == [
        links[e.notification_id].hex() for e in events]
    assert runtime.chainer.hashes([e.notification_id for e in events]) == {
        e.notification_id: bytes.fromhex(e.chain_hash or "") for e in events}
    assert_read_alike(app)


def test_the_relay_reads_its_batch_as_the_library_would(app_runtime: Build) -> None:
    runtime = app_runtime("shift")
    fill_shift(runtime)
    app = runtime.app
    relay = Relay(app, None, PositionStore(runtime.engine, "test"),  # type: ignore[arg-type]
                  batch_size=8, hashes=runtime.chainer.hashes)
    relay.position = 3
    batch = relay._read_batch()
    notifications = app.recorder.select_notifications(start=3, limit=8,
                                                      inclusive_of_start=False)
    hashes = runtime.chainer.hashes([n.id for n in notifications])
    previous, slow = 3, []
    for n in notifications:
        slow.append(to_integration_event_slow(app, n, previous, hashes.get(n.id)))
        previous = n.id
    assert_same(batch, slow)
    assert {e.aggregate_type for e in batch} >= {"Supporter"}
