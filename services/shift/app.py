"""The shift service's application: commands and queries, the only place that loads and
saves its aggregates. The rules are the domain's (``services.shift.domain``); response
shapes are the API's presenters. Shifts and assignments are ``shifts.py``, the on-call
bags ``bags.py``, debriefs ``debriefs.py``; supporters, training, supervision and the
weekly template are here, with the work due by the clock (``tick``).

It seals personal data before the domain sees it (a supporter's name, phone, email,
supervision notes and the reasons given about them, with that supporter's key), asks
the domain whether a supporter is eligible (the required courses are a setting) and
records it when that changes, and reads its own read tables (``read_model.py``, kept by
the platform's projector) for lists and for what a command needs of other aggregates.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID

from eventsourcing.persistence import IntegrityError
from sqlalchemy.engine import Engine

from services.shift import read_model as views
from services.shift.bags import Bags
from services.shift.debriefs import Debriefs
from services.shift.domain import (
    LONDON,
    ROTA_TEMPLATE_ID,
    RotaTemplate,
    Shift,
    Slot,
    Supporter,
    default_slots,
    required_courses,
    shifts_for_week,
)
from services.shift.domain.values import london_today
from services.shift.shifts import Shifts
from shared.eventstore.application import Adapters, ServiceApplication
from shared.kernel import InvalidCommand, NotKnown, check_expected_version
from shared.logging import get_logger
from shared.privacy import KeyStore, normalise_uk_phone

VIEWS = "shift-views"
log = get_logger("shift")


class ShiftApplication(ServiceApplication):
    service = "shift"
    name = "shift"

    keys: KeyStore
    required: frozenset[str]
    supervision_due_after: timedelta
    uncovered_grace: timedelta
    debrief_due_within: timedelta
    shifts: Shifts
    bags: Bags
    debriefs: Debriefs

    def bind(self, adapters: Adapters) -> None:
        super().bind(adapters)
        assert adapters.keys, "keys"
        self.keys = adapters.keys
        s = adapters.settings
        self.required = required_courses(s.required_courses)  # an unknown course: no start
        self.supervision_due_after = timedelta(days=s.supervision_overdue_days)
        self.uncovered_grace = timedelta(minutes=s.shift_uncovered_grace_min)
        self.debrief_due_within = timedelta(hours=s.debrief_overdue_hours)
        self.shifts = Shifts(self)
        self.bags = Bags(self)
        self.debriefs = Debriefs(self)
        self._eligibility_checked_on: date | None = None

    def views(self) -> Engine:
        """The read tables, up to date with every acknowledged write."""
        return self.read_model(VIEWS)

    def seal(self, subject: UUID | str, value: str | None) -> str | None:
        return self.keys.seal(str(subject), value)

    # ---------------------------------------------------------------- supporters
    def register_supporter(self, *, name: str, phone: str | None, email: str | None,
                           role: str, start_date: date) -> Supporter:
        """A new supporter with a new id (the ``sub`` of their tokens); their details
        are sealed with their own key."""
        supporter_id = uuid.uuid4()
        number = normalise_uk_phone(phone) if phone is not None else None
        try:
            supporter = Supporter.register(
                id=supporter_id, name=self.seal(supporter_id, name) or "",
                phone=self.seal(supporter_id, number), email=self.seal(supporter_id, email),
                role=role, start_date=start_date, required=self.required)
            self.save(supporter)
        except BaseException:
            self.keys.forget_unused(str(supporter_id))
            raise
        return supporter

    def get_supporter(self, supporter_id: UUID) -> Supporter:
        return self.load(supporter_id, Supporter, "supporter")

    def named_supporter(self, field: str, supporter_id: UUID | str) -> Supporter:
        """A supporter named in a request body: unknown is bad input (422), not a 404."""
        try:
            return self.get_supporter(UUID(str(supporter_id)))
        except (NotKnown, ValueError):
            raise InvalidCommand(field, "no supporter has this id") from None

    def list_supporters(self, active: bool | None, limit: int, cursor: str | None
                        ) -> tuple[list[Supporter], str | None]:
        ids, next_cursor = views.supporter_ids(self.views(), active, limit, cursor)
        return [self.get_supporter(UUID(i)) for i in ids], next_cursor

    def eligibility(self, supporter: Supporter, on: date | None = None
                    ) -> tuple[bool, list[str]]:
        """Eligible for on-call shifts on a date (default today, London): the domain's
        rule, on the required courses of the settings."""
        return supporter.eligibility(self.required, on or london_today())

    def supervision_overdue(self, supporter: Supporter, on: date | None = None) -> bool:
        return supporter.supervision_overdue(on or london_today(), self.supervision_due_after)

    def _changing(self, supporter_id: UUID, expected_version: int | None) -> Supporter:
        supporter = self.get_supporter(supporter_id)
        check_expected_version(supporter.version, expected_version)
        return supporter

    def record_training(self, supporter_id: UUID, *, course: str, completed_on: date,
                        expires_on: date | None, expected_version: int | None) -> Supporter:
        """A course completed; their eligibility is recorded with it when it changes."""
        supporter = self._changing(supporter_id, expected_version)
        supporter.record_training(course=course, completed_on=completed_on,
                                  expires_on=expires_on)
        supporter.refresh_eligibility(self.required, london_today())
        self.save(supporter)
        return supporter

    def record_supervision(self, supporter_id: UUID, *, kind: str, on: date, by: str,
                           notes: str | None, expected_version: int | None) -> Supporter:
        supporter = self._changing(supporter_id, expected_version)
        supporter.record_supervision(kind=kind, on=on, by=by,
                                     notes=self.seal(supporter.id, notes))
        self.save(supporter)
        return supporter

    def deactivate(self, supporter_id: UUID, *, reason: str,
                   expected_version: int | None) -> tuple[Supporter, list[Shift]]:
        """Deactivate, and take them off every shift that has not started yet, with the
        same reason, in one transaction: all of it is stored, or none. Their history (and
        the shifts already started) is kept."""
        supporter = self._changing(supporter_id, expected_version)
        sealed = self.seal(supporter.id, reason) or ""
        supporter.deactivate(reason=sealed)
        future = views.future_shifts_of(self.views(), str(supporter.id), datetime.now(UTC))
        taken_off: list[Shift] = []
        for shift_id in future:
            shift = self.shifts.get(UUID(shift_id))
            if str(supporter.id) in shift.assignments:
                shift.unassign(str(supporter.id), reason=sealed)
                taken_off.append(shift)
        self.save(supporter, *taken_off)
        return supporter, taken_off

    # ----------------------------------------------------------------- the rota
    def stored_template(self) -> RotaTemplate | None:
        try:
            return self.load(ROTA_TEMPLATE_ID, RotaTemplate, "rota template")
        except NotKnown:
            return None

    def template(self) -> tuple[list[Slot], int]:
        """The weekly slots and their version (0: the default, never changed)."""
        stored = self.stored_template()
        return (stored.slots, stored.version) if stored else (default_slots(), 0)

    def replace_template(self, slots: Sequence[Mapping[str, Any]],
                         expected_version: int | None) -> tuple[list[Slot], int]:
        """Replace every slot; the weeks already published keep their shifts."""
        stored = self.stored_template()
        check_expected_version(stored.version if stored else 0, expected_version)
        if stored is None:
            stored = RotaTemplate.create(slots)
        else:
            stored.replace(slots)
        self.save(stored)  # two first changes at once: one is a 409
        return stored.slots, stored.version

    def publish_week(self, iso_week: str) -> tuple[int, list[Shift]]:
        """The week's shifts from the template, created once: publishing it again creates
        nothing (each shift's id is its week and slot). How many were created, and every
        shift of the week."""
        try:
            times = shifts_for_week(self.template()[0], iso_week)
        except InvalidCommand as e:
            raise e.at("path") from None
        for attempt in (1, 2):
            new = []
            for t in times:
                if t.id not in self.repository:
                    try:
                        new.append(Shift.publish(id=t.id, slot_label=t.slot,
                                                 starts_at=t.starts_at, ends_at=t.ends_at,
                                                 required=t.required))
                    except InvalidCommand as e:  # a week too far ahead (or too early)
                        raise InvalidCommand("iso_week", f"its shifts {e.message}",
                                             "path") from None
            try:
                self.save(*new)
                break
            except IntegrityError:  # published at the same moment by another request
                if attempt == 2:
                    raise
        return len(new), [self.shifts.get(t.id) for t in times]

    # ----------------------------------------------------------------- the clock
    def tick(self, now: datetime) -> None:
        """Work due by the clock, as the service: eligibility once a day (a certificate
        expires, the required set changed), then the shifts that started (uncovered, the
        bag not handed over)."""
        self.refresh_eligibility(now)
        self.shifts.clock(now)

    def refresh_eligibility(self, now: datetime) -> int:
        """Record every active supporter's eligibility that changed, once per London day
        (and at the first tick after a start); a supporter changed meanwhile by another
        request is tried again at the next tick. How many changed."""
        today = now.astimezone(LONDON).date()
        if self._eligibility_checked_on == today:
            return 0
        changed, done = 0, True
        for sid in views.active_supporter_ids(self.views()):
            supporter = self.get_supporter(UUID(sid))
            if supporter.refresh_eligibility(self.required, today):
                try:
                    self.save(supporter)
                    changed += 1
                except IntegrityError:
                    done = False
        if done:
            self._eligibility_checked_on = today
        if changed:
            log.info("eligibility_changed", service=self.service, supporters=changed)
        return changed
