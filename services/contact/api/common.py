"""What every resource module of the contact API shares: the roles of its endpoints,
the string shapes of its request fields (each bounded by the column or field it ends
in), the strict request base, the application dependency, and how a creating POST
answers once per ``Idempotency-Key``. Shapes only: the rules are the domain's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, TypeVar

from fastapi import Depends, Path, Request, Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from starlette.convertors import Convertor, register_url_convertor

from services.contact.app import ContactApplication
from services.contact.domain.directory import DAY, HH_MM
from shared.web.auth import Allow, Principal, Role
from shared.web.deps import application, etag, runtime_of
from shared.web.idempotency import FirstResponse

S, C, A, P = Role.SUPPORTER, Role.COORDINATOR, Role.AUDITOR, Role.PARTNER
ON_CALL = Allow(S, C)
READ = Allow(S, C, A)
COORD = Allow(C)
REFER = Allow(C, P)

App = Annotated[ContactApplication, Depends(application("contact", ContactApplication))]

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]
LongText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1,
                                            max_length=5000)]
Short = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Phone = Annotated[str, StringConstraints(strip_whitespace=True, min_length=5, max_length=30)]
CALLER_REF = "C-[0-9A-HJKMNP-TV-Z]{8}"
CallerRef = Annotated[str, StringConstraints(pattern=f"^{CALLER_REF}$")]


class CallerRefConvertor(Convertor[str]):
    """Routes a path segment to ``{caller_ref:caller_ref}`` only when it has the shape of
    a caller reference, so ``/callers/lookup`` is never mistaken for a caller (a PATCH
    there is a 405 listing GET, not a 422 about a bad reference)."""

    regex = CALLER_REF

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("caller_ref", CallerRefConvertor())

# The n-th risk assessment, escalation or follow-up of a contact: at most what the read
# tables' integer column holds.
Nth = Annotated[int, Path(ge=1, le=2_147_483_647)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OpeningSlot(Strict):
    """One opening of a directory entry. The patterns are documented here and checked
    by the domain (``services.contact.domain.directory``), which names the bad slot."""

    day: Annotated[str, Field(json_schema_extra={"pattern": DAY.pattern})]
    opens: Annotated[str, Field(json_schema_extra={"pattern": HH_MM.pattern})]
    closes: Annotated[str, Field(json_schema_extra={"pattern": HH_MM.pattern})]


T = TypeVar("T")


def created_once(request: Request, principal: Principal, key: str | None, route: str,
                 body: BaseModel, *, create: Callable[[], T], ident: Callable[[T], str],
                 load: Callable[[str], T],
                 show: Callable[[T], tuple[BaseModel, str, int]]) -> Response:
    """Answer a creating POST with 201, ``Location`` and ``ETag``, once per
    ``Idempotency-Key`` (``shared.web.idempotency``): ``create`` makes the resource,
    ``ident`` names it, ``show`` presents it (model, location, version); a retry gets
    the answer first given, whatever has happened to the resource since (``load`` is
    only for a retry whose first answer was not kept)."""
    made: list[T] = []

    def run() -> str:
        made.append(create())
        return ident(made[0])

    def present(resource_id: str) -> FirstResponse:
        model, location, version = show(made[0] if made else load(resource_id))
        return FirstResponse(201, model.model_dump_json().encode(),
                             {"Location": location, "ETag": etag(version)})

    first = runtime_of(request, "contact").idempotency.respond(
        key=key, principal=principal, route=route, body=body.model_dump_json().encode(),
        create=run, present=present)
    return first.response()
