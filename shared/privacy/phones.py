"""The phone index: UK numbers normalised to E.164, then HMAC-SHA256 with a key derived
from the master key, to find a known caller without storing the number. The hash is
personal data too: it lives in a mutable table outside the event store, and erasure
deletes its rows.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from shared.kernel import InvalidCommand
from shared.privacy.keys import derive_key

phone_metadata = sa.MetaData()

phone_index = sa.Table(
    "phone_index",
    phone_metadata,
    sa.Column("phone_hash", sa.String(64), primary_key=True),
    sa.Column("subject_id", sa.String(64), nullable=False, index=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)


_UK_MOBILE_OR_LANDLINE = re.compile(r"^\+44[1-9]\d{8,9}$")


def normalise_uk_phone(raw: str) -> str:
    """E.164 for a UK number written as 07..., +447..., 447..., 00447..., with spaces,
    dashes, dots or brackets. Raises InvalidCommand naming `phone` otherwise."""
    if not isinstance(raw, str):
        raise InvalidCommand("phone", "must be a string")
    cleaned = re.sub(r"[\s\-().]", "", raw)
    if cleaned.startswith("00"):
        cleaned = "+" + cleaned[2:]
    if cleaned.startswith("+44"):
        rest = cleaned[3:]
    elif cleaned.startswith("44") and len(cleaned) >= 12:
        rest = cleaned[2:]
    elif cleaned.startswith("0"):
        rest = cleaned[1:]
    else:
        raise InvalidCommand("phone", "is not a UK phone number")
    rest = rest.removeprefix("0")  # "+44 (0)7700 ..." written with the trunk zero
    number = "+44" + rest
    if not _UK_MOBILE_OR_LANDLINE.match(number):
        raise InvalidCommand("phone", "is not a UK phone number")
    return number


class PhoneIndex:
    """Keyed hashes of phone numbers, to find a known caller without storing the number."""

    def __init__(self, engine: Engine, master_key: bytes) -> None:
        self.engine = engine
        self._key = derive_key(master_key, "phone-hash")
        phone_metadata.create_all(engine)

    def hash(self, phone: str) -> str:
        return hmac.new(self._key, normalise_uk_phone(phone).encode(), hashlib.sha256).hexdigest()

    def find(self, phone: str) -> str | None:
        digest = self.hash(phone)
        with self.engine.connect() as conn:
            return conn.execute(
                sa.select(phone_index.c.subject_id).where(phone_index.c.phone_hash == digest)
            ).scalar()

    def claim(self, phone: str, subject_id: str) -> str | None:
        """Record the number for the subject. If another subject holds it, change nothing
        and return that subject's id."""
        digest = self.hash(phone)
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    sa.insert(phone_index).values(
                        phone_hash=digest, subject_id=subject_id, created_at=datetime.now(UTC)
                    )
                )
        except IntegrityError:
            holder = self.find(phone)
            if holder is None:  # released meanwhile: try once more
                return self.claim(phone, subject_id)
            return None if holder == subject_id else holder
        return None

    def release(self, phone: str) -> None:
        digest = self.hash(phone)
        with self.engine.begin() as conn:
            conn.execute(sa.delete(phone_index).where(phone_index.c.phone_hash == digest))

    def erase_subject(self, subject_id: str, conn: Connection | None = None) -> int:
        stmt = sa.delete(phone_index).where(phone_index.c.subject_id == subject_id)
        if conn is not None:
            return int(conn.execute(stmt).rowcount)
        with self.engine.begin() as c:
            return int(c.execute(stmt).rowcount)
