"""What every resource module of the contact API shares: the roles of its endpoints,
the string shapes of its request fields (each bounded by the column or field it ends
in), the strict request base, the application dependency, and how a creating POST
answers once per ``Idempotency-Key``. Shapes only: the rules are the domain's.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Path, Request, Response
from pydantic import BaseModel, Field, StringConstraints
from starlette.convertors import Convertor, register_url_convertor

from services.contact.app import ContactApplication
from services.contact.domain.directory import DAY, HH_MM
from shared.web import deps
from shared.web.auth import Allow, Principal, Role
from shared.web.deps import Strict, application

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


class OpeningSlot(Strict):
    """One opening of a directory entry. The patterns are documented here and checked
    by the domain (``services.contact.domain.directory``), which names the bad slot."""

    day: Annotated[str, Field(json_schema_extra={"pattern": DAY.pattern})]
    opens: Annotated[str, Field(json_schema_extra={"pattern": HH_MM.pattern})]
    closes: Annotated[str, Field(json_schema_extra={"pattern": HH_MM.pattern})]


def created_once(request: Request, principal: Principal, key: str | None, route: str,
                 body: BaseModel, **how: Any) -> Response:
    """``shared.web.deps.created_once`` for the contact service."""
    return deps.created_once(request, "contact", principal, key, route, body, **how)
