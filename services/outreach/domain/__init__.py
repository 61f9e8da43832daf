"""The outreach service's domain: a meeting with a caller (in the community or at their
home), its risk assessments, approval, attendees, safety check-ins and outcome; and
its codes. No I/O."""

from services.outreach.domain.codes import (
    ASSESSMENT_MAX_AGE,
    FACTORS,
    GRACE,
    KINDS,
    RISK_LEVELS,
    STATUSES,
    Factor,
    Kind,
    RiskLevel,
    Role,
    Status,
)
from services.outreach.domain.meeting import SEALED_FIELDS, Meeting
from services.outreach.domain.safety import (
    CheckedIn,
    CheckedOut,
    SafetyAlertResolved,
    SafetyCheckOverdue,
)

__all__ = [
    "ASSESSMENT_MAX_AGE",
    "FACTORS",
    "GRACE",
    "KINDS",
    "RISK_LEVELS",
    "SEALED_FIELDS",
    "STATUSES",
    "CheckedIn",
    "CheckedOut",
    "Factor",
    "Kind",
    "Meeting",
    "RiskLevel",
    "Role",
    "SafetyAlertResolved",
    "SafetyCheckOverdue",
    "Status",
]
