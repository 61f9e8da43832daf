"""Signed checkpoints of a service's chain head.

A checkpoint says "service S's chain, up to notification N, hashes to H", signed with
the service's Ed25519 key. It is published and kept elsewhere (the reporting service
keeps every one it receives), so rewriting a service's history consistently (events and
chain alike) must also change another database and forge a signature.

The key comes from ``SOLIDARITY_AUDIT_SIGNING_KEY`` (base64 of a raw 32-byte Ed25519
private key; one for every service). Unset (embedded mode), each service generates its
own on first use and keeps it in the private data directory (a 0600 file under
``secrets/``), reused across restarts. The key is never logged, printed or put in an
error message. Verifiers trust a given set of public keys (``audit_trusted_keys``) or,
unset, those of this deployment's own signers (``trusted_keys``).

``audit_checkpoints`` holds checkpoints (a service's own, or those it received from
others): one row per (service, notification id, time made, key), so adding one twice
changes nothing.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Engine

from shared.audit.chain import Chainer, ensure_tables
from shared.config import Settings
from shared.eventstore.store import private_data_dir

SIGNED = b"solidarity.audit.checkpoint.v1\x00"

checkpoint_metadata = sa.MetaData()

audit_checkpoints = sa.Table(
    "audit_checkpoints",
    checkpoint_metadata,
    sa.Column("service", sa.String(64), primary_key=True),
    sa.Column("notification_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("made_at", sa.DateTime(timezone=True), primary_key=True),
    sa.Column("key_id", sa.String(16), primary_key=True),
    sa.Column("head", sa.String(64), nullable=False),
    sa.Column("public_key", sa.String(64), nullable=False),
    sa.Column("signature", sa.String(100), nullable=False),
)


class BadCheckpoint(ValueError):
    """A checkpoint that is not one (wrong shape or types); names no value."""


def key_id_of(public_key: bytes) -> str:
    return hashlib.sha256(public_key).hexdigest()[:16]


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _text(value: str) -> bytes:
    data = value.encode()
    return struct.pack(">Q", len(data)) + data


def signed_bytes(service: str, notification_id: int, head: str, made_at: datetime) -> bytes:
    """What the signature covers (length-prefixed, fixed-width)."""
    return b"".join((SIGNED, _text(service), struct.pack(">q", notification_id),
                     _text(head), _text(_utc(made_at).isoformat(timespec="microseconds"))))


@dataclass(frozen=True)
class Checkpoint:
    service: str
    notification_id: int
    head: str  # hex of the chain's hash at notification_id
    made_at: datetime  # UTC
    key_id: str
    public_key: str  # base64 of the raw 32-byte Ed25519 public key
    signature: str  # base64

    def message(self) -> bytes:
        return signed_bytes(self.service, self.notification_id, self.head, self.made_at)

    def to_dict(self) -> dict[str, Any]:
        return {"service": self.service, "notification_id": self.notification_id,
                "head": self.head,
                "made_at": _utc(self.made_at).isoformat(timespec="microseconds"),
                "key_id": self.key_id, "public_key": self.public_key,
                "signature": self.signature}

    @classmethod
    def from_dict(cls, data: Any) -> Checkpoint:
        """From JSON (the bus, another service's table, an export). Raises BadCheckpoint
        naming the field, never its value."""
        if not isinstance(data, dict):
            raise BadCheckpoint("a checkpoint is an object")
        texts = {}
        for name, most in (("service", 64), ("head", 64), ("key_id", 16),
                           ("public_key", 64), ("signature", 100), ("made_at", 40)):
            value = data.get(name)
            if not isinstance(value, str) or not value or len(value) > most:
                raise BadCheckpoint(f"checkpoint field {name} is missing or malformed")
            texts[name] = value
        number = data.get("notification_id")
        if not isinstance(number, int) or isinstance(number, bool) or not (
                0 <= number < 2**63):
            raise BadCheckpoint("checkpoint field notification_id is missing or malformed")
        try:
            made_at = datetime.fromisoformat(texts["made_at"])
        except ValueError:
            raise BadCheckpoint("checkpoint field made_at is malformed") from None
        if made_at.tzinfo is None:
            raise BadCheckpoint("checkpoint field made_at has no offset")
        return cls(service=texts["service"], notification_id=number, head=texts["head"],
                   made_at=made_at.astimezone(UTC), key_id=texts["key_id"],
                   public_key=texts["public_key"], signature=texts["signature"])


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode(), validate=True)


class Signer:
    """Signs one service's chain heads."""

    def __init__(self, private_key: Ed25519PrivateKey, service: str) -> None:
        self._key = private_key
        self.service = service
        raw = private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.public_key = _b64(raw)
        self.key_id = key_id_of(raw)

    def __repr__(self) -> str:  # never the key
        return f"Signer(service={self.service!r}, key_id={self.key_id!r})"

    @classmethod
    def from_settings(cls, settings: Settings, service: str) -> Signer:
        configured = settings.audit_signing_key
        if configured is not None:
            try:
                raw = _unb64(configured.get_secret_value().strip())
            except (binascii.Error, ValueError):
                raw = b""
            if len(raw) != 32:
                raise ValueError("SOLIDARITY_AUDIT_SIGNING_KEY must be base64 of a raw "
                                 "32-byte Ed25519 private key")
        else:
            private_data_dir(settings)
            raw = bytes.fromhex(settings.secret(f"audit-signing-key-{service}"))
        return cls(Ed25519PrivateKey.from_private_bytes(raw), service)

    def sign(self, service: str, notification_id: int, head: bytes | str,
             made_at: datetime | None = None) -> Checkpoint:
        head_hex = head.hex() if isinstance(head, bytes) else head
        when = _utc(made_at or datetime.now(UTC))
        signature = self._key.sign(signed_bytes(service, notification_id, head_hex, when))
        return Checkpoint(service=service, notification_id=notification_id, head=head_hex,
                          made_at=when, key_id=self.key_id, public_key=self.public_key,
                          signature=_b64(signature))


def verify_signature(cp: Checkpoint, trusted_public_keys: Iterable[str] | None = None) -> bool:
    """Whether ``cp`` is signed by the key it names (and that key is trusted, when a set
    of trusted public keys, base64, is given)."""
    try:
        raw = _unb64(cp.public_key)
        signature = _unb64(cp.signature)
        if len(raw) != 32 or key_id_of(raw) != cp.key_id:
            return False
        if trusted_public_keys is not None and cp.public_key not in set(trusted_public_keys):
            return False
        Ed25519PublicKey.from_public_bytes(raw).verify(signature, cp.message())
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True


def trusted_keys(settings: Settings, services: Iterable[str]) -> frozenset[str]:
    """The public keys a verifier trusts: ``audit_trusted_keys`` if set, else those of
    this deployment's signers for ``services``."""
    if settings.audit_trusted_keys:
        return frozenset(settings.audit_trusted_keys)
    return frozenset(Signer.from_settings(settings, s).public_key for s in services)


class CheckpointStore:
    """Checkpoints kept in a database (``audit_checkpoints``)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        ensure_tables(engine, checkpoint_metadata)

    def add(self, cp: Checkpoint) -> bool:
        """Keep ``cp``; False if it was already kept."""
        row = cp.to_dict() | {"made_at": _utc(cp.made_at)}
        try:
            with self.engine.begin() as conn:
                conn.execute(sa.insert(audit_checkpoints).values(**row))
        except sa_exc.IntegrityError:
            return False
        return True

    def latest(self, service: str) -> Checkpoint | None:
        found = self.list(service, newest_first=True, limit=1)
        return found[0] if found else None

    def list(self, service: str | None = None, *, newest_first: bool = False,
             limit: int | None = None) -> list[Checkpoint]:
        t = audit_checkpoints
        order = [t.c.notification_id, t.c.made_at]
        query = sa.select(t).order_by(*(c.desc() for c in order) if newest_first else order)
        if service is not None:
            query = query.where(t.c.service == service)
        if limit is not None:
            query = query.limit(limit)
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [Checkpoint(service=r["service"], notification_id=int(r["notification_id"]),
                           head=r["head"], made_at=_utc(r["made_at"]), key_id=r["key_id"],
                           public_key=r["public_key"], signature=r["signature"])
                for r in rows]


def make_checkpoint(chainer: Chainer, signer: Signer, engine: Engine) -> Checkpoint:
    """Chain everything saved so far, sign the head and keep the checkpoint in the
    service's own table. If the head has not moved since the last checkpoint this key
    signed, that one is returned again (nothing new to sign)."""
    head_id, head = chainer.catch_up()
    store = CheckpointStore(engine)
    last = store.latest(signer.service)
    if (last is not None and last.notification_id == head_id and last.head == head.hex()
            and last.key_id == signer.key_id):
        return last
    cp = signer.sign(signer.service, head_id, head)
    store.add(cp)
    return cp
