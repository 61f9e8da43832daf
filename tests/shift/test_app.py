"""The shift application: its use cases with their real adapters (event store, keys,
read tables), built by the composition root, with no HTTP and no NATS, on SQLite and
PostgreSQL. The rules themselves are tested at the domain (``test_domain.py``); here,
that the application loads, seals, saves, reads, asks the other aggregates what a rule
needs, reacts to the contact service and does its work by the clock.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from eventsourcing.persistence import IntegrityError

from services.shift.app import ShiftApplication
from services.shift.domain import LONDON, Supporter, debrief_id_for
from services.shift.domain.codes import DEFAULT_REQUIRED_COURSES
from services.shift.handlers import REACTIONS
from services.system import ServiceRuntime
from shared.eventstore.reactions import Reactor
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

Build = Callable[..., ServiceRuntime]
NOW = datetime.now(UTC)
TODAY = NOW.astimezone(LONDON).date()
HOUR = timedelta(hours=1)


@pytest.fixture
def app(app_runtime: Build) -> Iterator[ShiftApplication]:
    """The shift application as the composition root builds it (never started), with the
    coordinator acting, as the web layer would set."""
    built = app_runtime("shift").app
    assert isinstance(built, ShiftApplication)
    with acting("coord-1", "corr-1"):
        yield built


def _supporter(app: ShiftApplication, *, trained: bool = True, name: str = "Ann Example",
               expires_on: date | None = None) -> Supporter:
    s = app.register_supporter(name=name, phone="07700 900123", email="ann@example.org",
                               role="supporter", start_date=date(2026, 1, 5))
    if trained:
        for course in sorted(DEFAULT_REQUIRED_COURSES):
            s = app.record_training(s.id, course=course, completed_on=date(2026, 1, 10),
                                    expires_on=expires_on, expected_version=None)
    return s


def _events(app: ShiftApplication, *types: str) -> list[IntegrationEvent]:
    found = app.integration_events(0, 5000)
    return [e for e in found if not types or e.type in types]


def _extra(app: ShiftApplication, starts: datetime, hours: float = 6, required: int = 2
           ) -> Any:
    return app.shifts.add_extra(starts_at=starts, ends_at=starts + timedelta(hours=hours),
                                required=required)


# -------------------------------------------------------------------------- supporters


def test_a_supporter_is_registered_sealed_and_published_without_personal_data(
        app: ShiftApplication) -> None:
    s = _supporter(app, trained=False)
    stored = app.get_supporter(s.id)
    assert stored.name.startswith("pd1:") and app.keys.reveal(stored.name) == "Ann Example"
    assert app.keys.reveal(stored.phone) == "+447700900123"  # normalised, then sealed
    assert app.eligibility(stored) == (False, sorted(DEFAULT_REQUIRED_COURSES))
    (registered,) = _events(app, "SupporterRegistered")
    assert registered.data == {"supporter_id": str(s.id), "role": "supporter",
                               "eligible": False, "missing": sorted(DEFAULT_REQUIRED_COURSES)}
    assert registered.actor == "coord-1"
    with pytest.raises(InvalidCommand) as info:
        app.register_supporter(name="Bo", phone="12345", email=None, role="supporter",
                               start_date=TODAY)
    assert info.value.field == "phone"


def test_training_changes_eligibility_and_each_change_is_recorded_once(
        app: ShiftApplication) -> None:
    s = _supporter(app)
    assert app.eligibility(app.get_supporter(s.id)) == (True, [])
    changes = [e.data for e in _events(app, "SupporterEligibilityChanged")]
    assert changes[-1] == {"supporter_id": str(s.id), "eligible": True, "missing": []}
    assert [c["eligible"] for c in changes] == [False, False, True]  # what is missing shrinks
    app.record_training(s.id, course="stress_management", completed_on=TODAY,
                        expires_on=None, expected_version=None)
    assert len(_events(app, "SupporterEligibilityChanged")) == 3  # nothing changed
    assert app.refresh_eligibility(NOW) == 0


def test_an_expired_certificate_is_noticed_by_the_clock_once_a_day(
        app: ShiftApplication) -> None:
    s = _supporter(app, expires_on=TODAY + timedelta(days=1))
    assert app.refresh_eligibility(NOW) == 0
    tomorrow = datetime.combine(TODAY + timedelta(days=1), datetime.min.time(),
                                LONDON) + timedelta(hours=12)
    app.tick(tomorrow)
    changed = _events(app, "SupporterEligibilityChanged")[-1].data
    assert changed == {"supporter_id": str(s.id), "eligible": False,
                       "missing": sorted(DEFAULT_REQUIRED_COURSES)}
    app.tick(tomorrow + HOUR)
    assert _events(app, "SupporterEligibilityChanged")[-1].data == changed
    assert app.eligibility(app.get_supporter(s.id), TODAY) == (True, [])


def test_a_changed_required_set_is_recorded_at_the_first_tick(
        app: ShiftApplication, app_runtime: Build) -> None:
    s = _supporter(app, trained=False)
    app.record_training(s.id, course="induction", completed_on=TODAY, expires_on=None,
                        expected_version=None)
    restarted = app_runtime("shift", required_courses=["induction"]).app
    assert isinstance(restarted, ShiftApplication)
    assert restarted.refresh_eligibility(NOW) == 1
    last = _events(restarted, "SupporterEligibilityChanged")[-1]
    assert last.data == {"supporter_id": str(s.id), "eligible": True, "missing": []}
    assert last.actor == "coord-1"  # who acts: the test's; the service when it ticks
    with pytest.raises(ValueError, match="first_aid"):
        app_runtime("shift", required_courses=["induction", "first_aid"])


def test_supervision_notes_are_sealed_and_the_last_one_shows_who_is_overdue(
        app: ShiftApplication) -> None:
    s = _supporter(app)
    assert app.supervision_overdue(s)  # started in January, never supervised
    s = app.record_supervision(s.id, kind="group", on=TODAY, by="coord-1",
                               notes="doing well", expected_version=s.version)
    assert s.last_supervision == TODAY and not app.supervision_overdue(s)
    assert app.supervision_overdue(s, TODAY + timedelta(days=43))
    assert app.keys.reveal(s.supervisions[0]["notes"]) == "doing well"
    with pytest.raises(VersionMismatch):
        app.record_supervision(s.id, kind="group", on=TODAY, by="coord-1", notes=None,
                               expected_version=1)


def test_supporters_are_listed_oldest_first_and_paged(app: ShiftApplication) -> None:
    made = [_supporter(app, trained=False, name=f"S{i}").id for i in range(3)]
    page, cursor = app.list_supporters(None, 2, None)
    assert [s.id for s in page] == made[:2] and cursor
    rest, last = app.list_supporters(None, 2, cursor)
    assert [s.id for s in rest] == made[2:] and last is None
    with pytest.raises(InvalidCommand) as info:
        app.list_supporters(None, 2, "bm90IGEgY3Vyc29y")
    assert (info.value.location, info.value.field) == ("query", "cursor")


# ------------------------------------------------------------------------------ the rota


def test_publishing_a_week_is_idempotent(app: ShiftApplication) -> None:
    created, shifts = app.publish_week("2026-W49")
    assert created == 5 and [s.slot for s in shifts] == [
        "fri 20:00-02:00", "sat 08:00-14:00", "sat 20:00-02:00", "sun 08:00-14:00",
        "sun 20:00-02:00"]
    head = app.max_notification_id()
    again, same = app.publish_week("2026-W49")
    assert again == 0 and [s.id for s in same] == [s.id for s in shifts]
    assert app.max_notification_id() == head
    published = _events(app, "ShiftPublished")
    assert published[0].data == {"shift_id": str(shifts[0].id), "slot": "fri 20:00-02:00",
                                 "starts_at": "2026-12-04T20:00:00+00:00",
                                 "ends_at": "2026-12-05T02:00:00+00:00", "required": 2}


def test_the_clock_changes_make_a_night_five_or_seven_hours(app: ShiftApplication) -> None:
    _, spring = app.publish_week("2026-W13")  # Sunday 29 March 2026
    _, autumn = app.publish_week("2026-W43")  # Sunday 25 October 2026
    sat = {s.slot: s.ends_at - s.starts_at for s in spring}
    assert sat["sat 20:00-02:00"] == 5 * HOUR and sat["fri 20:00-02:00"] == 6 * HOUR
    assert {s.slot: s.ends_at - s.starts_at for s in autumn}["sat 20:00-02:00"] == 7 * HOUR


@pytest.mark.parametrize("week", ["2026-W54", "1999-W01", "2026-49"])
def test_a_week_that_is_not_one_is_refused_on_the_path(app: ShiftApplication,
                                                       week: str) -> None:
    with pytest.raises(InvalidCommand) as info:
        app.publish_week(week)
    assert (info.value.location, info.value.field) == ("path", "iso_week")


def test_a_week_too_far_ahead_is_refused_on_the_path_and_nothing_is_stored(
        app: ShiftApplication) -> None:
    far = (TODAY + timedelta(days=800)).isocalendar()
    with pytest.raises(InvalidCommand) as info:
        app.publish_week(f"{far.year}-W{far.week:02d}")
    assert (info.value.location, info.value.field) == ("path", "iso_week")
    assert info.value.message.startswith("its shifts must be from")
    assert app.max_notification_id() == 0


def test_the_template_is_replaced_with_its_version_and_used_by_the_next_week(
        app: ShiftApplication) -> None:
    slots, version = app.template()
    assert len(slots) == 5 and version == 0
    with pytest.raises(VersionMismatch):
        app.replace_template([{"weekday": "sat", "starts": "10:00", "ends": "16:00"}], 3)
    slots, version = app.replace_template(
        [{"weekday": "sat", "starts": "10:00", "ends": "16:00", "required": 3}], 0)
    assert version == 1 and [s.label for s in slots] == ["sat 10:00-16:00"]
    _, shifts = app.publish_week("2026-W50")
    assert [(s.slot, s.required) for s in shifts] == [("sat 10:00-16:00", 3)]
    with pytest.raises(InvalidCommand) as info:
        app.replace_template([{"weekday": "sat", "starts": "10:00", "ends": "16:00"},
                              {"weekday": "sat", "starts": "10:00", "ends": "12:00"}], 1)
    assert info.value.field == "slots.1.starts"


# ---------------------------------------------------------------------- assignments


def test_assignments_are_refused_with_the_reason(app: ShiftApplication) -> None:
    a, b, c = (_supporter(app) for _ in range(3))
    untrained = _supporter(app, trained=False)
    shift = _extra(app, NOW + 24 * HOUR)
    app.shifts.assign(shift.id, a.id, None)
    with pytest.raises(Conflicting, match="not eligible"):
        app.shifts.assign(shift.id, untrained.id, None)
    app.shifts.assign(shift.id, b.id, 2)
    with pytest.raises(Conflicting, match="already has its 2 supporters"):
        app.shifts.assign(shift.id, c.id, None)
    overlapping = _extra(app, NOW + 27 * HOUR)
    with pytest.raises(Conflicting, match="overlaps"):
        app.shifts.assign(overlapping.id, a.id, None)
    after = _extra(app, NOW + 30 * HOUR)  # starts as the first ends: no overlap
    app.shifts.assign(after.id, a.id, None)
    with pytest.raises(InvalidCommand) as info:
        app.shifts.assign(after.id, uuid.uuid4(), None)
    assert info.value.field == "supporter_id"
    with pytest.raises(VersionMismatch):
        app.shifts.assign(after.id, c.id, 1)
    assert app.shifts.get(shift.id).coverage == "covered"


def test_an_expiring_certificate_makes_a_supporter_ineligible_for_later_shifts(
        app: ShiftApplication) -> None:
    s = _supporter(app, expires_on=TODAY + timedelta(days=3))
    soon, later = _extra(app, NOW + 24 * HOUR), _extra(app, NOW + 24 * 7 * HOUR)
    app.shifts.assign(soon.id, s.id, None)
    with pytest.raises(Conflicting, match="not eligible"):
        app.shifts.assign(later.id, s.id, None)


def test_two_coordinators_filling_the_last_place_at_once_one_conflicts(
        app: ShiftApplication, app_runtime: Build) -> None:
    a, b, c = (_supporter(app) for _ in range(3))
    shift = _extra(app, NOW + 24 * HOUR)
    app.shifts.assign(shift.id, a.id, None)
    other = app_runtime("shift").app  # a second process on the same store
    assert isinstance(other, ShiftApplication)
    theirs = other.shifts.get(shift.id)  # both read version 2: one place left
    app.shifts.assign(shift.id, b.id, None)
    theirs.assign(str(c.id), eligible=True, active=True, overlapping=False)
    with pytest.raises(IntegrityError):
        other.save(theirs)  # the API answers this 409
    assert app.shifts.get(shift.id).assignments == [str(a.id), str(b.id)]


def test_unassigning_needs_a_reason_sealed_and_published_without_it(
        app: ShiftApplication) -> None:
    s = _supporter(app)
    shift = _extra(app, NOW + 24 * HOUR)
    app.shifts.assign(shift.id, s.id, None)
    after = app.shifts.unassign(shift.id, s.id, reason="unwell", expected_version=None)
    assert after.assignments == []
    assert _events(app, "SupporterUnassigned")[-1].data == {"shift_id": str(shift.id),
                                                            "supporter_id": str(s.id)}
    with pytest.raises(NotKnown):
        app.shifts.unassign(shift.id, s.id, reason="again", expected_version=None)


def test_a_swap_is_one_change_checking_the_newcomer(app: ShiftApplication) -> None:
    a, b = _supporter(app), _supporter(app)
    untrained = _supporter(app, trained=False)
    shift = _extra(app, NOW + 24 * HOUR)
    app.shifts.assign(shift.id, a.id, None)
    with pytest.raises(Conflicting, match="not eligible"):
        app.shifts.swap(shift.id, a.id, untrained.id, None)
    with pytest.raises(InvalidCommand) as info:
        app.shifts.swap(shift.id, a.id, uuid.uuid4(), None)
    assert info.value.field == "to_supporter_id"
    swapped = app.shifts.swap(shift.id, a.id, b.id, 2)
    assert swapped.assignments == [str(b.id)] and swapped.version == 3
    assert _events(app, "ShiftSwapped")[-1].data == {
        "shift_id": str(shift.id), "from_supporter_id": str(a.id),
        "to_supporter_id": str(b.id)}


def test_deactivation_takes_a_supporter_off_future_shifts_only(app: ShiftApplication) -> None:
    s, other = _supporter(app), _supporter(app)
    on_now = _extra(app, NOW - HOUR)
    future = [_extra(app, NOW + 24 * HOUR), _extra(app, NOW + 48 * HOUR)]
    for shift in (on_now, *future):
        app.shifts.assign(shift.id, s.id, None)
    app.shifts.assign(future[0].id, other.id, None)
    deactivated, off = app.deactivate(s.id, reason="moved away", expected_version=None)
    assert not deactivated.active and {x.id for x in off} == {f.id for f in future}
    assert app.shifts.get(on_now.id).assignments == [str(s.id)]  # started: history
    assert app.shifts.get(future[0].id).assignments == [str(other.id)]
    unassigned = _events(app, "SupporterUnassigned")
    assert {e.data["shift_id"] for e in unassigned} == {str(f.id) for f in future}
    assert _events(app, "SupporterDeactivated")[-1].data == {"supporter_id": str(s.id)}
    assert app.keys.reveal(app.get_supporter(s.id).deactivation_reason) == "moved away"
    with pytest.raises(Conflicting, match="inactive"):
        app.shifts.assign(future[1].id, s.id, None)
    with pytest.raises(RuleBroken, match="already"):
        app.deactivate(s.id, reason="again", expected_version=None)
    assert [x.id for x in app.list_supporters(False, 10, None)[0]] == [s.id]


# -------------------------------------------------------------- on call and the clock


def test_only_an_assigned_supporter_checks_in_and_on_call_shows_them(
        app: ShiftApplication) -> None:
    a, b = _supporter(app), _supporter(app)
    shift = _extra(app, NOW - HOUR)
    app.shifts.assign(shift.id, a.id, None)
    with pytest.raises(NotPermitted):
        app.shifts.check_in(shift.id, str(b.id), NOW)
    with pytest.raises(RuleBroken, match="check-in is open"):
        app.shifts.check_in(shift.id, str(a.id), NOW + 6 * HOUR)
    app.shifts.check_in(shift.id, str(a.id), NOW)
    (on,) = app.shifts.on_call(NOW)
    assert (on["id"], on["assignments"], on["checked_in"]) == (
        str(shift.id), [str(a.id)], [str(a.id)])
    assert app.shifts.on_call(NOW + 6 * HOUR) == []
    assert _events(app, "SupporterCheckedIn")[-1].data["supporter_id"] == str(a.id)


def test_coverage_lists_the_shifts_short_of_their_number(app: ShiftApplication) -> None:
    s = _supporter(app)
    full, short, empty = (_extra(app, NOW + (24 * d) * HOUR, required=1 if d == 1 else 2)
                          for d in (1, 2, 3))
    app.shifts.assign(full.id, s.id, None)
    app.shifts.assign(short.id, s.id, None)
    gaps, cursor = app.shifts.between(NOW, NOW + 96 * HOUR, gaps_only=True, limit=10,
                                      cursor=None)
    assert [(g["id"], g["coverage"]) for g in gaps] == [(str(short.id), "short"),
                                                         (str(empty.id), "empty")]
    every, cursor = app.shifts.between(NOW, NOW + 96 * HOUR, gaps_only=False, limit=2,
                                       cursor=None)
    assert [g["id"] for g in every] == [str(full.id), str(short.id)] and cursor
    with pytest.raises(InvalidCommand):  # another list's cursor
        app.shifts.between(NOW, NOW + 96 * HOUR, gaps_only=True, limit=2, cursor=cursor)


def test_the_clock_records_an_uncovered_shift_and_a_bag_not_handed_over_once(
        app: ShiftApplication) -> None:
    a, b, c = _supporter(app), _supporter(app), _supporter(app)
    bag = app.bags.register(label="Bag 1", items=None)
    app.bags.hand_over(bag.id, from_supporter_id="coord-1", to_supporter_id=str(a.id),
                       items_checked={"phone": True, "phone_charged": True,
                                      "resource_booklet": True, "service_directory": True},
                       at=NOW - 2 * HOUR, notes=None, expected_version=None)
    with_bag = _extra(app, NOW - HOUR)
    without = _extra(app, NOW - 2 * HOUR, hours=1.5)
    upcoming = _extra(app, NOW + 6 * HOUR)
    for shift, who in ((with_bag, (a, b)), (without, (c,)), (upcoming, (a,))):
        for s in who:
            app.shifts.assign(shift.id, s.id, None)
    app.shifts.check_in(with_bag.id, str(a.id), NOW - HOUR)
    app.shifts.check_in(with_bag.id, str(b.id), NOW - HOUR)
    app.tick(NOW)
    assert [e.data for e in _events(app, "ShiftUncovered")] == [
        {"shift_id": str(without.id), "required": 2, "checked_in": []}]
    assert [e.data for e in _events(app, "BagNotHandedOver")] == [
        {"shift_id": str(without.id)}]
    assert _events(app, "ShiftUncovered")[0].actor == "coord-1"  # as set around the tick
    head = app.max_notification_id()
    app.tick(NOW + timedelta(minutes=1))
    assert app.max_notification_id() == head  # once


# ------------------------------------------------------------------------------- bags


def test_a_bag_passes_from_its_holder_with_missing_items_recorded(
        app: ShiftApplication) -> None:
    a, b = _supporter(app), _supporter(app)
    bag = app.bags.register(label="Bag 1", items=None)
    assert bag.holder == "coord-1"
    with pytest.raises(Conflicting, match="does not hold"):
        app.bags.hand_over(bag.id, from_supporter_id=str(a.id), to_supporter_id=str(b.id),
                           items_checked={}, at=NOW, notes=None, expected_version=None)
    app.bags.hand_over(bag.id, from_supporter_id="coord-1", to_supporter_id=str(a.id),
                       items_checked={"phone": True, "phone_charged": False,
                                      "resource_booklet": True, "service_directory": True},
                       at=NOW - HOUR, notes="charger left at home", expected_version=1)
    bag = app.bags.get(bag.id)
    assert bag.holder == str(a.id) and bag.history[0]["missing"] == ["phone_charged"]
    assert app.keys.reveal(bag.history[0]["notes"]) == "charger left at home"
    assert _events(app, "BagItemMissing")[-1].data == {"bag_id": str(bag.id),
                                                       "item": "phone_charged"}
    assert _events(app, "BagHandedOver")[-1].data == {
        "bag_id": str(bag.id), "from_supporter_id": "coord-1",
        "to_supporter_id": str(a.id), "at": (NOW - HOUR).isoformat()}
    (row,), _ = app.bags.list(10, None)
    assert (row["holder"], row["version"]) == (str(a.id), bag.version)


# --------------------------------------------------------------------------- debriefs


def _requested(n: int, contact_id: uuid.UUID, supporter_ids: Any,
               at: datetime = NOW) -> IntegrationEvent:
    return IntegrationEvent(
        id=envelope_id("contact", n), service="contact", notification_id=n,
        previous_notification_id=n - 1, aggregate_type="Contact", aggregate_id=contact_id,
        aggregate_version=3, type="DebriefRequested", occurred_at=at, actor="sup-1",
        correlation_id="corr-9", data={"contact_id": str(contact_id),
                                       "supporter_ids": supporter_ids})


def test_a_debrief_request_opens_one_for_each_supporter_exactly_once(
        app: ShiftApplication) -> None:
    reactor = Reactor(app, REACTIONS)
    contact = uuid.uuid4()
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    first = _requested(1, contact, [a, b, a], at=NOW - timedelta(days=4))
    assert reactor.apply(first) and not reactor.apply(first)  # redelivered: nothing
    assert reactor.apply(_requested(2, contact, [b]))  # asked again: nothing new
    assert reactor.apply(_requested(3, uuid.uuid4(), "not a list"))  # refused, tracked
    opened = _events(app, "DebriefOpened")
    assert [e.data for e in opened] == [
        {"debrief_id": str(debrief_id_for(contact, s)), "supporter_id": s,
         "contact_id": str(contact)} for s in (a, b)]  # in the order named, once each
    assert opened[0].actor == "service:shift" and opened[0].causation_id == str(first.id)
    assert reactor.last_applied("contact") == 3
    items, _ = app.debriefs.list(status="open", supporter_id=None, limit=10, cursor=None)
    assert sorted((i["supporter_id"], i["overdue"]) for i in items) == sorted(
        [(a, True), (b, True)])  # requested four days ago: past the 72 hours
    done = app.debriefs.complete(debrief_id_for(contact, a), on=TODAY, by="coord-1",
                                 expected_version=1)
    assert done.status == "complete" and not app.debriefs.overdue(done)
    assert _events(app, "DebriefCompleted")[-1].data == {"debrief_id": str(done.id),
                                                         "supporter_id": a}
    items, _ = app.debriefs.list(status="open", supporter_id=None, limit=10, cursor=None)
    assert [i["supporter_id"] for i in items] == [b]
    with pytest.raises(RuleBroken, match="already"):
        app.debriefs.complete(done.id, on=TODAY, by="coord-1", expected_version=None)


# ------------------------------------------------------------------------- privacy


def test_no_event_on_the_bus_carries_personal_data(app: ShiftApplication) -> None:
    s = _supporter(app, name="Zebedee Private")
    app.record_supervision(s.id, kind="one_to_one", on=TODAY, by="coord-1",
                           notes="private supervision note", expected_version=None)
    shift = _extra(app, NOW + 24 * HOUR)
    app.shifts.assign(shift.id, s.id, None)
    app.shifts.unassign(shift.id, s.id, reason="private unassign reason",
                        expected_version=None)
    bag = app.bags.register(label="Bag 1", items=None)
    app.bags.hand_over(bag.id, from_supporter_id="coord-1", to_supporter_id=str(s.id),
                       items_checked={}, at=NOW, notes="private handover note",
                       expected_version=None)
    app.deactivate(s.id, reason="private deactivation reason", expected_version=None)
    text = " ".join(e.model_dump_json() for e in _events(app))
    for secret in ("Zebedee", "7700", "example.org", "private", "pd1:"):
        assert secret not in text, secret
