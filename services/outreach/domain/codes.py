"""The outreach service's codes: kinds of meeting, risk levels and factors, a
meeting's statuses, who may request one, and the defaults of its time limits. Coded
fields are not personal: they may travel on the bus. No I/O here.
"""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum


class Kind(StrEnum):
    COMMUNITY = "community"  # a cafe, a public place: needs a venue
    HOME = "home"  # the caller's home: needs an address


class RiskLevel(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class Factor(StrEnum):
    KNOWN_VIOLENCE = "known_violence"
    SUBSTANCE_USE = "substance_use"
    OTHERS_IN_HOME = "others_in_home"
    ANIMALS = "animals"
    ACCESS_EXITS = "access_exits"
    NO_MOBILE_SIGNAL = "no_mobile_signal"
    LONE_WORKER_CONCERN = "lone_worker_concern"
    OTHER = "other"


class Status(StrEnum):
    REQUESTED = "requested"
    RISK_ASSESSED = "risk_assessed"
    APPROVED = "approved"
    DECLINED = "declined"
    SCHEDULED = "scheduled"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


class Role(StrEnum):
    """Who requests or approves: a supporter or the coordinator."""

    SUPPORTER = "supporter"
    COORDINATOR = "coordinator"


def _values(enum: type[StrEnum]) -> frozenset[str]:
    return frozenset(e.value for e in enum)


KINDS = _values(Kind)
RISK_LEVELS = _values(RiskLevel)
FACTORS = _values(Factor)
STATUSES = _values(Status)
ROLES = _values(Role)

# Where each command may be given (any other status: 409, naming it and what is needed).
ASSESSABLE = frozenset({Status.REQUESTED.value, Status.RISK_ASSESSED.value})
DECLINABLE = ASSESSABLE
CHECK_IN_OPEN = frozenset({Status.SCHEDULED.value, Status.IN_PROGRESS.value})
CANCELLABLE = frozenset({Status.REQUESTED.value, Status.RISK_ASSESSED.value,
                         Status.APPROVED.value, Status.SCHEDULED.value,
                         Status.IN_PROGRESS.value})
FINISHED = frozenset({Status.DECLINED.value, Status.COMPLETED.value, Status.CANCELLED.value})

# The defaults of the service's settings (the application passes the setting):
# SOLIDARITY_OUTREACH_ASSESSMENT_MAX_AGE_DAYS and SOLIDARITY_OUTREACH_GRACE_MIN.
ASSESSMENT_MAX_AGE = timedelta(days=7)  # a home visit's latest risk assessment, at approval
GRACE = timedelta(minutes=30)  # after the expected end, before a safety check is overdue

# Plausible values.
ATTENDEES = 2  # two supporters always attend
MIN_MINUTES, MAX_MINUTES = 15, 480  # a meeting's expected length, when requested
MIN_CHECK_IN_MINUTES = 1  # the expected duration given at check-in (up to MAX_MINUTES)
PAST_SKEW = timedelta(minutes=5)  # a proposed time may be this far in the past
PROPOSE_AHEAD = timedelta(days=366)  # and at most this far ahead
MAX_REF = 100  # characters: a caller_ref or a person's id (a token's `sub`)
