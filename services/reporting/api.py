"""Reporting's HTTP API: reports read from its read models."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from services.reporting.app import ReportingApplication
from shared.web.auth import Allow, Principal, Role
from shared.web.deps import application, roles_doc, runtime_of

REPORT = Allow(Role.COORDINATOR, Role.AUDITOR)
REBUILD = Allow(Role.COORDINATOR)


class MissedCalls(BaseModel):
    total: int
    by_shift: dict[str, int]
    by_hour: dict[str, int] = Field(description="London hour of day, 00 to 23.")


class MonthlyReport(BaseModel):
    month: str
    contacts: int
    by_channel: dict[str, int]
    by_issue: dict[str, int]
    signposting: dict[str, int] = Field(
        description="Answered contacts signposted to each directory service, by its name.")
    missed_calls: MissedCalls


class RebuildResult(BaseModel):
    applied: dict[str, int]


App = Annotated[ReportingApplication, Depends(application("reporting", ReportingApplication))]


def router() -> APIRouter:
    r = APIRouter(prefix="/reporting", tags=["reporting"])

    @r.get(
        "/monthly",
        response_model=MonthlyReport,
        summary="Monthly monitoring counts",
        description=roles_doc(
            REPORT,
            "Answered contacts in a month of London wall-clock time, by channel and by "
            "issue, and missed calls apart (by shift and by London hour), as consumed from "
            "the contact service's events.",
        ),
    )
    def monthly(
        app: App,
        _principal: Annotated[Principal, Depends(REPORT)],
        month: Annotated[str, Query(pattern=r"^\d{4}-(0[1-9]|1[0-2])$",
                                    description="YYYY-MM")],
    ) -> MonthlyReport:
        return MonthlyReport(**app.monthly(month))

    @r.post(
        "/rebuild",
        response_model=RebuildResult,
        summary="Drop and rebuild the read models by replaying the source logs",
        description=roles_doc(
            REBUILD,
            "Drops every read model and replays each source service's event log "
            "into it. The result is identical to what was built live.",
        ),
    )
    async def rebuild(
        request: Request,
        _principal: Annotated[Principal, Depends(REBUILD)],
    ) -> RebuildResult:
        applied = await runtime_of(request, "reporting").rebuild()
        return RebuildResult(applied=applied)

    return r
