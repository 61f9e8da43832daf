"""The outreach service's application: commands and queries, the only place that loads
and saves meetings. The rules are the domain's (``services.outreach.domain``); response
shapes are the API's presenters.

It seals the address, the venue and every free text with the caller's key (subject:
the ``caller_ref``, in outreach's own key store, destroyed when the contact service
erases the caller) before the domain sees them; it tells the domain what a command
needs to know beyond the meeting: whether a supporter may attend (the roster, fed by
the shift service's events) and whether they are booked on another meeting then (its
own read tables). Its clock work (``tick``) raises the safety check of a meeting in
progress once its deadline has passed, from the deadlines in its read tables, which
are rebuilt from the events: it survives a restart, and fires once.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from eventsourcing.persistence import IntegrityError
from sqlalchemy.engine import Engine

from services.outreach import read_model as views
from services.outreach import roster
from services.outreach.domain import Meeting
from shared.eventstore.application import Adapters, ServiceApplication
from shared.kernel import NotKnown, check_expected_version
from shared.logging import get_logger
from shared.privacy import KeyStore
from shared.web.auth import Principal, Role

VIEWS = "outreach-views"
log = get_logger("outreach")


class OutreachApplication(ServiceApplication):
    service = "outreach"
    name = "outreach"

    keys: KeyStore
    grace: timedelta
    assessment_max_age: timedelta

    def bind(self, adapters: Adapters) -> None:
        super().bind(adapters)
        assert adapters.keys, "keys"
        self.keys = adapters.keys
        self.grace = timedelta(minutes=adapters.settings.outreach_grace_min)
        self.assessment_max_age = timedelta(
            days=adapters.settings.outreach_assessment_max_age_days)

    def views(self) -> Engine:
        """The read tables, up to date with every acknowledged write."""
        return self.read_model(VIEWS)

    def _seal(self, meeting: Meeting | str, value: str | None) -> str | None:
        """Personal data, sealed with the caller's key."""
        caller_ref = meeting if isinstance(meeting, str) else meeting.caller_ref
        return self.keys.seal(caller_ref, value)

    # ----------------------------------------------------------------------- reading
    def get(self, meeting_id: UUID) -> Meeting:
        return self.load(meeting_id, Meeting, "meeting")

    @staticmethod
    def involves(principal: Principal, meeting: Meeting) -> bool:
        return principal.sub == meeting.requested_by or principal.sub in meeting.attendees

    def meeting_for(self, principal: Principal, meeting_id: UUID) -> Meeting:
        """The meeting, if ``principal`` may know of it: a supporter only the meetings
        they requested or attend (404 for the others), the coordinator and the auditor
        every one."""
        meeting = self.get(meeting_id)
        if principal.role == Role.SUPPORTER and not self.involves(principal, meeting):
            raise NotKnown("No such meeting.")
        return meeting

    @staticmethod
    def sees_personal(principal: Principal) -> bool:
        """The address and free text: the coordinator, and the supporters involved (a
        supporter only ever sees the meetings they are involved in); never the auditor."""
        return principal.role in (Role.COORDINATOR, Role.SUPPORTER)

    def list_meetings(self, principal: Principal, *, status: str | None,
                      start: datetime | None, end: datetime | None, limit: int,
                      cursor: str | None) -> tuple[list[dict[str, Any]], str | None]:
        involved = principal.sub if principal.role == Role.SUPPORTER else None
        rows, next_cursor = views.meeting_rows(self.views(), status=status, start=start,
                                               end=end, involved=involved, limit=limit,
                                               cursor=cursor)
        for row in rows:  # the table keeps the latest expected end; the grace is a setting
            row["deadline"] = row["deadline"] + self.grace if row["deadline"] else None
        return rows, next_cursor

    def alerts(self, *, open_only: bool, limit: int, cursor: str | None
               ) -> tuple[list[dict[str, Any]], str | None]:
        return views.alert_rows(self.views(), open_only=open_only, limit=limit,
                                cursor=cursor)

    # ---------------------------------------------------------------------- commands
    def _changing(self, principal: Principal, meeting_id: UUID,
                  expected_version: int | None) -> Meeting:
        meeting = self.meeting_for(principal, meeting_id)
        check_expected_version(meeting.version, expected_version)
        return meeting

    def request_meeting(self, principal: Principal, *, caller_ref: str,
                        contact_id: UUID | None, kind: str, proposed_at: datetime,
                        expected_minutes: int, venue: str | None, address: str | None,
                        reason: str) -> Meeting:
        meeting = Meeting.request(
            caller_ref=caller_ref, contact_id=contact_id, kind=kind,
            proposed_at=proposed_at, expected_minutes=expected_minutes,
            venue=self._seal(caller_ref, venue), address=self._seal(caller_ref, address),
            reason=self._seal(caller_ref, reason) or "", requested_by=principal.sub,
            requested_by_role=principal.role.value)
        self.save(meeting)
        return meeting

    def assess_risk(self, principal: Principal, meeting_id: UUID, *, level: str,
                    factors: list[str], mitigations: str | None,
                    expected_version: int | None) -> tuple[Meeting, int]:
        """A new assessment (the assessor is whoever asks); its number in the trail."""
        meeting = self._changing(principal, meeting_id, expected_version)
        n = meeting.assess_risk(level=level, factors=factors,
                                mitigations=self._seal(meeting, mitigations))
        self.save(meeting)
        return meeting, n

    def approve(self, principal: Principal, meeting_id: UUID, *, conditions: str | None,
                expected_version: int | None) -> Meeting:
        meeting = self._changing(principal, meeting_id, expected_version)
        meeting.approve(by=principal.sub, by_role=principal.role.value,
                        conditions=self._seal(meeting, conditions),
                        max_age=self.assessment_max_age)
        self.save(meeting)
        return meeting

    def decline(self, principal: Principal, meeting_id: UUID, *, reason: str,
                expected_version: int | None) -> Meeting:
        meeting = self._changing(principal, meeting_id, expected_version)
        meeting.decline(by_role=principal.role.value, reason=self._seal(meeting, reason) or "")
        self.save(meeting)
        return meeting

    def schedule(self, principal: Principal, meeting_id: UUID, *, supporter_ids: list[str],
                 expected_version: int | None) -> Meeting:
        """Two supporters: each active and eligible (the roster, from the shift
        service's events) and booked on no other meeting that overlaps this one."""
        meeting = self._changing(principal, meeting_id, expected_version)
        engine = self.views()

        def busy(ids: list[str], start: datetime, end: datetime) -> list[str]:
            return views.busy(engine, ids, start, end, other_than=str(meeting.id))

        meeting.schedule(supporter_ids=supporter_ids,
                         eligible=lambda sid: roster.why_not_attending(self.engine, sid),
                         busy=busy)
        self.save(meeting)
        return meeting

    def check_in(self, principal: Principal, meeting_id: UUID, *, expected_minutes: int,
                 expected_version: int | None) -> Meeting:
        """The attendee themself (the token's ``sub``), with how long they expect."""
        meeting = self._changing(principal, meeting_id, expected_version)
        meeting.check_in(supporter_id=principal.sub, expected_minutes=expected_minutes)
        self.save(meeting)
        return meeting

    def check_out(self, principal: Principal, meeting_id: UUID,
                  expected_version: int | None) -> Meeting:
        meeting = self._changing(principal, meeting_id, expected_version)
        meeting.check_out(supporter_id=principal.sub)
        self.save(meeting)
        return meeting

    def resolve_alert(self, principal: Principal, meeting_id: UUID, *, what_was_done: str,
                      expected_version: int | None) -> Meeting:
        meeting = self._changing(principal, meeting_id, expected_version)
        meeting.resolve_alert(by_role=principal.role.value,
                              what_was_done=self._seal(meeting, what_was_done) or "")
        self.save(meeting)
        return meeting

    def record_outcome(self, principal: Principal, meeting_id: UUID, *, what_happened: str,
                       follow_up: str | None, expected_version: int | None) -> Meeting:
        meeting = self._changing(principal, meeting_id, expected_version)
        meeting.record_outcome(what_happened=self._seal(meeting, what_happened) or "",
                               follow_up=self._seal(meeting, follow_up))
        self.save(meeting)
        return meeting

    def cancel(self, principal: Principal, meeting_id: UUID, *, reason: str,
               expected_version: int | None) -> Meeting:
        meeting = self._changing(principal, meeting_id, expected_version)
        meeting.cancel(reason=self._seal(meeting, reason) or "")
        self.save(meeting)
        return meeting

    # ---------------------------------------------------------------------- the clock
    def tick(self, now: datetime) -> None:
        """Work due by the clock, as the service: the overdue safety checks."""
        self.raise_overdue(now)

    def raise_overdue(self, now: datetime) -> int:
        """Each meeting in progress whose deadline (latest expected end plus the grace)
        has passed without both check-outs, or scheduled with nobody checked in by its
        planned end plus the grace: ``SafetyCheckOverdue``, once (the domain
        fires it once; the read tables then stop offering the meeting). A meeting changed
        meanwhile by a request is looked at again at the next tick. How many raised."""
        now = now.astimezone(UTC)
        raised = 0
        for meeting_id in views.overdue(self.views(), now - self.grace):
            meeting = self.get(UUID(meeting_id))
            if not meeting.raise_overdue(now=now, grace=self.grace):
                continue
            try:
                self.save(meeting)
                raised += 1
            except IntegrityError:
                log.info("clock_retry", service="outreach")
        if raised:
            log.info("safety_check_overdue", service="outreach", meetings=raised)
        return raised
