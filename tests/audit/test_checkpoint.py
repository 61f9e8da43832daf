"""Signed checkpoints: the signature round trip, what breaks it, the JSON form that
travels on the bus, the key from settings or kept in the data dir (0600, reused), and
the checkpoints table on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import json
import stat
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from services.contact.app import ContactApplication
from services.system import ServiceRuntime
from shared.audit import (
    BadCheckpoint,
    Chainer,
    Checkpoint,
    CheckpointStore,
    Signer,
    make_checkpoint,
    trusted_keys,
    verify_signature,
)
from shared.config import Settings
from shared.kernel import acting

HEAD = bytes(range(32))


def raw_key() -> bytes:
    return Ed25519PrivateKey.generate().private_bytes(Encoding.Raw, PrivateFormat.Raw,
                                                      NoEncryption())


def test_a_checkpoint_verifies_and_any_change_to_it_does_not(tmp_path: Path) -> None:
    signer = Signer.from_settings(Settings(data_dir=tmp_path), "contact")
    cp = signer.sign("contact", 42, HEAD)
    assert (cp.service, cp.notification_id, cp.head, cp.key_id) == (
        "contact", 42, HEAD.hex(), signer.key_id)
    assert verify_signature(cp) and verify_signature(cp, [signer.public_key])
    for changed in (replace(cp, notification_id=43), replace(cp, head="00" * 32),
                    replace(cp, service="outreach"),
                    replace(cp, made_at=datetime(2024, 1, 1, tzinfo=UTC)),
                    replace(cp, signature=base64.b64encode(b"\x00" * 64).decode()),
                    replace(cp, signature="not base64!"),
                    replace(cp, key_id="0" * 16)):
        assert not verify_signature(changed)
    other = Signer(Ed25519PrivateKey.generate(), "contact")
    assert not verify_signature(cp, [other.public_key])  # not a trusted key
    forged = other.sign("contact", 42, HEAD)
    assert not verify_signature(replace(forged, public_key=cp.public_key, key_id=cp.key_id))


def test_the_json_form_round_trips_and_garbage_is_refused_without_echo() -> None:
    cp = Signer(Ed25519PrivateKey.generate(), "shift").sign("shift", 7, HEAD)
    back = Checkpoint.from_dict(json.loads(json.dumps(cp.to_dict())))
    assert back == cp and verify_signature(back)
    for bad in ("nope", {}, cp.to_dict() | {"notification_id": "7"},
                cp.to_dict() | {"notification_id": True},
                cp.to_dict() | {"made_at": "2025-01-01T00:00:00"},
                cp.to_dict() | {"head": "x" * 65}, cp.to_dict() | {"made_at": "secret-ish"}):
        with pytest.raises(BadCheckpoint) as info:
            Checkpoint.from_dict(bad)
        assert "secret-ish" not in str(info.value)


def test_the_embedded_key_is_kept_private_and_reused_per_service(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "var")
    first = Signer.from_settings(settings, "contact")
    again = Signer.from_settings(Settings(data_dir=tmp_path / "var"), "contact")  # a restart
    assert again.public_key == first.public_key
    assert Signer.from_settings(settings, "shift").public_key != first.public_key
    files = [p for p in (tmp_path / "var").rglob("*") if "audit" in p.name]
    assert len(files) == 2
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "var").stat().st_mode) == 0o700
    assert trusted_keys(settings, ["contact", "shift"]) == {
        first.public_key, Signer.from_settings(settings, "shift").public_key}


def test_a_configured_key_signs_and_is_never_shown(tmp_path: Path) -> None:
    raw = raw_key()
    secret = base64.b64encode(raw).decode()
    settings = Settings(data_dir=tmp_path, audit_signing_key=secret)
    signer = Signer.from_settings(settings, "contact")
    expected = Ed25519PrivateKey.from_private_bytes(raw).public_key().public_bytes(
        Encoding.Raw, PublicFormat.Raw)
    assert signer.public_key == base64.b64encode(expected).decode()
    assert not list(tmp_path.rglob("*audit*"))  # nothing generated
    for shown in (repr(settings), str(settings.model_dump()), repr(signer)):
        assert secret not in shown
    bad = Settings(data_dir=tmp_path, audit_signing_key=secret[:-8])
    with pytest.raises(ValueError) as info:
        Signer.from_settings(bad, "contact")
    assert secret[:-8] not in str(info.value)
    trusted = Settings(data_dir=tmp_path, audit_trusted_keys="a, b")  # type: ignore[arg-type]
    assert trusted_keys(trusted, ["contact"]) == {"a", "b"}


def test_checkpoints_are_kept_once_and_a_quiet_head_is_not_signed_again(
        app_runtime: Callable[..., ServiceRuntime], settings: Settings) -> None:
    app = app_runtime("contact").app
    assert isinstance(app, ContactApplication)
    chainer = Chainer(app.recorder, app.engine)
    signer = Signer.from_settings(settings, "contact")
    empty = make_checkpoint(chainer, signer, app.engine)
    assert (empty.notification_id, empty.head) == (0, "00" * 32) and verify_signature(empty)
    with acting("sup-1"):
        app.log_contact(channel="phone", started_at=datetime.now(UTC), issues=["housing"])
    cp = make_checkpoint(chainer, signer, app.engine)
    assert cp.notification_id == 1 and cp.head == chainer.head()[1].hex()
    assert make_checkpoint(chainer, signer, app.engine) == cp  # nothing new to sign
    store = CheckpointStore(app.engine)
    assert store.add(cp) is False  # already kept
    received = Signer(Ed25519PrivateKey.generate(), "shift").sign("shift", 9, HEAD)
    assert store.add(received) is True and store.add(received) is False
    assert store.list("contact") == [empty, cp]
    assert store.latest("shift") == received
    assert all(verify_signature(c) for c in store.list())
