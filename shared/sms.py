"""Texts: the SMS provider's side of a text conversation.

- ``twilio_signature`` / ``valid_twilio_signature``: how the inbound webhook is
  authenticated. Twilio signs every request with ``X-Twilio-Signature``:
  base64(HMAC-SHA1(auth token, the full URL it called + each POST parameter's name
  followed by its value, parameters sorted by name)).
- ``SmsSender``: the port through which a reply leaves the service, with the shape of
  Twilio's REST API (a number, a body, and the provider's reference back).
  ``TwilioSmsSender`` calls Twilio; ``OutboxSmsSender`` (embedded mode) stores what
  would be sent in the ``sms_outbox`` table, recipient and body sealed with the
  caller's key, so an operator can see pending sends and erasure shreds them.
- ``InboundLedger``: the ``MessageSid`` of every inbound message, reserved before the
  message is recorded, so a provider's retry of the same message creates nothing new.

Nothing here logs or raises with a phone number or a message body in it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

import httpx
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from shared.config import Settings
from shared.privacy import KeyStore, PhoneIndex

TWILIO_API = "https://api.twilio.com/2010-04-01"
SIGNATURE_HEADER = "X-Twilio-Signature"
OUTBOX_REF_PREFIX = "outbox-"

sms_metadata = sa.MetaData()

# What embedded mode would have sent. Recipient and body are sealed tokens (see
# shared.privacy): readable while the caller's key exists, shredded by erasure.
sms_outbox = sa.Table(
    "sms_outbox",
    sms_metadata,
    sa.Column("ref", sa.String(64), primary_key=True),
    sa.Column("subject_id", sa.String(64), nullable=False, index=True),
    sa.Column("recipient", sa.Text, nullable=False),  # sealed
    sa.Column("body", sa.Text, nullable=False),  # sealed
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

# Inbound messages already taken (or being taken): the provider's MessageSid, an id of
# the provider's own, not personal data.
sms_inbound = sa.Table(
    "sms_inbound",
    sms_metadata,
    sa.Column("message_sid", sa.String(64), primary_key=True),
    sa.Column("state", sa.String(16), nullable=False),  # pending | done
    sa.Column("contact_id", sa.String(36), nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)


# ------------------------------------------------------------------------ signature


def _pairs(params: Mapping[str, str] | Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    items = params.items() if isinstance(params, Mapping) else params
    return [(str(k), str(v)) for k, v in items]


def twilio_signature(auth_token: str, url: str,
                     params: Mapping[str, str] | Iterable[tuple[str, str]]) -> str:
    """The ``X-Twilio-Signature`` of a form POST to ``url`` with ``params``.

    The URL exactly as the provider called it (scheme, host, path and query string),
    then every parameter's name followed by its value, sorted by name; a name sent more
    than once contributes each of its distinct values in order (as Twilio's own
    libraries do)."""
    values: dict[str, set[str]] = {}
    for name, value in _pairs(params):
        values.setdefault(name, set()).add(value)
    data = url + "".join(name + value for name in sorted(values)
                         for value in sorted(values[name]))
    digest = hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def _with_and_without_default_port(url: str) -> list[str]:
    """Twilio may sign an https URL with or without ``:443`` (http: ``:80``): its
    libraries accept either, and so does this."""
    parts = urlsplit(url)
    default = {"https": 443, "http": 80}.get(parts.scheme)
    if default is None or parts.hostname is None:
        return [url]
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    userinfo = parts.netloc.rpartition("@")[0]
    userinfo = userinfo + "@" if userinfo else ""
    if parts.port is None:
        other = parts._replace(netloc=f"{userinfo}{host}:{default}")
    elif parts.port == default:
        other = parts._replace(netloc=f"{userinfo}{host}")
    else:
        return [url]
    return [url, urlunsplit(other)]


def valid_twilio_signature(auth_token: str, url: str,
                           params: Mapping[str, str] | Iterable[tuple[str, str]],
                           signature: str | None) -> bool:
    """Whether ``signature`` is the provider's signature of this request (constant time)."""
    if not signature or not auth_token:
        return False
    pairs = _pairs(params)
    return any(
        hmac.compare_digest(twilio_signature(auth_token, candidate, pairs).encode(),
                            signature.strip().encode())
        for candidate in _with_and_without_default_port(url)
    )


