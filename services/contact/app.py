"""The contact service's application: the only place that loads and saves contacts."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from services.contact.domain import Contact
from services.contact.handlers import public_event
from shared.application import Public, ServiceApplication, check_expected_version


class ContactApplication(ServiceApplication):
    service = "contact"
    name = "contact"

    def public_event(self, event: object) -> Public | None:
        return public_event(event)

    def log_contact(
        self,
        *,
        channel: str,
        started_at: datetime,
        issues: list[str],
        ended_at: datetime | None,
        meta: dict[str, str],
    ) -> Contact:
        contact: Contact = Contact.log(
            channel=channel,
            started_at=started_at,
            ended_at=ended_at,
            issues=issues,
            meta=meta,
            skew=self.clock_skew,
        )
        self.save(contact)
        return contact

    def get_contact(self, contact_id: UUID) -> Contact:
        contact: object = self.repository.get(contact_id)
        assert isinstance(contact, Contact)
        return contact

    def correct_contact(
        self,
        contact_id: UUID,
        *,
        reason: str,
        meta: dict[str, str],
        issues: list[str] | None,
        ended_at: datetime | None,
        expected_version: int | None = None,
    ) -> Contact:
        contact = self.get_contact(contact_id)
        check_expected_version(contact.version, expected_version)
        contact.correct(reason=reason, issues=issues, ended_at=ended_at, meta=meta,
                        skew=self.clock_skew)
        # A concurrent save of the same contact makes this raise IntegrityError: a 409.
        self.save(contact)
        return contact

