"""What every resource module of the outreach API shares: the roles of its endpoints,
the shapes of its request fields (each bounded by what the domain keeps), the
application dependency, and how a creating POST answers once per ``Idempotency-Key``.
Shapes only: the rules are the domain's.

Who may do what: supporters and the coordinator request meetings and carry them out
(assess, schedule, check in and out, record the outcome, cancel); approving is the
coordinator's, except a low-risk community meeting, which its requesting supporter may
approve (the domain decides, 403 otherwise); declining and resolving safety alerts are
the coordinator's; the auditor reads meetings and their trails.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request, Response
from pydantic import BaseModel, StringConstraints

from services.outreach.app import OutreachApplication
from shared.web import deps
from shared.web.auth import Allow, Principal, Role
from shared.web.deps import application

S, C, A = Role.SUPPORTER, Role.COORDINATOR, Role.AUDITOR
OUTREACH = Allow(S, C)  # request and carry out meetings
READ = Allow(S, C, A)  # meetings and their trails (each role its own view)
COORD = Allow(C)  # declining, the safety alerts

App = Annotated[OutreachApplication, Depends(application("outreach", OutreachApplication))]

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]
CALLER_REF = "C-[0-9A-HJKMNP-TV-Z]{8}"
CallerRef = Annotated[str, StringConstraints(pattern=f"^{CALLER_REF}$")]
# A supporter by the id the shift service gave them (their token's `sub`).
PersonId = Annotated[str, StringConstraints(min_length=1, max_length=100,
                                            pattern=r"^\S(.*\S)?$")]


def created_once(request: Request, principal: Principal, key: str | None, route: str,
                 body: BaseModel, **how: Any) -> Response:
    """``shared.web.deps.created_once`` for the outreach service."""
    return deps.created_once(request, "outreach", principal, key, route, body, **how)