# -------------------------------------------------------------------------- senders


class SmsSendError(Exception):
    """The provider did not take the message. The message says why, without the number
    or the body."""


class SmsSender(Protocol):
    """Sends one text; returns the provider's reference for it."""

    def send(self, to_e164: str, body: str) -> str: ...


class TwilioSmsSender:
    """Twilio's REST API: ``POST /Accounts/{sid}/Messages.json`` with To, From and Body,
    basic auth with the account sid and auth token; the reply's ``sid`` is the ref."""

    def __init__(self, account_sid: str, auth_token: str, from_number: str,
                 transport: httpx.BaseTransport | None = None, timeout_s: float = 10.0) -> None:
        if not account_sid or not auth_token or not from_number:
            raise ValueError("Twilio needs an account sid, an auth token and a from number")
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.from_number = from_number
        self.transport = transport
        self.timeout_s = timeout_s

    @property
    def url(self) -> str:
        return f"{TWILIO_API}/Accounts/{self.account_sid}/Messages.json"

    def send(self, to_e164: str, body: str) -> str:
        return twilio_post(self.url, {"To": to_e164, "From": self.from_number, "Body": body},
                           auth=(self.account_sid, self.auth_token),
                           transport=self.transport, timeout_s=self.timeout_s,
                           provider="SMS provider", thing="message", error=SmsSendError)


def twilio_post(url: str, data: dict[str, str], *, auth: tuple[str, str],
                transport: httpx.BaseTransport | None, timeout_s: float, provider: str,
                thing: str, error: type[Exception]) -> str:
    """POST a form to a Twilio REST resource (basic auth with the account sid and auth
    token) and return the created resource's ``sid``. Any failure is ``error``, naming
    only the provider, the HTTP status and Twilio's error code: its message may quote a
    number, so it is never passed on."""
    try:
        with httpx.Client(transport=transport, timeout=timeout_s) as client:
            resp = client.post(url, data=data, auth=auth,
                               headers={"Accept": "application/json"})
    except httpx.HTTPError as e:
        raise error(f"the {provider} could not be reached ({type(e).__name__})") from None
    if resp.status_code not in (200, 201):
        code = _json(resp).get("code")
        raise error(f"the {provider} refused the {thing} (HTTP {resp.status_code}, "
                    f"code {code})")
    sid = _json(resp).get("sid")
    if not isinstance(sid, str) or not sid:
        raise error(f"the {provider}'s reply has no {thing} sid")
    return sid


def _json(resp: httpx.Response) -> dict[str, Any]:
    try:
        data = resp.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


