"""Reporting's HTTP API: the monitoring report, monthly and for a year, as JSON or CSV;
partners see it with small numbers suppressed (``report.for_partner``)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from services.reporting import report, report_html
from services.reporting.app import ReportingApplication
from shared.web.auth import Allow, Principal, Role
from shared.web.deps import application, roles_doc, runtime_of

REPORT = Allow(Role.COORDINATOR, Role.AUDITOR, Role.PARTNER)
REBUILD = Allow(Role.COORDINATOR)

Count = Annotated[int | Literal["<5"] | None, Field(
    description='A count; for a partner, "<5" for 1 to 4, and null where it is withheld '
                "so that no suppressed count can be found by subtraction.")]
Percent = Annotated[float | None, Field(
    description="Of the breakdown's base, to one decimal (halves up); null when the base "
                "is 0, outside the base (not_disclosed), or withheld for a partner.")]


class ReportCell(BaseModel):
    count: Count
    percent: Percent


Breakdown = Annotated[dict[str, ReportCell], Field(description="code -> {count, percent}")]


class ReportPeriod(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    from_: date = Field(alias="from", description="First London date of the period.")
    to: date = Field(description="Last London date of the period (inclusive).")


class ReportContacts(BaseModel):
    total: Count
    by_channel: Breakdown
    by_direction: Breakdown
    by_caller_is: Breakdown
    by_issue: Breakdown
    by_risk_level: Breakdown
    by_shift_slot: Breakdown
    outside_shifts: Count
    missed_calls: Count
    signposting: dict[str, Count] = Field(
        description="Answered contacts signposted to each directory service, by its name.")


class ReportCallers(BaseModel):
    unique: Count
    new: Count
    repeat: Count
    by_gender: Breakdown
    by_age_band: Breakdown


class ReportReferrals(BaseModel):
    total: Count
    by_source: Breakdown
    accepted: Count
    declined: Count


class ReportEscalations(BaseModel):
    total: Count
    by_kind: Breakdown


class ReportMeetings(BaseModel):
    requested: Count
    approved: Count
    declined: Count
    completed: Count
    cancelled: Count
    by_kind: Breakdown
    safety_alerts: Count


class ReportShifts(BaseModel):
    published: Count
    fully_covered: Count
    short: Count
    empty: Count
    coverage_percent: Percent


class ReportDebriefs(BaseModel):
    opened: Count
    completed: Count
    overdue: Count


class ReportFollowUps(BaseModel):
    due: Count
    completed: Count
    overdue: Count


class MonitoringReport(BaseModel):
    period: ReportPeriod
    contacts: ReportContacts
    callers: ReportCallers
    referrals: ReportReferrals
    escalations: ReportEscalations
    meetings: ReportMeetings
    shifts: ReportShifts
    debriefs: ReportDebriefs
    follow_ups: ReportFollowUps


class MonthContacts(BaseModel):
    total: Count


class MonthCallers(BaseModel):
    unique: Count


class MonthReferrals(BaseModel):
    total: Count


class MonthFigures(BaseModel):
    month: str = Field(description="YYYY-MM")
    contacts: MonthContacts
    callers: MonthCallers
    referrals: MonthReferrals


class YearReport(MonitoringReport):
    months: list[MonthFigures]


class RebuildResult(BaseModel):
    applied: dict[str, int]


App = Annotated[ReportingApplication, Depends(application("reporting", ReportingApplication))]
Format = Annotated[Literal["json", "csv", "html"], Query(
    description="json (the default); csv: one row per (section, breakdown, code, "
                "count, percent); html: a printable page of the same figures with a bar "
                "chart per breakdown (inline SVG, no scripts).")]
CSV_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/csv": {"schema": {"type": "string"}},
                      "text/html": {"schema": {"type": "string"}}}}}
MONTH = r"^\d{4}-(0[1-9]|1[0-2])$"


def _answer(body: dict[str, Any], principal: Principal, fmt: str, name: str,
            title: str) -> Any:
    if principal.role == Role.PARTNER:
        body = report.for_partner(body)
    if fmt == "csv":
        return Response(report.to_csv(body), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'})
    if fmt == "html":
        return Response(report_html.to_html(body, title),
                        media_type="text/html; charset=utf-8")
    return body


DEFINITIONS = (
    " Periods are London dates (a call at 00:30 on 1 April BST is April's). Each by_* "
    "maps a code to its count and its percentage of the breakdown's base; gender and "
    "age band are of the callers who disclosed them. A partner sees counts from 1 to 4 "
    'as "<5", and the percentages and counts that would give them away withheld.'
)


def router() -> APIRouter:
    r = APIRouter(prefix="/reporting", tags=["reporting"])

    @r.get(
        "/monthly",
        response_model=MonitoringReport,
        responses=CSV_RESPONSE,
        summary="The monthly monitoring report",
        description=roles_doc(REPORT, "The monitoring report of a month." + DEFINITIONS),
    )
    def monthly(
        app: App,
        principal: Annotated[Principal, Depends(REPORT)],
        month: Annotated[str, Query(pattern=MONTH, description="YYYY-MM")],
        format: Format = "json",
    ) -> Any:
        return _answer(app.monthly(month), principal, format, f"solidarity-{month}",
                       f"Solidarity monitoring report, {report_html.month_name(month)}")

    @r.get(
        "/year",
        response_model=YearReport,
        responses=CSV_RESPONSE,
        summary="The monitoring report of twelve months",
        description=roles_doc(
            REPORT,
            "The monitoring report of twelve months from start (start=YYYY-04: a "
            "financial year), counted over the whole year (a caller of two months is one "
            "caller), with each month's contacts.total, callers.unique and "
            "referrals.total." + DEFINITIONS),
    )
    def year(
        app: App,
        principal: Annotated[Principal, Depends(REPORT)],
        start: Annotated[str, Query(pattern=MONTH, description="YYYY-MM, the first month")],
        format: Format = "json",
    ) -> Any:
        return _answer(app.year(start), principal, format, f"solidarity-year-from-{start}",
                       "Solidarity monitoring report, year from "
                       f"{report_html.month_name(start)}")

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
