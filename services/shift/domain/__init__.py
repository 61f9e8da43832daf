"""The shift service's domain: supporters and their training, the weekly rota and its
shifts, the on-call bag, debriefs; one module per aggregate, and their codes. No I/O."""

from services.shift.domain.bag import Bag
from services.shift.domain.codes import (
    LONDON,
    BagItem,
    Course,
    Coverage,
    Role,
    SupervisionKind,
    Weekday,
)
from services.shift.domain.debrief import Debrief, debrief_id_for, is_overdue
from services.shift.domain.rota import (
    ROTA_TEMPLATE_ID,
    RotaTemplate,
    ShiftTimes,
    Slot,
    default_slots,
    london_to_utc,
    monday_of,
    shift_id_for,
    shifts_for_week,
)
from services.shift.domain.shift import Shift, coverage_of, overlaps
from services.shift.domain.supporter import Supporter, eligibility_of, required_courses

__all__ = [
    "LONDON",
    "ROTA_TEMPLATE_ID",
    "Bag",
    "BagItem",
    "Course",
    "Coverage",
    "Debrief",
    "Role",
    "RotaTemplate",
    "Shift",
    "ShiftTimes",
    "Slot",
    "SupervisionKind",
    "Supporter",
    "Weekday",
    "coverage_of",
    "debrief_id_for",
    "default_slots",
    "eligibility_of",
    "is_overdue",
    "london_to_utc",
    "monday_of",
    "overlaps",
    "required_courses",
    "shift_id_for",
    "shifts_for_week",
]
