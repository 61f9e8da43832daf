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
from collections.abc import Callable
from datetime import date, datetime
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request, Response
from pydantic import BaseModel, BeforeValidator, ConfigDict, StringConstraints

from services.shift.app import ShiftApplication
from shared.web.auth import Allow, Principal, Role
from shared.web.deps import application, etag, runtime_of
from shared.web.idempotency import FirstResponse

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


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


T = TypeVar("T")


def created_once(request: Request, principal: Principal, key: str | None, route: str,
                 body: BaseModel, *, create: Callable[[], T], ident: Callable[[T], str],
                 load: Callable[[str], T],
                 show: Callable[[T], tuple[BaseModel, str, int]]) -> Response:
    """Answer a creating POST with 201, ``Location`` and ``ETag``, once per
    ``Idempotency-Key`` (``shared.web.idempotency``): ``create`` makes the resource,
    ``ident`` names it, ``show`` presents it (model, location, version); a retry gets
    the answer first given (``load`` is only for a retry whose first answer was not
    kept)."""
    made: list[T] = []

    def run() -> str:
        made.append(create())
        return ident(made[0])

    def present(resource_id: str) -> FirstResponse:
        model, location, version = show(made[0] if made else load(resource_id))
        return FirstResponse(201, model.model_dump_json().encode(),
                             {"Location": location, "ETag": etag(version)})

    first = runtime_of(request, "shift").idempotency.respond(
        key=key, principal=principal, route=route, body=body.model_dump_json().encode(),
        create=run, present=present)
    return first.response()
