"""The contact service's domain: one module per aggregate, and their codes. No I/O."""

from services.contact.domain.caller import Caller, NewCaller, caller_id_for, new_caller_ref
from services.contact.domain.codes import (
    AgeBand,
    CallerIs,
    Channel,
    Direction,
    EscalationKind,
    Gender,
    IssueCategory,
    ReferralSource,
    RiskLevel,
)
from services.contact.domain.contact import Contact
from services.contact.domain.directory import DirectoryEntry, is_open
from services.contact.domain.referral import (
    Referral,
    check_consent_to_contact,
    check_referrer_may_name_caller,
)
from services.contact.domain.rota import (
    NO_ROTA,
    OnShiftWindow,
    Rota,
    RotaShift,
    RotaSupporter,
    supporter_key,
)
from services.contact.domain.values import FollowUp

__all__ = [
    "NO_ROTA",
    "AgeBand",
    "Caller",
    "CallerIs",
    "Channel",
    "Contact",
    "Direction",
    "DirectoryEntry",
    "EscalationKind",
    "FollowUp",
    "Gender",
    "IssueCategory",
    "NewCaller",
    "OnShiftWindow",
    "Referral",
    "ReferralSource",
    "RiskLevel",
    "Rota",
    "RotaShift",
    "RotaSupporter",
    "caller_id_for",
    "check_consent_to_contact",
    "check_referrer_may_name_caller",
    "is_open",
    "new_caller_ref",
    "supporter_key",
]
