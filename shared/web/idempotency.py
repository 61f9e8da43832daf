"""``Idempotency-Key`` for creating POSTs: a retry gets the response first given.

The key is reserved before the command runs (a concurrent duplicate gets 409) and tied
to the new resource's id as soon as the command has stored it; a command that fails
releases the key. What the first request was answered (status, ``Location``/``ETag``,
JSON body) is kept with the key and is what every retry gets, byte for byte: not the
resource as it is now (a referral decided since, a directory entry removed since), which
would tell the client more than the first answer did, or nothing at all.

That answer may hold personal data (an alias, a summary), so it is sealed (AES-GCM, with
a key derived from the master key, bound to the principal and the key), and it is not
kept for ever: a key and its answer are forgotten ``RETENTION`` (24 hours) after the
request; the same key may then be used afresh. Of the request body only a keyed hash is
kept, to tell a retry from a different request reusing the key.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError as SAIntegrityError
from starlette.responses import Response

from shared.logging import get_logger
from shared.privacy.keys import derive_key
from shared.web.auth import Principal
from shared.web.problems import Conflict, Unprocessable

log = get_logger("idempotency")

idempotency_metadata = sa.MetaData()

idempotency_keys = sa.Table(
    "idempotency_keys",
    idempotency_metadata,
    sa.Column("principal", sa.String(200), primary_key=True),
    sa.Column("key", sa.String(200), primary_key=True),
    sa.Column("route", sa.String(200), nullable=False),
    # A keyed hash of the request body: tells a retry from a different request reusing
    # the key, without keeping the body (it may hold personal data).
    sa.Column("request_hash", sa.String(64), nullable=False),
    sa.Column("resource_id", sa.String(64), nullable=True),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

# The first answer to a key, sealed: {"status", "headers", "body"} as JSON.
idempotency_responses = sa.Table(
    "idempotency_responses",
    idempotency_metadata,
    sa.Column("principal", sa.String(200), primary_key=True),
    sa.Column("key", sa.String(200), primary_key=True),
    sa.Column("sealed", sa.LargeBinary, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, index=True),
)

PENDING_TIMEOUT = timedelta(seconds=60)
RETENTION = timedelta(hours=24)
PURGE_EVERY_S = 60.0
KEPT_HEADERS = ("location", "etag")


@dataclass(frozen=True)
class FirstResponse:
    """A JSON answer as it was first given: what a retry with the same key gets."""

    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    replayed: bool = False

    def response(self) -> Response:
        return Response(self.body, status_code=self.status, headers=self.headers,
                        media_type="application/json")


class Idempotency:
    """``Idempotency-Key`` for creating POSTs (see the module's docstring)."""

    def __init__(self, engine: Engine, secret: bytes) -> None:
        self.engine = engine
        self.secret = secret
        self._seal = AESGCM(derive_key(secret, "idempotency-responses"))
        self._purged_at = 0.0
        self._purge_lock = threading.Lock()
        idempotency_metadata.create_all(engine)

    def _hash(self, body: bytes) -> str:
        return hmac.new(self.secret, body, hashlib.sha256).hexdigest()

    # ---------------------------------------------------------------- the two ways in
    def run(self, *, key: str | None, principal: Principal, route: str, body: bytes,
            create: Callable[[], str]) -> tuple[str, bool]:
        """Run ``create`` once per key; return (resource id, replayed?)."""
        if key is None:
            return create(), False
        row = self._reserve(key, principal, route, body)
        if row is not None:
            return str(row["resource_id"]), True
        return self._create(key, principal, create), False

    def respond(self, *, key: str | None, principal: Principal, route: str, body: bytes,
                create: Callable[[], str],
                present: Callable[[str], FirstResponse]) -> FirstResponse:
        """Run ``create`` once per key and answer with ``present`` of the new resource's
        id; a retry gets that first answer again (``replayed``). Should the answer not
        have been kept (the presenter failed after the command was stored), a retry gets
        ``present`` of the same resource, never a second one."""
        if key is None:
            return present(create())
        row = self._reserve(key, principal, route, body)
        if row is not None:
            first = self._kept(principal.sub, key)
            if first is None:
                first = present(str(row["resource_id"]))
            return replace(first, replayed=True)
        first = present(self._create(key, principal, create))
        self._keep(principal.sub, key, first)
        return first

    # ------------------------------------------------------------------- the steps
    def _where(self, principal: Principal, key: str) -> Any:
        return sa.and_(idempotency_keys.c.principal == principal.sub,
                       idempotency_keys.c.key == key)

    def _reserve(self, key: str, principal: Principal, route: str,
                 body: bytes) -> Any | None:
        """Reserve the key for this request (None), or the row of the request that
        finished with it (a replay). Refuses a key in use or used for another request."""
        if not (1 <= len(key) <= 200):
            raise Unprocessable(
                "Idempotency-Key must be 1 to 200 characters.",
                errors=[{"field": "header.Idempotency-Key", "message": "1 to 200 characters"}],
            )
        self._purge_expired()
        digest = self._hash(body)
        where = self._where(principal, key)
        try:
            with self.engine.begin() as conn:
                conn.execute(sa.insert(idempotency_keys).values(
                    principal=principal.sub, key=key, route=route, request_hash=digest,
                    resource_id=None, state="pending", created_at=datetime.now(UTC)))
                conn.execute(sa.delete(idempotency_responses).where(  # an expired use's
                    idempotency_responses.c.principal == principal.sub,
                    idempotency_responses.c.key == key))
            return None
        except SAIntegrityError:
            pass
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(idempotency_keys).where(where)).mappings().first()
        if row is None:  # released between our insert and select: try once more
            return self._reserve(key, principal, route, body)
        if row["route"] != route or row["request_hash"] != digest:
            raise Unprocessable(
                "This Idempotency-Key was used for a different request.",
                errors=[{"field": "header.Idempotency-Key",
                         "message": "reused with a different request"}],
            )
        if row["state"] != "done" and _older_than(row["created_at"], PENDING_TIMEOUT):
            # A crash between reserving the key and finishing left it pending.
            with self.engine.begin() as conn:
                conn.execute(sa.delete(idempotency_keys).where(
                    where, idempotency_keys.c.state == "pending",
                    idempotency_keys.c.created_at == row["created_at"]))
            return self._reserve(key, principal, route, body)
        if row["state"] != "done":
            raise Conflict("A request with this Idempotency-Key is still in progress.")
        return row

    def _create(self, key: str, principal: Principal, create: Callable[[], str]) -> str:
        """Run the command under the reserved key: tie the key to what it stored, or
        release it if it failed."""
        where = self._where(principal, key)
        try:
            resource_id = create()
        except BaseException:
            with self.engine.begin() as conn:
                conn.execute(sa.delete(idempotency_keys).where(where))
            raise
        with self.engine.begin() as conn:
            conn.execute(sa.update(idempotency_keys).where(where)
                         .values(resource_id=resource_id, state="done"))
        return resource_id

    def _associated(self, principal: str, key: str) -> bytes:
        return json.dumps([principal, key]).encode()

    def _keep(self, principal: str, key: str, first: FirstResponse) -> None:
        headers = {k: v for k, v in first.headers.items() if k.lower() in KEPT_HEADERS}
        plain = json.dumps({"status": first.status, "headers": headers,
                            "body": first.body.decode()}).encode()
        nonce = os.urandom(12)
        sealed = nonce + self._seal.encrypt(nonce, plain, self._associated(principal, key))
        try:
            with self.engine.begin() as conn:
                conn.execute(sa.insert(idempotency_responses).values(
                    principal=principal, key=key, sealed=sealed,
                    created_at=datetime.now(UTC)))
        except Exception as e:  # the command is stored: a retry presents its resource
            log.warning("idempotent_response_not_kept", error_type=type(e).__name__)

    def _kept(self, principal: str, key: str) -> FirstResponse | None:
        with self.engine.connect() as conn:
            sealed = conn.execute(sa.select(idempotency_responses.c.sealed).where(
                idempotency_responses.c.principal == principal,
                idempotency_responses.c.key == key)).scalar()
        if sealed is None:
            return None
        raw = bytes(sealed)
        try:
            plain = self._seal.decrypt(raw[:12], raw[12:], self._associated(principal, key))
        except InvalidTag:
            return None
        kept = json.loads(plain)
        return FirstResponse(int(kept["status"]), str(kept["body"]).encode(),
                             dict(kept["headers"]))

    def _purge_expired(self) -> None:
        """Forget keys and answers older than ``RETENTION`` (at most once a minute)."""
        now = time.monotonic()
        with self._purge_lock:
            if now - self._purged_at < PURGE_EVERY_S:
                return
            self._purged_at = now
        cutoff = datetime.now(UTC) - RETENTION
        with self.engine.begin() as conn:
            conn.execute(sa.delete(idempotency_responses)
                         .where(idempotency_responses.c.created_at < cutoff))
            conn.execute(sa.delete(idempotency_keys)
                         .where(idempotency_keys.c.created_at < cutoff))


def _older_than(created_at: datetime, age: timedelta) -> bool:
    if created_at.tzinfo is None:  # SQLite hands back naive UTC
        created_at = created_at.replace(tzinfo=UTC)
    return datetime.now(UTC) - created_at > age
