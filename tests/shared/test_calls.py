"""The call provider's adapters: the Twilio one against a small real HTTP server started
here (what it sends, how a refusal or an unreachable provider is told, never with a
number), the embedded outbox (numbers masked), and the choice by settings."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
import sqlalchemy as sa

from shared.calls import (
    CallPlaceError,
    OutboxCallPlacer,
    TwilioCallPlacer,
    call_outbox,
    call_placer,
    delivery_of,
    dial_twiml,
    masked,
)
from shared.config import Settings

SID = "AC" + "1" * 32
TOKEN = "secret-token"
LINE = "+447700900000"
SUPPORTER = "+447700900555"
CALLER = "+447700900123"


class FakeTwilio:
    """A real HTTP server answering as Twilio's Calls resource does (or refusing)."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.answer: tuple[int, dict[str, Any]] = (201, {"sid": "CA" + "f" * 32,
                                                          "status": "queued"})
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                fake.requests.append({
                    "path": self.path, "auth": self.headers.get("Authorization"),
                    "type": self.headers.get("Content-Type"),
                    "form": parse_qs(self.rfile.read(length).decode())})
                status, body = fake.answer
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def twilio() -> Iterator[FakeTwilio]:
    fake = FakeTwilio()
    fake.thread.start()
    try:
        yield fake
    finally:
        fake.server.shutdown()
        fake.server.server_close()


def test_twilio_rings_the_supporter_then_dials_the_caller_from_the_line(
        twilio: FakeTwilio) -> None:
    placer = TwilioCallPlacer(SID, TOKEN, LINE, base=twilio.base)
    assert placer.place(SUPPORTER, CALLER) == "CA" + "f" * 32
    (request,) = twilio.requests
    assert request["path"] == f"/2010-04-01/Accounts/{SID}/Calls.json"
    assert request["auth"] == "Basic " + base64.b64encode(f"{SID}:{TOKEN}".encode()).decode()
    assert request["type"].startswith("application/x-www-form-urlencoded")
    assert request["form"] == {
        "To": [SUPPORTER], "From": [LINE],
        "Twiml": [f'<Response><Dial callerId="{LINE}">{CALLER}</Dial></Response>']}


def test_a_refusal_or_an_unreachable_provider_is_told_without_a_number(
        twilio: FakeTwilio) -> None:
    placer = TwilioCallPlacer(SID, TOKEN, LINE, base=twilio.base)
    twilio.answer = (400, {"code": 21211, "message": f"The 'To' number {SUPPORTER} is not "
                                                     "a valid phone number."})
    with pytest.raises(CallPlaceError) as refused:
        placer.place(SUPPORTER, CALLER)
    assert str(refused.value) == "the call provider refused the call (HTTP 400, code 21211)"
    twilio.answer = (201, {"status": "queued"})
    with pytest.raises(CallPlaceError, match="no call sid"):
        placer.place(SUPPORTER, CALLER)
    twilio.server.shutdown()
    twilio.server.server_close()
    with pytest.raises(CallPlaceError, match="could not be reached") as unreachable:
        TwilioCallPlacer(SID, TOKEN, LINE, base=twilio.base, timeout_s=2).place(
            SUPPORTER, CALLER)
    for error in (refused.value, unreachable.value):
        assert "7700900" not in str(error)


def test_the_twiml_is_escaped() -> None:
    assert dial_twiml('+44"1', "<x>&") == (
        "<Response><Dial callerId='+44\"1'>&lt;x&gt;&amp;</Dial></Response>")


def test_the_outbox_keeps_masked_numbers_only(tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'calls.sqlite'}")
    placer = OutboxCallPlacer(engine)
    ref = placer.place(SUPPORTER, CALLER)
    assert delivery_of(ref) == "outbox" and delivery_of("CA123") == "provider"
    (kept,) = placer.pending()
    assert (kept["ref"], kept["ring"], kept["dial"]) == (ref, "*********0555", "*********0123")
    with engine.connect() as conn:
        text = " ".join(str(v) for row in conn.execute(sa.select(call_outbox)) for v in row)
    assert "7700900" not in text and masked("0123") == "****"
    engine.dispose()


def test_settings_choose_the_placer(tmp_path: Path, twilio: FakeTwilio) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'calls.sqlite'}")
    assert isinstance(call_placer(Settings(data_dir=tmp_path), engine), OutboxCallPlacer)
    with pytest.raises(ValueError, match="SOLIDARITY_CALL_ACCOUNT_SID"):
        call_placer(Settings(data_dir=tmp_path, call_provider="twilio"), engine)
    # The SMS provider's account serves calls too unless told otherwise.
    chosen = call_placer(Settings(data_dir=tmp_path, call_provider="twilio",
                                  sms_account_sid=SID, sms_auth_token=TOKEN,
                                  sms_from_number=LINE, call_api_base=twilio.base), engine)
    assert isinstance(chosen, TwilioCallPlacer)
    assert chosen.place(SUPPORTER, CALLER).startswith("CA")
    assert twilio.requests[0]["form"]["From"] == [LINE]
    own = call_placer(Settings(data_dir=tmp_path, call_provider="twilio",
                               sms_account_sid=SID, sms_auth_token=TOKEN,
                               sms_from_number=LINE, call_line_number="+447700900999"),
                      engine)
    assert isinstance(own, TwilioCallPlacer) and own.line_number == "+447700900999"
    assert own.url == f"https://api.twilio.com/2010-04-01/Accounts/{SID}/Calls.json"
    engine.dispose()
