"""Values and checks the contact aggregate uses: a follow-up as agreed on a call, a
contact's times. (The supporters named on it are the rota's: ``rota.py``.) No I/O here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from services.contact.domain.codes import (
    EARLIEST,
    FOLLOW_UP_AHEAD,
    RECORD_AHEAD,
    FollowUpKind,
)
from shared.kernel import InvalidCommand, require_not_future, require_sealed, require_within

# An event's who-and-why, read back where a record shows who did it. An apply method
# that needs it takes ``meta: Meta = None`` before its ``*``: the library counts every
# keyword-only parameter as required when the method is called as a command, and the
# base ``Aggregate`` (shared.kernel) stamps the real value on the event as it is made.
Meta = dict[str, str] | None


def actor_of(meta: Meta) -> str:
    return (meta or {}).get("actor", "")


@dataclass(frozen=True)
class FollowUp:
    """What the supporter agreed to do next. A needed follow-up says when (``by``);
    ``what`` arrives sealed."""

    needed: bool = True
    by: datetime | None = None
    what: str | None = None

    def scheduled(self, now: datetime) -> dict[str, Any] | None:
        """What to record: due ``by`` a time from 2000 to two years ahead of ``now``."""
        if not self.needed:
            return None
        if self.by is None:
            raise InvalidCommand("follow_up.by",
                                 "a needed follow-up says when it must be done by (`by`)")
        due = require_within("follow_up.by", self.by, EARLIEST, now + FOLLOW_UP_AHEAD)
        return {"kind": FollowUpKind.AGREED.value, "due_by": due,
                "what": require_sealed("follow_up.what", self.what)}


def record_time(field: str, value: datetime, now: datetime) -> datetime:
    """When a contact, referral or text happened: from 2000-01-01 to a day ahead of
    ``now``, kept in UTC."""
    return require_within(field, value, EARLIEST, now + RECORD_AHEAD)


def contact_times(started_at: datetime, ended_at: datetime | None, now: datetime,
                  skew: timedelta) -> tuple[datetime, datetime | None]:
    started = record_time("started_at", started_at, now)
    require_not_future("started_at", started, now, skew)
    ended = None
    if ended_at is not None:
        ended = record_time("ended_at", ended_at, now)
        require_not_future("ended_at", ended, now, skew)
        if ended < started:
            raise InvalidCommand("ended_at", "is before started_at")
    return started, ended
