"""The shift service's codes: roles, training courses, supervision kinds, weekdays,
coverage states, what the on-call bag holds, the default weekly template, and the
limits of plausible values. Coded fields are not personal: they may travel on the bus.
No I/O here.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

# The rota is kept in London wall-clock time; shifts are stored in UTC.
LONDON = ZoneInfo("Europe/London")


class Role(StrEnum):
    SUPPORTER = "supporter"
    COORDINATOR = "coordinator"


class Course(StrEnum):
    INDUCTION = "induction"
    MENTAL_HEALTH_FIRST_AID = "mental_health_first_aid"
    MINDFULNESS_IN_CRISIS = "mindfulness_in_crisis"
    SAFEGUARDING_ADULTS = "safeguarding_adults"
    PERSON_CENTRED_CRISIS = "person_centred_crisis"
    DRUGS_ALCOHOL = "drugs_alcohol"
    STRESS_MANAGEMENT = "stress_management"
    OTHER = "other"


class SupervisionKind(StrEnum):
    ONE_TO_ONE = "one_to_one"
    GROUP = "group"


class Weekday(StrEnum):
    MON = "mon"
    TUE = "tue"
    WED = "wed"
    THU = "thu"
    FRI = "fri"
    SAT = "sat"
    SUN = "sun"


class Coverage(StrEnum):
    COVERED = "covered"  # as many assigned as required
    SHORT = "short"  # some, not enough
    EMPTY = "empty"  # nobody


class BagItem(StrEnum):
    """What a handover checks: the bag's contents, and that the phone is charged."""

    PHONE = "phone"
    PHONE_CHARGED = "phone_charged"
    RESOURCE_BOOKLET = "resource_booklet"
    SERVICE_DIRECTORY = "service_directory"


def _values(enum: type[StrEnum]) -> frozenset[str]:
    return frozenset(e.value for e in enum)


ROLES = _values(Role)
COURSES = _values(Course)
SUPERVISION_KINDS = _values(SupervisionKind)
BAG_ITEMS = _values(BagItem)
WEEKDAYS: tuple[str, ...] = tuple(d.value for d in Weekday)  # Monday first, as ISO

# Eligible for on-call shifts only with current training in each of these. The
# application passes the setting; this is its default.
DEFAULT_REQUIRED_COURSES = frozenset({
    Course.INDUCTION.value, Course.MENTAL_HEALTH_FIRST_AID.value,
    Course.SAFEGUARDING_ADULTS.value,
})

# The weekly template: (weekday, starts, ends, required), London wall-clock time. A slot
# that ends at or before it starts runs past midnight into the next day.
DEFAULT_REQUIRED = 2
DEFAULT_TEMPLATE: tuple[tuple[str, str, str, int], ...] = (
    ("fri", "20:00", "02:00", DEFAULT_REQUIRED),
    ("sat", "08:00", "14:00", DEFAULT_REQUIRED),
    ("sat", "20:00", "02:00", DEFAULT_REQUIRED),
    ("sun", "08:00", "14:00", DEFAULT_REQUIRED),
    ("sun", "20:00", "02:00", DEFAULT_REQUIRED),
)
MAX_SLOTS = 50  # in one template
MAX_REQUIRED = 10  # supporters on one shift

# The defaults of the service's settings (the application passes the setting).
SUPERVISION_DUE_AFTER = timedelta(weeks=6)
UNCOVERED_GRACE = timedelta(minutes=15)
DEBRIEF_DUE_WITHIN = timedelta(hours=72)

# Plausible values. Nothing the service records happened before 2000; a shift is at
# most two years ahead and at most a day long, plus the hour the clocks go back (so a
# 24-hour wall-clock slot is still a shift on the autumn night); a check-in opens a
# little before the start; a handover or a debrief's request is not in the future
# beyond a small clock skew; a start date is at most two years ahead; a course's
# certificate lasts at most ten years.
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
EARLIEST_DATE = date(2000, 1, 1)
SHIFT_AHEAD = timedelta(days=731)
MAX_SHIFT_LENGTH = timedelta(hours=25)
CHECK_IN_OPENS = timedelta(minutes=30)  # before the start
DEFAULT_SKEW = timedelta(minutes=5)
DATE_AHEAD = timedelta(days=731)
MAX_VALIDITY_YEARS = 10
MAX_PERSON_ID = 100  # characters: a token's `sub`
MAX_LABEL = 100  # characters: a bag's or a slot's label
