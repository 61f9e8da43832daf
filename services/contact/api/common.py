"""What every resource module of the contact API shares: the roles of its endpoints,
the string shapes of its request fields, the strict request base and the application
dependency. Shapes only: the rules are the domain's.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from services.contact.app import ContactApplication
from services.contact.domain.directory import DAY, HH_MM
from shared.web.auth import Allow, Role
from shared.web.deps import application

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
CallerRef = Annotated[str, StringConstraints(pattern=r"^C-[0-9A-HJKMNP-TV-Z]{8}$")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OpeningSlot(Strict):
    """One opening of a directory entry. The patterns are documented here and checked
    by the domain (``services.contact.domain.directory``), which names the bad slot."""

    day: Annotated[str, Field(json_schema_extra={"pattern": DAY.pattern})]
    opens: Annotated[str, Field(json_schema_extra={"pattern": HH_MM.pattern})]
    closes: Annotated[str, Field(json_schema_extra={"pattern": HH_MM.pattern})]
