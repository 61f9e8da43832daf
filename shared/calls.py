"""Ringing a caller back: the call provider's side of a call-back.

A call-back is placed the Twilio way: the provider first rings the supporter's own
phone, and when they answer it dials the caller, presenting the line's number. The
supporter never sees the caller's number; the caller sees the line's.

- ``CallPlacer``: the port through which a call-back is placed (the supporter's phone,
  the caller's number; the provider's reference back).
- ``TwilioCallPlacer``: Twilio's REST API, ``POST {base}/2010-04-01/Accounts/{sid}/
  Calls.json`` with ``To`` (the supporter's phone), ``From`` (the line's number) and
  ``Twiml`` (``<Response><Dial callerId="LINE">CALLER</Dial></Response>``), basic auth
  with the account sid and auth token; the reply's ``sid`` is the reference.
- ``OutboxCallPlacer`` (embedded mode): nothing is dialled. What would have been placed
  is kept in the ``call_outbox`` table with both numbers masked (``*********0123``):
  no number in clear, and nothing to shred on erasure.

Nothing here logs or raises with a phone number in it.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, Literal, Protocol
from xml.sax.saxutils import escape, quoteattr

import httpx
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from shared.config import Settings
from shared.sms import twilio_post

TWILIO_BASE = "https://api.twilio.com"
CALL_OUTBOX_PREFIX = "call-outbox-"
KEPT_DIGITS = 4

calls_metadata = sa.MetaData()

# What embedded mode would have placed: numbers masked, never in clear.
call_outbox = sa.Table(
    "call_outbox",
    calls_metadata,
    sa.Column("ref", sa.String(64), primary_key=True),
    sa.Column("ring", sa.String(40), nullable=False),  # masked
    sa.Column("dial", sa.String(40), nullable=False),  # masked
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)


def masked(number: str) -> str:
    """All but the last four characters hidden (``+447700900123`` -> ``*********0123``); a
    value of four or fewer, all."""
    kept = number[-KEPT_DIGITS:] if len(number) > KEPT_DIGITS else ""
    return "*" * (len(number) - len(kept)) + kept


def dial_twiml(line: str, caller: str) -> str:
    """What the provider does once the supporter answers: dial the caller, showing the
    line's number."""
    return f"<Response><Dial callerId={quoteattr(line)}>{escape(caller)}</Dial></Response>"


class CallPlaceError(Exception):
    """The provider did not place the call. The message says why, without a number."""


class CallPlacer(Protocol):
    """Places one call-back: rings ``ring`` (the supporter's own phone, E.164), then
    bridges to ``caller`` (E.164); returns the provider's reference for the call."""

    def place(self, ring: str, caller: str) -> str: ...


class TwilioCallPlacer:
    """Twilio's Calls resource. ``base`` is the API's origin (a test server in tests)."""

    def __init__(self, account_sid: str, auth_token: str, line_number: str,
                 base: str = TWILIO_BASE, transport: httpx.BaseTransport | None = None,
                 timeout_s: float = 10.0) -> None:
        if not account_sid or not auth_token or not line_number:
            raise ValueError("Twilio needs an account sid, an auth token and the line's number")
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.line_number = line_number
        self.base = base.rstrip("/")
        self.transport = transport
        self.timeout_s = timeout_s

    @property
    def url(self) -> str:
        return f"{self.base}/2010-04-01/Accounts/{self.account_sid}/Calls.json"

    def place(self, ring: str, caller: str) -> str:
        return twilio_post(self.url, {"To": ring, "From": self.line_number,
                                      "Twiml": dial_twiml(self.line_number, caller)},
                           auth=(self.account_sid, self.auth_token),
                           transport=self.transport, timeout_s=self.timeout_s,
                           provider="call provider", thing="call", error=CallPlaceError)


class OutboxCallPlacer:
    """Embedded mode: nothing is dialled; what would have been is kept in
    ``call_outbox`` (status ``pending``), both numbers masked."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        calls_metadata.create_all(engine)

    def place(self, ring: str, caller: str) -> str:
        ref = f"{CALL_OUTBOX_PREFIX}{uuid.uuid4()}"
        with self.engine.begin() as conn:
            conn.execute(sa.insert(call_outbox).values(
                ref=ref, ring=masked(ring), dial=masked(caller), status="pending",
                created_at=datetime.now(UTC)))
        return ref

    def pending(self, limit: int = 100) -> list[dict[str, Any]]:
        """For an operator: what would have been placed, numbers masked."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(call_outbox).where(call_outbox.c.status == "pending")
                .order_by(call_outbox.c.created_at, call_outbox.c.ref).limit(limit)
            ).mappings().all()
        return [dict(r) for r in rows]


def delivery_of(provider_ref: str) -> Literal["outbox", "provider"]:
    """``outbox`` for what embedded mode kept, ``provider`` for a call the provider took."""
    return "outbox" if provider_ref.startswith(CALL_OUTBOX_PREFIX) else "provider"


def call_placer(settings: Settings, engine: Engine) -> CallPlacer:
    """Twilio where configured (the account sid, auth token and line number, each
    falling back to the SMS provider's), else the embedded outbox."""
    if settings.call_provider == "twilio":
        sid = settings.call_account_sid or settings.sms_account_sid
        token = settings.call_auth_token or settings.sms_auth_token
        line = settings.call_line_number or settings.sms_from_number
        if not (sid and token and line):
            raise ValueError("call_provider=twilio needs SOLIDARITY_CALL_ACCOUNT_SID, "
                             "SOLIDARITY_CALL_AUTH_TOKEN and SOLIDARITY_CALL_LINE_NUMBER "
                             "(or the SOLIDARITY_SMS_ ones)")
        return TwilioCallPlacer(sid, token, line, base=settings.call_api_base)
    return OutboxCallPlacer(engine)
