"""``Idempotency-Key`` for creating POSTs: a retry gets the first result."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError as SAIntegrityError

from shared.web.auth import Principal
from shared.web.problems import Conflict, Unprocessable

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


class Idempotency:
    """``Idempotency-Key`` for creating POSTs: a retry gets the first result.

    The key is reserved before the command runs (a concurrent duplicate gets 409), the
    new resource's id recorded after it; a failed command releases the key. Only a
    keyed hash of the body is kept, never the body.
    """

    def __init__(self, engine: Engine, secret: bytes) -> None:
        self.engine = engine
        self.secret = secret
        idempotency_metadata.create_all(engine)

    def _hash(self, body: bytes) -> str:
        return hmac.new(self.secret, body, hashlib.sha256).hexdigest()

    def run(
        self,
        *,
        key: str | None,
        principal: Principal,
        route: str,
        body: bytes,
        create: Callable[[], str],
    ) -> tuple[str, bool]:
        """Run ``create`` once per key; return (resource id, replayed?)."""
        if key is None:
            return create(), False
        if not (1 <= len(key) <= 200):
            raise Unprocessable(
                "Idempotency-Key must be 1 to 200 characters.",
                errors=[{"field": "header.Idempotency-Key", "message": "1 to 200 characters"}],
            )
        digest = self._hash(body)
        where = sa.and_(
            idempotency_keys.c.principal == principal.sub, idempotency_keys.c.key == key
        )
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    sa.insert(idempotency_keys).values(
                        principal=principal.sub,
                        key=key,
                        route=route,
                        request_hash=digest,
                        resource_id=None,
                        state="pending",
                        created_at=datetime.now(UTC),
                    )
                )
        except SAIntegrityError:
            with self.engine.connect() as conn:
                row = conn.execute(sa.select(idempotency_keys).where(where)).mappings().first()
            if row is None:  # released between our insert and select: try once more
                return self.run(key=key, principal=principal, route=route, body=body,
                                create=create)
            if row["route"] != route or row["request_hash"] != digest:
                raise Unprocessable(
                    "This Idempotency-Key was used for a different request.",
                    errors=[{"field": "header.Idempotency-Key",
                             "message": "reused with a different request"}],
                ) from None
            if row["state"] != "done" and _abandoned(row["created_at"]):
                # A crash between reserving the key and finishing left it pending.
                with self.engine.begin() as conn:
                    conn.execute(sa.delete(idempotency_keys).where(
                        where, idempotency_keys.c.state == "pending",
                        idempotency_keys.c.created_at == row["created_at"]))
                return self.run(key=key, principal=principal, route=route, body=body,
                                create=create)
            if row["state"] != "done":
                raise Conflict(
                    "A request with this Idempotency-Key is still in progress."
                ) from None
            return str(row["resource_id"]), True
        try:
            resource_id = create()
        except BaseException:
            with self.engine.begin() as conn:
                conn.execute(sa.delete(idempotency_keys).where(where))
            raise
        with self.engine.begin() as conn:
            conn.execute(
                sa.update(idempotency_keys)
                .where(where)
                .values(resource_id=resource_id, state="done")
            )
        return resource_id, False


PENDING_TIMEOUT = timedelta(seconds=60)


def _abandoned(created_at: datetime) -> bool:
    if created_at.tzinfo is None:  # SQLite hands back naive UTC
        created_at = created_at.replace(tzinfo=UTC)
    return datetime.now(UTC) - created_at > PENDING_TIMEOUT