class OutboxSmsSender:
    """Embedded mode: nothing leaves the machine. What would be sent is kept in
    ``sms_outbox`` (status ``pending``), the recipient and the body sealed with the
    caller's key: ``subject_of`` names the caller (data subject) who holds the number."""

    def __init__(self, engine: Engine, keys: KeyStore,
                 subject_of: Callable[[str], str | None]) -> None:
        self.engine = engine
        self.keys = keys
        self.subject_of = subject_of
        sms_metadata.create_all(engine)

    def send(self, to_e164: str, body: str) -> str:
        subject = self.subject_of(to_e164)
        if subject is None:
            raise SmsSendError("no known caller holds this number")
        ref = f"{OUTBOX_REF_PREFIX}{uuid.uuid4()}"
        recipient = self.keys.seal(subject, to_e164)
        sealed_body = self.keys.seal(subject, body)
        assert recipient is not None and sealed_body is not None
        with self.engine.begin() as conn:
            conn.execute(sa.insert(sms_outbox).values(
                ref=ref, subject_id=subject, recipient=recipient, body=sealed_body,
                status="pending", created_at=datetime.now(UTC),
            ))
        return ref

    def pending(self, limit: int = 100) -> list[dict[str, Any]]:
        """For an operator: what is waiting, opened (``[erased]`` once shredded)."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(sms_outbox).where(sms_outbox.c.status == "pending")
                .order_by(sms_outbox.c.created_at, sms_outbox.c.ref).limit(limit)
            ).mappings().all()
        return [{"ref": r["ref"], "to": self.keys.reveal(r["recipient"]),
                 "body": self.keys.reveal(r["body"]), "created_at": r["created_at"]}
                for r in rows]


# ------------------------------------------------------------------ inbound ledger


class AlreadyTaken(Exception):
    """This MessageSid was taken before (``contact_id`` set) or is being taken now."""

    def __init__(self, contact_id: str | None) -> None:
        super().__init__("message already taken" if contact_id else "message being taken")
        self.contact_id = contact_id


class InboundLedger:
    """Reserve a MessageSid before its message is recorded; release it if that fails.
    A reservation left pending longer than ``pending_timeout`` (a crash between reserving
    and finishing) is taken over by the provider's next retry."""

    pending_timeout = timedelta(seconds=60)

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        sms_metadata.create_all(engine)

    def reserve(self, message_sid: str) -> None:
        try:
            with self.engine.begin() as conn:
                conn.execute(sa.insert(sms_inbound).values(
                    message_sid=message_sid, state="pending", contact_id=None,
                    created_at=datetime.now(UTC),
                ))
        except IntegrityError:
            with self.engine.connect() as conn:
                row = conn.execute(sa.select(sms_inbound.c.state, sms_inbound.c.contact_id,
                                             sms_inbound.c.created_at)
                                   .where(sms_inbound.c.message_sid == message_sid)).first()
            if row is None:  # released meanwhile: try once more
                self.reserve(message_sid)
                return
            if row.state != "done" and self._abandoned(row.created_at):
                with self.engine.begin() as conn:
                    conn.execute(sa.delete(sms_inbound).where(
                        sms_inbound.c.message_sid == message_sid,
                        sms_inbound.c.state == "pending",
                        sms_inbound.c.created_at == row.created_at))
                self.reserve(message_sid)
                return
            raise AlreadyTaken(row.contact_id if row.state == "done" else None) from None

    def _abandoned(self, created_at: datetime) -> bool:
        if created_at.tzinfo is None:  # SQLite hands back naive UTC
            created_at = created_at.replace(tzinfo=UTC)
        return datetime.now(UTC) - created_at > self.pending_timeout

    def done(self, message_sid: str, contact_id: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(sa.update(sms_inbound).where(sms_inbound.c.message_sid == message_sid)
                         .values(state="done", contact_id=contact_id))

    def release(self, message_sid: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(sa.delete(sms_inbound).where(sms_inbound.c.message_sid == message_sid))


# ----------------------------------------------------------------- the provider


@dataclass(frozen=True)
class SmsProvider:
    """The SMS provider chosen by settings: how replies leave, and the token that signs
    the provider's webhook requests."""

    sender: SmsSender
    auth_token: str


def sms_provider(settings: Settings, engine: Engine, keys: KeyStore,
                 phones: PhoneIndex) -> SmsProvider:
    """Twilio where configured (all three settings needed), else the embedded outbox."""
    if settings.sms_provider == "twilio":
        if not (settings.sms_auth_token and settings.sms_account_sid
                and settings.sms_from_number):
            raise ValueError("sms_provider=twilio needs SOLIDARITY_SMS_AUTH_TOKEN, "
                             "SOLIDARITY_SMS_ACCOUNT_SID and SOLIDARITY_SMS_FROM_NUMBER")
        return SmsProvider(TwilioSmsSender(settings.sms_account_sid, settings.sms_auth_token,
                                           settings.sms_from_number),
                           settings.sms_auth_token)
    return SmsProvider(OutboxSmsSender(engine, keys, phones.find),
                       settings.sms_auth_token or settings.secret("sms-auth-token"))
