"""Values and checks the contact aggregate uses: a follow-up as agreed on a call, a
contact's times, the supporters named on it. No I/O here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from services.contact.domain.codes import MAX_SUPPORTERS, FollowUpKind
from shared.kernel import InvalidCommand, require_aware, require_not_future, require_sealed

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

    def scheduled(self) -> dict[str, Any] | None:
        if not self.needed:
            return None
        if self.by is None:
            raise InvalidCommand("follow_up.by",
                                 "a needed follow-up says when it must be done by (`by`)")
        return {"kind": FollowUpKind.AGREED.value, "due_by": require_aware("follow_up.by", self.by),
                "what": require_sealed("follow_up.what", self.what)}


def contact_times(started_at: datetime, ended_at: datetime | None, now: datetime,
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




def supporters_of(ids: list[str] | None) -> list[str]:
    out: list[str] = []
    for s in ids or []:
        if not isinstance(s, str) or not s.strip() or len(s) > 100:
            raise InvalidCommand("supporter_ids", "each supporter id is a non-empty string")
        if s not in out:
            out.append(s)
    if len(out) > MAX_SUPPORTERS:
        raise InvalidCommand("supporter_ids", f"at most {MAX_SUPPORTERS} supporters")
    return out
