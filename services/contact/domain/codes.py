"""The contact service's codes: what a call can be about, who called, risk levels,
escalations, referral sources. Coded fields are not personal: they travel on the bus
and feed the monitoring report. No I/O here.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from enum import StrEnum


class Channel(StrEnum):
    PHONE = "phone"
    TEXT = "text"


class Direction(StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"


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


class CallerIs(StrEnum):
    PERSON_IN_CRISIS = "person_in_crisis"
    CARER_FAMILY_FRIEND = "carer_family_friend"
    PROFESSIONAL = "professional"


class Gender(StrEnum):
    FEMALE = "female"
    MALE = "male"
    NON_BINARY = "non_binary"
    OTHER = "other"
    NOT_DISCLOSED = "not_disclosed"


class AgeBand(StrEnum):
    UNDER_18 = "under_18"
    A18_24 = "18_24"
    A25_31 = "25_31"
    A32_40 = "32_40"
    A41_50 = "41_50"
    A51_60 = "51_60"
    A61_PLUS = "61_plus"
    NOT_DISCLOSED = "not_disclosed"


class RiskLevel(StrEnum):
    NONE = "none"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    IMMEDIATE = "immediate"


class EscalationKind(StrEnum):
    EMERGENCY_SERVICES = "emergency_services"
    CRISIS_TEAM = "crisis_team"
    SAFEGUARDING_REFERRAL = "safeguarding_referral"
    GP = "gp"
    OTHER = "other"


class ReferralSource(StrEnum):
    SELF = "self"
    GP = "gp"
    CMHT = "cmht"
    A_AND_E = "a_and_e"
    CARER_FAMILY = "carer_family"
    CRISIS_TEAM = "crisis_team"
    VOLUNTARY_SECTOR = "voluntary_sector"
    OTHER = "other"


class FollowUpKind(StrEnum):
    CALL_BACK = "call_back"
    AGREED = "agreed"


def _values(enum: type[StrEnum]) -> frozenset[str]:
    return frozenset(e.value for e in enum)


CHANNELS = _values(Channel)
DIRECTIONS = _values(Direction)
ISSUES = _values(IssueCategory)
CALLER_IS = _values(CallerIs)
GENDERS = _values(Gender)
AGE_BANDS = _values(AgeBand)
RISK_LEVELS = _values(RiskLevel)
ESCALATION_KINDS = _values(EscalationKind)
REFERRAL_SOURCES = _values(ReferralSource)
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

DEFAULT_SKEW = timedelta(minutes=5)
# Plausible times (``values.record_time``, ``FollowUp``): nothing the line records
# happened before 2000; a contact, referral or text is at most a day ahead of the
# service's clock (a contact's start is also not in the future, beyond DEFAULT_SKEW); a
# follow-up is due at most two years ahead.
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
RECORD_AHEAD = timedelta(days=1)
FOLLOW_UP_AHEAD = timedelta(days=731)
CALL_BACK_WITHIN = timedelta(hours=1)
MAX_SUPPORTERS = 10  # named on one contact
# On shift (``rota.OnShiftWindow``): assigned to a shift from this long before its start
# to this long after its end (the defaults of SOLIDARITY_ON_SHIFT_BEFORE_MIN, _AFTER_MIN).
ON_SHIFT_BEFORE = timedelta(minutes=30)
ON_SHIFT_AFTER = timedelta(minutes=60)
