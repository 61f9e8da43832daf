"""What every resource module of the shift API shares: the roles of its endpoints, the
shapes of its request fields (each bounded by the column or field it ends in), the
strict request base, calendar dates, the application dependency, and how a creating
POST answers once per ``Idempotency-Key``. Shapes only: the rules are the domain's.

Who may do what: the coordinator runs the rota (supporters, training, the template,
publishing, assignments, bags, debriefs); supporters read the rota and the bags, check
in and record handovers; a partner may read who is on call (ids only), for the phone
routing of other systems.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any

from fastapi import Depends, Request, Response
from pydantic import BaseModel, BeforeValidator, StringConstraints

from services.shift.app import ShiftApplication
from shared.web import deps
from shared.web.auth import Allow, Principal, Role
from shared.web.deps import application

S, C, P = Role.SUPPORTER, Role.COORDINATOR, Role.PARTNER
COORD = Allow(C)
ROTA = Allow(S, C)  # the rota and the bags: read by supporters; check-in, handovers
ON_CALL = Allow(S, C, P)  # who is on call now

App = Annotated[ShiftApplication, Depends(application("shift", ShiftApplication))]

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]
Short = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Label = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
Phone = Annotated[str, StringConstraints(strip_whitespace=True, min_length=5, max_length=30)]
Email = Annotated[str, StringConstraints(strip_whitespace=True, max_length=254,
                                         pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]
# A person known to the system by their token's `sub` (a supporter's is their id): no
# spaces around it, at most 100 characters, as the domain keeps it.
PersonId = Annotated[str, StringConstraints(min_length=1, max_length=100,
                                            pattern=r"^\S(.*\S)?$")]
HHMM = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"
ISO_WEEK = r"^[0-9]{4}-W[0-9]{2}$"

_ISO_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")


def _iso_date(value: Any) -> Any:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value  # built in Python, not parsed from a request
    if not isinstance(value, str) or not _ISO_DATE.match(value):
        raise ValueError("an ISO 8601 calendar date, e.g. 2026-11-29")
    return value


# A calendar date as the API documents it (`format: date`): a `YYYY-MM-DD` string, never
# a number or a date-time. Which dates a record may hold is the domain's rule.
Day = Annotated[date, BeforeValidator(_iso_date)]


def created_once(request: Request, principal: Principal, key: str | None, route: str,
                 body: BaseModel, **how: Any) -> Response:
    """``shared.web.deps.created_once`` for the shift service."""
    return deps.created_once(request, "shift", principal, key, route, body, **how)
