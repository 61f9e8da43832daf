"""Contacts: calls and texts logged by peer supporters. No I/O here."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from eventsourcing.domain import Aggregate, event

from shared.domain import InvalidCommand, require_aware, require_codes, require_not_future


class Channel(StrEnum):
    PHONE = "phone"
    TEXT = "text"


class IssueCategory(StrEnum):
    SOCIAL_ISOLATION = "social_isolation"
    SERVICE_INFORMATION = "service_information"
    RELATIONSHIP_BREAKDOWN = "relationship_breakdown"
    BEREAVEMENT = "bereavement"
    SELF_HARM = "self_harm"
    OVERDOSE = "overdose"
    SUICIDAL_THOUGHTS = "suicidal_thoughts"
    PANIC_ATTACK = "panic_attack"
    SUPPORTING_SOMEONE_ELSE = "supporting_someone_else"
    BENEFITS_FINANCE = "benefits_finance"
    HOUSING = "housing"
    ABUSE = "abuse"
    SUBSTANCE_USE = "substance_use"
    PHYSICAL_HEALTH = "physical_health"
    OTHER = "other"


CHANNELS = frozenset(c.value for c in Channel)
ISSUES = frozenset(i.value for i in IssueCategory)
DEFAULT_SKEW = timedelta(minutes=5)


def _check_times(started_at: datetime, ended_at: datetime | None, now: datetime,
                 skew: timedelta) -> tuple[datetime, datetime | None]:
    started = require_aware("started_at", started_at)
    require_not_future("started_at", started, now, skew)
    ended = None
    if ended_at is not None:
        ended = require_aware("ended_at", ended_at)
        require_not_future("ended_at", ended, now, skew)
        if ended < started:
            raise InvalidCommand("ended_at", "is before started_at")
    return started, ended


class Contact(Aggregate):
    """One call or text conversation."""

    @classmethod
    def log(
        cls,
        *,
        channel: str,
        started_at: datetime,
        issues: list[str],
        ended_at: datetime | None = None,
        meta: dict[str, str],
        now: datetime | None = None,
        skew: timedelta = DEFAULT_SKEW,
    ) -> Contact:
        if channel not in CHANNELS:
            raise InvalidCommand("channel", f"unknown value {channel!r}; allowed: phone, text")
        started, ended = _check_times(started_at, ended_at, now or datetime.now(UTC), skew)
        codes = require_codes("issues", issues, ISSUES, at_least=1)
        return cls._create(
            cls.Logged,
            channel=channel,
            started_at=started,
            ended_at=ended,
            issues=codes,
            meta=meta,
        )

    class Logged(Aggregate.Created):
        channel: str
        started_at: datetime
        ended_at: datetime | None
        issues: list[str]
        meta: dict[str, str]

    def __init__(self, *, channel: str, started_at: datetime, ended_at: datetime | None,
                 issues: list[str], meta: dict[str, str]) -> None:
        self.channel = channel
        self.started_at = started_at
        self.ended_at = ended_at
        self.issues = list(issues)
        self.logged_by = meta.get("actor", "")
        self.corrections = 0

    def correct(
        self,
        *,
        reason: str,
        meta: dict[str, str],
        issues: list[str] | None = None,
        ended_at: datetime | None = None,
        now: datetime | None = None,
        skew: timedelta = DEFAULT_SKEW,
    ) -> None:
        """Correct what was logged (a paper sheet misread, a category missed). The
        original stays in the history: a correction is a new event, with its reason."""
        if not reason or not reason.strip():
            raise InvalidCommand("reason", "a correction needs a reason")
        if issues is None and ended_at is None:
            raise InvalidCommand("issues", "name at least one of issues, ended_at to correct")
        codes = require_codes("issues", issues, ISSUES, at_least=1) if issues is not None else None
        ended = None
        if ended_at is not None:
            _, ended = _check_times(self.started_at, ended_at, now or datetime.now(UTC), skew)
        self._corrected(issues=codes, ended_at=ended, reason=reason.strip(), meta=meta)

    class Corrected(Aggregate.Event):
        issues: list[str] | None
        ended_at: datetime | None
        reason: str
        meta: dict[str, str]

    @event(Corrected)
    def _corrected(self, *, issues: list[str] | None, ended_at: datetime | None, reason: str,
                   meta: dict[str, str]) -> None:
        if issues is not None:
            self.issues = list(issues)
        if ended_at is not None:
            self.ended_at = ended_at
        self.corrections += 1

    def view(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "channel": self.channel,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "issues": list(self.issues),
            "logged_by": self.logged_by,
            "corrections": self.corrections,
            "version": self.version,
        }
