"""Response models of the contact API and the functions that build them from aggregates
and read-table rows.

Personal data is stored sealed; a presenter opens it (``KeyStore.reveal``: the
plaintext, or ``[erased]`` after erasure) only for whoever may see it. Who that is
stays the application's answer (``ContactApplication.sees_personal``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, Field

from services.contact import read_model
from services.contact.app import ContactApplication
from services.contact.domain import (
    AgeBand,
    Caller,
    CallerIs,
    Channel,
    Contact,
    Direction,
    EscalationKind,
    Gender,
    IssueCategory,
    RiskLevel,
)
from shared.privacy import KeyStore
from shared.web.auth import Principal, Role

# ------------------------------------------------------------------------ callers


class CallerOut(BaseModel):
    caller_ref: str
    alias: str | None
    has_phone: bool
    gender: Gender | None
    age_band: AgeBand | None
    consent_to_keep_history: bool
    consent_to_text: bool
    erased: bool
    version: int


class ErasureOut(BaseModel):
    caller_ref: str
    erased: bool


def caller_out(keys: KeyStore, caller: Caller) -> CallerOut:
    return CallerOut.model_validate({
        "caller_ref": caller.caller_ref,
        "alias": keys.reveal(caller.alias),
        "has_phone": caller.has_phone,
        "gender": caller.gender,
        "age_band": caller.age_band,
        "consent_to_keep_history": caller.consent_to_keep_history,
        "consent_to_text": caller.consent_to_text,
        "erased": caller.erased,
        "version": caller.version,
    })


# ----------------------------------------------------------------------- contacts


class RiskOut(BaseModel):
    id: str = Field(description="<contact_id>/<n>: the assessment's place in the trail.")
    contact_id: UUID
    n: int
    level: RiskLevel
    factors: str | None
    protective_factors: str | None
    decision: str | None
    reasoning: str | None
    supersedes: int | None
    assessed_by: str
    assessed_at: datetime


class EscalationOut(BaseModel):
    id: str = Field(description="<contact_id>/<n>.")
    contact_id: UUID
    n: int
    kind: EscalationKind
    reason: str | None
    reference: str | None
    escalated_by: str
    escalated_at: datetime


class FollowUpOut(BaseModel):
    n: int
    kind: str
    due_by: datetime
    what: str | None
    completed_at: datetime | None
    outcome: str | None
    answered_by: UUID | None = Field(
        default=None, description="A call-back: the contact that rang the missed call back "
        "and got through (logged with `responds_to`), which completed it; else null.")


class ContactOut(BaseModel):
    id: UUID
    channel: Channel
    direction: Direction
    answered: bool
    responds_to: UUID | None = Field(default=None, description="The missed call this "
                                     "contact answers (a call-back), if any.")
    caller_ref: str | None
    shift_id: UUID | None
    supporter_ids: list[str]
    started_at: datetime
    ended_at: datetime | None
    issues: list[IssueCategory]
    caller_is: CallerIs | None
    signposted_to: list[str]
    summary: str | None
    risk_level: RiskLevel | None
    risk_trail: list[dict[str, Any]]
    escalations: list[dict[str, Any]]
    follow_ups: list[FollowUpOut]
    distressing: bool
    closed: bool
    logged_by: str
    corrections: int
    version: int


class ContactListItem(BaseModel):
    id: UUID
    caller_ref: str | None
    channel: Channel
    direction: Direction
    answered: bool
    started_at: datetime
    ended_at: datetime | None
    shift_id: str | None
    supporter_ids: list[str]
    issues: list[IssueCategory]
    caller_is: CallerIs | None
    signposted_to: list[str]
    risk_level: RiskLevel | None
    closed: bool
    summary: str | None


class ContactPage(BaseModel):
    items: list[ContactListItem]
    next_cursor: str | None


class History(BaseModel):
    caller_ref: str
    items: list[ContactListItem]


class FollowUpDueOut(BaseModel):
    contact_id: UUID | None = Field(description="The contact's; null for a referral's.")
    referral_id: UUID | None = Field(default=None, description="An accepted referral's "
                                     "first contact (`kind` `first_contact`); else null.")
    n: int
    kind: str
    due_by: datetime
    caller_ref: str | None


class FollowUpPage(BaseModel):
    items: list[FollowUpDueOut]
    next_cursor: str | None = None


Reveal = Callable[[str | None], str | None]
RISK_TEXT = ("factors", "protective_factors", "decision", "reasoning")
ESCALATION_TEXT = ("reason", "reference")
FOLLOW_UP_TEXT = ("what", "outcome")


def _opened(item: dict[str, Any], sealed: Iterable[str], reveal: Reveal) -> dict[str, Any]:
    return {**item, **{k: reveal(item[k]) for k in sealed}}


def _reveal(keys: KeyStore, include_personal: bool) -> Reveal:
    return keys.reveal if include_personal else (lambda _t: None)


def contact_out(keys: KeyStore, contact: Contact, *, include_personal: bool,
                include_follow_ups: bool | None = None) -> ContactOut:
    """The whole contact; its free text only when ``include_personal``, its follow-ups'
    (``what``, ``outcome``) when ``include_follow_ups`` (default: the same)."""
    reveal = _reveal(keys, include_personal)
    follow_up_text = _reveal(keys, include_personal if include_follow_ups is None
                             else include_follow_ups)
    return ContactOut.model_validate({
        "id": contact.id,
        "channel": contact.channel,
        "direction": contact.direction,
        "answered": contact.answered,
        "responds_to": contact.responds_to,
        "caller_ref": contact.caller_ref,
        "shift_id": contact.shift_id,
        "supporter_ids": contact.supporter_ids,
        "started_at": contact.started_at,
        "ended_at": contact.ended_at,
        "issues": contact.issues,
        "caller_is": contact.caller_is,
        "signposted_to": contact.signposted_to,
        "summary": reveal(contact.summary),
        "risk_level": contact.risk_level,
        "risk_trail": [_opened(r, RISK_TEXT, reveal) for r in contact.risk_trail],
        "escalations": [_opened(e, ESCALATION_TEXT, reveal) for e in contact.escalations],
        "follow_ups": [_opened(f, FOLLOW_UP_TEXT, follow_up_text) for f in contact.follow_ups],
        "distressing": contact.debrief_requested,
        "closed": contact.closed,
        "logged_by": contact.logged_by,
        "corrections": contact.corrections,
        "version": contact.version,
    })


def contact_for(app: ContactApplication, principal: Principal, contact: Contact) -> ContactOut:
    """The contact as ``principal`` may see it: its follow-ups' text also for any
    supporter on shift (who may be the one to do it, e.g. ring a missed call back)."""
    personal = app.sees_personal(principal, contact.supporter_ids)
    follow_ups = personal or (principal.role == Role.SUPPORTER and bool(contact.follow_ups)
                              and app.may_read_history(principal))
    return contact_out(app.keys, contact, include_personal=personal,
                       include_follow_ups=follow_ups)


def risk_out(keys: KeyStore, contact: Contact, n: int, *, include_personal: bool) -> RiskOut:
    """The ``n``th assessment (1-based) of the contact's risk trail."""
    assessment = _opened(contact.risk_trail[n - 1], RISK_TEXT, _reveal(keys, include_personal))
    return RiskOut(id=f"{contact.id}/{n}", contact_id=contact.id, **assessment)


def escalation_out(keys: KeyStore, contact: Contact, n: int, *,
                   include_personal: bool) -> EscalationOut:
    """The contact's ``n``th escalation (1-based)."""
    escalation = _opened(contact.escalations[n - 1], ESCALATION_TEXT,
                         _reveal(keys, include_personal))
    return EscalationOut(id=f"{contact.id}/{n}", contact_id=contact.id, **escalation)


def contact_item(keys: KeyStore, row: Any, *, include_summary: bool) -> ContactListItem:
    """One read-table row; its summary (sealed there) only when ``include_summary``."""
    return ContactListItem(**read_model.row_to_dict(row, keys.reveal if include_summary
                                                    else None))


def contact_page(app: ContactApplication, principal: Principal, rows: Iterable[Any],
                 next_cursor: str | None) -> ContactPage:
    return ContactPage(
        items=[contact_item(app.keys, row, include_summary=app.sees_personal(
            principal, read_model.supporters_of(row))) for row in rows],
        next_cursor=next_cursor,
    )
