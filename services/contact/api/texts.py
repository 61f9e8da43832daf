"""Text conversations. A text conversation is a contact with channel=text. The SMS
provider posts inbound texts to /contact/texts/inbound (authenticated by its request
signature, not a token); supporters and the coordinator read the thread and reply.
Bodies and numbers are personal data: sealed in the store, never in a URL, a log line
or an event on the bus.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import parse_qsl
from uuid import UUID

from fastapi import APIRouter, Depends, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from services.contact.api.common import ON_CALL, App, created_once
from services.contact.app import ContactApplication
from services.contact.domain import CallerIs, Contact, Direction, IssueCategory, RiskLevel
from shared.audit.access import record_read
from shared.privacy import KeyStore
from shared.sms import SIGNATURE_HEADER, SmsSendError, valid_twilio_signature
from shared.web.auth import Principal
from shared.web.deps import IdempotencyKey, Purpose, Strict, roles_doc, with_etag
from shared.web.middleware import correlation_of
from shared.web.problems import Forbidden, Problem, Unprocessable

router = APIRouter()


# -------------------------------------------------------------------------- texts


class TextMessageOut(BaseModel):
    n: int
    direction: Direction
    at: datetime
    body: str | None = Field(description="`[erased]` after the caller's erasure.")
    by: str | None = Field(description="Who sent it (outbound); null for the caller's.")
    provider_ref: str | None
    delivery: Literal["outbox", "provider"] | None = Field(
        description="Outbound only: `outbox` (embedded mode: stored, would be sent) or "
        "`provider` (handed to the SMS provider).")


ThreadStatus = Literal["unclaimed", "open", "closed"]
STATUS_DOC = ("`unclaimed`: not closed, nobody claimed it; `open`: claimed, not closed; "
              "`closed`.")


class TextThreadOut(BaseModel):
    contact_id: UUID
    caller_ref: str | None
    started_at: datetime
    closed: bool
    status: ThreadStatus = Field(description=STATUS_DOC)
    claimed_by: str | None = Field(description="Who holds it (a supporter id, or the "
                                   "coordinator's): null when unclaimed or closed.")
    issues: list[IssueCategory]
    caller_is: CallerIs | None
    summary: str | None = Field(description="Only for the coordinator and the supporters "
                                "who handled it (named, claimed or handed it).")
    signposted_to: list[str]
    risk_level: RiskLevel | None
    can_reply: bool = Field(description="The caller consented to texts and is not erased.")
    messages: list[TextMessageOut]
    version: int


OUTBOX_PREFIX = "outbox-"  # the embedded mode's outbox names what it keeps so


def _delivery(message: dict[str, Any]) -> Literal["outbox", "provider"] | None:
    if message["direction"] == "inbound":
        return None
    return "outbox" if str(message["provider_ref"]).startswith(OUTBOX_PREFIX) else "provider"


def text_message_out(keys: KeyStore, n: int, message: dict[str, Any]) -> TextMessageOut:
    return TextMessageOut(n=n, direction=message["direction"], at=message["at"],
                          body=keys.reveal(message["body"]), by=message["by"],
                          provider_ref=message["provider_ref"], delivery=_delivery(message))


def text_thread_out(keys: KeyStore, contact: Contact, *, can_reply: bool,
                    include_personal: bool) -> TextThreadOut:
    """A text conversation, read like a call, with its messages in order, bodies opened;
    its summary only when ``include_personal``."""
    return TextThreadOut(
        contact_id=contact.id,
        caller_ref=contact.caller_ref,
        started_at=contact.started_at,
        closed=contact.closed,
        status=contact.status,  # type: ignore[arg-type]
        claimed_by=contact.claimed_by,
        issues=contact.issues,  # type: ignore[arg-type]
        caller_is=contact.caller_is,  # type: ignore[arg-type]
        summary=keys.reveal(contact.summary) if include_personal else None,
        signposted_to=contact.signposted_to,
        risk_level=contact.risk_level,  # type: ignore[arg-type]
        can_reply=can_reply,
        messages=[text_message_out(keys, n, m)
                  for n, m in enumerate(contact.messages, start=1)],
        version=contact.version,
    )

ON_SHIFT = ("A supporter only while on shift: assigned to a shift on the rota, from "
            "`SOLIDARITY_ON_SHIFT_BEFORE_MIN` (30) minutes before its start to "
            "`SOLIDARITY_ON_SHIFT_AFTER_MIN` (60) after its end; 403 otherwise.")
TWIML_EMPTY = '<?xml version="1.0" encoding="UTF-8"?><Response/>'
INBOUND_FIELDS = ("From", "To", "Body", "MessageSid")
MAX_INBOUND_PARAMS = 200


class UnsupportedMediaType(Problem):
    status, type, title = 415, "unsupported-media-type", "Unsupported media type"


class SmsProviderFailed(Problem):
    status, type, title = 502, "sms-provider-failed", "The SMS provider did not take the text"


class InboundText(BaseModel):
    """The fields of a provider's inbound-message webhook this service uses; any other
    field is accepted (and covered by the signature)."""

    model_config = ConfigDict(extra="allow")

    From: Annotated[str, StringConstraints(min_length=1, max_length=40)]
    To: Annotated[str, StringConstraints(min_length=1, max_length=40)]
    Body: Annotated[str, StringConstraints(max_length=1600)] = ""
    MessageSid: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]


class ReplyIn(Strict):
    body: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1,
                                           max_length=1600)] = Field(
        description="The text to send (1 to 1600 characters).")


def _form_pairs(raw: bytes) -> list[tuple[str, str]]:
    try:
        return parse_qsl(raw.decode("utf-8"), keep_blank_values=True,
                         max_num_fields=MAX_INBOUND_PARAMS)
    except (UnicodeDecodeError, ValueError):
        raise Unprocessable(
            "The body must be UTF-8 application/x-www-form-urlencoded parameters.",
            errors=[{"field": "body", "message": "not form data", "code": "form"}],
        ) from None


def _inbound_text(pairs: list[tuple[str, str]]) -> InboundText:
    fields: dict[str, str] = {}
    for name, value in pairs:
        if name in INBOUND_FIELDS and name in fields:
            raise Unprocessable(f"{name} is given more than once.",
                                errors=[{"field": f"body.{name}", "message": "given twice",
                                         "code": "duplicate"}])
        fields.setdefault(name, value)
    try:
        return InboundText.model_validate(fields)
    except ValidationError as e:
        # Without the submitted values (a number, a body): the handler keeps loc and msg.
        raise RequestValidationError(
            [{"loc": ("body", *err["loc"]), "msg": err["msg"], "type": err["type"]}
             for err in e.errors()]
        ) from None


INBOUND_DOC = (
    "The SMS provider's webhook: a Twilio-style `application/x-www-form-urlencoded` "
    "post with `From`, `To`, `Body` and `MessageSid` (other fields are accepted and "
    "covered by the signature). Authenticated by `X-Twilio-Signature`: "
    "base64(HMAC-SHA1(auth token, URL + each parameter's name and value, sorted by "
    "name)), over `SOLIDARITY_SMS_WEBHOOK_URL` if set, else the URL as received; a "
    "missing or wrong signature is 403 and stores nothing. Idempotent on "
    "`MessageSid`: a replay creates nothing new. Finds the caller by the keyed hash "
    "of the number or registers a new one (texting in opts in to replies: "
    "`consent_to_text` true, `consent_to_keep_history` false), then appends to "
    "the caller's latest text conversation if it is not closed, or if its last message "
    "was at most `SOLIDARITY_TEXT_REOPEN_WINDOW_H` (24) hours ago (a closed one then "
    "reopens, unclaimed); otherwise it opens a new one, routed "
    "to the supporters on call when it arrives (those assigned to the rota's shift on "
    "then become its `supporter_ids`, and that shift its `shift_id`). "
    "Answers 200 with an empty TwiML `<Response/>` (`text/xml`): no automatic "
    "reply; `Location` names the text conversation it went to (ids only: what "
    "`solidarity sms-in` prints).\n\nRoles: none (the SMS provider, authenticated by its request "
    "signature)."
)
INBOUND_BODY = {"requestBody": {"required": True, "content": {
    "application/x-www-form-urlencoded": {"schema": {
        "type": "object", "required": ["From", "To", "MessageSid"],
        "properties": {name: {"type": "string"} for name in INBOUND_FIELDS},
        "additionalProperties": {"type": "string"},
    }}}}}


@router.post(
    "/texts/inbound", response_class=Response, summary="Inbound text (SMS webhook)",
    description=INBOUND_DOC,
    responses={200: {"content": {"text/xml": {}}, "description": "Taken (or a replay).",
                     "headers": {"Location": {"description": "The text conversation it "
                                              "went to.", "schema": {"type": "string"}}}},
               403: {"description": "Missing or wrong signature."}},
    openapi_extra=INBOUND_BODY,
)
async def inbound_text(request: Request, app: App) -> Response:
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != "application/x-www-form-urlencoded":
        raise UnsupportedMediaType("Send application/x-www-form-urlencoded parameters.")
    pairs = _form_pairs(await request.body())
    url = app.settings.sms_webhook_url or str(request.url)
    if not valid_twilio_signature(app.texts.auth_token, url, pairs,
                                  request.headers.get(SIGNATURE_HEADER)):
        raise Forbidden("The request's X-Twilio-Signature is missing or does not match.")
    text = _inbound_text(pairs)
    contact_id, _ = await run_in_threadpool(
        lambda: app.texts.receive(message_sid=text.MessageSid, from_number=text.From,
                                  body=text.Body, correlation_id=correlation_of(request)))
    return Response(TWIML_EMPTY, media_type="text/xml",
                    headers={"Location": f"/contact/texts/{contact_id}"})


@router.get("/texts/{contact_id:uuid}", response_model=TextThreadOut,
            summary="A text conversation",
            description=roles_doc(ON_CALL, "The messages in order, with direction, time, "
                                  "body (`[erased]` after erasure) and who sent each reply. "
                                  "In embedded mode replies go to the outbox (`delivery: "
                                  "outbox`): what would be sent. Its version as ETag. " + ON_SHIFT))
def text_thread(contact_id: UUID, response: Response, app: App,
                principal: Annotated[Principal, Depends(ON_CALL)],
                purpose: Purpose = None) -> TextThreadOut:
    contact, can_reply = app.texts.thread(contact_id, principal)
    if app.sees_personal(principal, contact.supporter_ids):  # recorded before it is shown
        record_read(app, app.keys, kind="text_thread", record_id=contact.id,
                    subject=contact.caller_id or contact.id, purpose=purpose)
    with_etag(response, contact.version)
    return thread_for(app, principal, contact, can_reply)


def thread_for(app: ContactApplication, principal: Principal, contact: Contact,
               can_reply: bool) -> TextThreadOut:
    """The thread as ``principal`` may see it."""
    return text_thread_out(app.keys, contact, can_reply=can_reply,
                           include_personal=app.sees_personal(principal, contact.supporter_ids))


@router.post("/texts/{contact_id:uuid}/reply", status_code=201,
             response_model=TextMessageOut, summary="Reply by text",
             responses={502: {"description": "The SMS provider refused the text: nothing "
                                             "recorded."}},
             description=roles_doc(ON_CALL, "Sends the text through the SMS provider (in "
                                   "embedded mode: the outbox) and records it. Refused (422) "
                                   "unless the caller consented to texts and is not erased. "
                                   "Location names the message in the conversation. Send "
                                   "`Idempotency-Key` to make a retry safe (it never sends "
                                   "twice). 502 if the provider refuses: nothing recorded. "
                                   + ON_SHIFT))
def reply_text(contact_id: UUID, body: ReplyIn, request: Request, app: App,
               principal: Annotated[Principal, Depends(ON_CALL)],
               idempotency_key: IdempotencyKey = None) -> Response:
    def create() -> tuple[Contact, int]:
        try:
            return app.texts.reply(contact_id, body=body.body, principal=principal)
        except SmsSendError as e:
            raise SmsProviderFailed(str(e)) from None

    def load(n: str) -> tuple[Contact, int]:
        return app.texts.stored_thread(contact_id)[0], int(n)

    def show(sent: tuple[Contact, int]) -> tuple[TextMessageOut, str, int]:
        contact, n = sent
        return (text_message_out(app.keys, n, contact.messages[n - 1]),
                f"/contact/texts/{contact_id}#m{n}", contact.version)

    return created_once(request, principal, idempotency_key,
                        f"POST /contact/texts/{contact_id}/reply", body, create=create,
                        ident=lambda sent: str(sent[1]), load=load, show=show)
