"""Correcting a logged contact: its issues, end time, what it was about (``summary``),
who rang (``caller_is``) and where the caller was signposted. The command lives here;
its event (``Corrected``) stays on ``Contact``, whose stored topic names it. A text
conversation, opened with none of these by the SMS webhook, gets them this way. No I/O.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from services.contact.domain.codes import CALLER_IS, DEFAULT_SKEW, ISSUES
from services.contact.domain.values import contact_times
from shared.kernel import InvalidCommand, one_of, require_codes, require_sealed

CORRECTABLE = ("issues", "ended_at", "summary", "caller_is", "signposted_to")


class CorrectionCommands:
    """Mixed into ``Contact``: the correction of what was logged."""

    if TYPE_CHECKING:
        started_at: datetime

        def _corrected(self, *, issues: list[str] | None, ended_at: datetime | None,
                       reason: str, summary: str | None = None,
                       caller_is: str | None = None,
                       signposted_to: list[str] | None = None) -> None: ...

    def correct(self, *, reason: str, issues: list[str] | None = None,
                ended_at: datetime | None = None, summary: str | None = None,
                caller_is: str | None = None,
                signposted_to: Sequence[str | uuid.UUID] | None = None,
                now: datetime | None = None, skew: timedelta = DEFAULT_SKEW) -> None:
        """Correct what was logged; ``None`` leaves a field as it is, and
        ``signposted_to`` (directory entry ids, checked by the application) replaces the
        list. The original stays in the history."""
        if not reason or not reason.strip():
            raise InvalidCommand("reason", "a correction needs a reason")
        if all(v is None for v in (issues, ended_at, summary, caller_is, signposted_to)):
            raise InvalidCommand("issues", "name at least one of "
                                           f"{', '.join(CORRECTABLE)} to correct")
        codes = require_codes("issues", issues, ISSUES, at_least=1) if issues is not None else None
        ended = None
        if ended_at is not None:
            _, ended = contact_times(self.started_at, ended_at, now or datetime.now(UTC), skew)
        self._corrected(
            issues=codes, ended_at=ended, reason=require_sealed("reason", reason) or "",
            summary=require_sealed("summary", summary),
            caller_is=one_of("caller_is", caller_is, CALLER_IS, optional=True),
            signposted_to=(list(dict.fromkeys(str(s) for s in signposted_to))
                           if signposted_to is not None else None),
        )
