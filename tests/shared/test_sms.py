"""Texts without I/O: the provider's request signature, the Twilio REST adapter (against
an httpx.MockTransport standing in for Twilio: never the network), and the domain's
rule that a reply needs a known, consenting caller."""

from __future__ import annotations

import base64
from urllib.parse import parse_qsl

import httpx
import pytest

from shared.sms import (
    SmsSendError,
    TwilioSmsSender,
    twilio_signature,
    valid_twilio_signature,
)

# The worked example of Twilio's webhook-security documentation (auth token 12345).
DOC_URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
DOC_PARAMS = {
    "CallSid": "CA1234567890ABCDE",
    "Caller": "+14158675310",
    "Digits": "1234",
    "From": "+14158675310",
    "To": "+18005551212",
}
DOC_SIGNATURE = "GvWf1cFY/Q7PnoempGyD5oXAezc="

# twilio-python's own test vectors (tests/unit/test_request_validator.py).
LIB_PARAMS = {**DOC_PARAMS, "Caller": "+14158675309", "From": "+14158675309"}
LIB_SIGNATURE = "RSOYDt4T1cUTdK1PDd93/VVr8B8="


def test_twilio_documented_example() -> None:
    assert twilio_signature("12345", DOC_URL, DOC_PARAMS) == DOC_SIGNATURE
    assert valid_twilio_signature("12345", DOC_URL, DOC_PARAMS, DOC_SIGNATURE)


def test_twilio_library_vectors() -> None:
    assert twilio_signature("12345", DOC_URL, LIB_PARAMS) == LIB_SIGNATURE
    # A name sent twice contributes each value, sorted.
    repeated = [("Sid", "CA123"), ("SidAccount", "AC123"), ("Digits", "5678"),
                ("Digits", "1234")]
    assert twilio_signature("12345", DOC_URL, repeated) == "IK+Dwps556ElfBT0I3Rgjkr1wJU="


def test_the_string_signed_is_url_then_sorted_names_and_values() -> None:
    import hashlib
    import hmac

    params = {"To": "+447700900001", "Body": "hi there", "From": "+447700900123",
              "MessageSid": "SM1", "AccountSid": "AC1"}
    data = ("https://line.example/contact/texts/inbound"
            "AccountSidAC1Bodyhi thereFrom+447700900123MessageSidSM1To+447700900001")
    expected = base64.b64encode(hmac.new(b"tok", data.encode(), hashlib.sha1).digest()).decode()
    assert twilio_signature("tok", "https://line.example/contact/texts/inbound",
                            params) == expected
    # Order of arrival does not matter; mapping or pairs alike.
    assert twilio_signature("tok", "https://line.example/contact/texts/inbound",
                            list(reversed(list(params.items())))) == expected


def test_a_default_port_may_be_signed_or_not() -> None:
    # Twilio may sign https://host/... as https://host:443/...; its libraries accept both.
    with_port = "https://mycompany.com:443/myapp.php?foo=1&bar=2"
    assert twilio_signature("12345", with_port, LIB_PARAMS) == "kvajT1Ptam85bY51eRf/AJRuM3w="
    assert valid_twilio_signature("12345", DOC_URL, LIB_PARAMS, "kvajT1Ptam85bY51eRf/AJRuM3w=")
    assert valid_twilio_signature("12345", with_port, LIB_PARAMS, LIB_SIGNATURE)
    # Another port is another URL.
    other = "https://mycompany.com:8443/myapp.php?foo=1&bar=2"
    assert not valid_twilio_signature("12345", other, LIB_PARAMS, LIB_SIGNATURE)


@pytest.mark.parametrize(
    ("token", "url", "params", "signature"),
    [
        ("12345", DOC_URL, {**DOC_PARAMS, "Digits": "9999"}, DOC_SIGNATURE),  # tampered
        ("12345", DOC_URL, {**DOC_PARAMS, "Extra": "x"}, DOC_SIGNATURE),  # field added
        ("54321", DOC_URL, DOC_PARAMS, DOC_SIGNATURE),  # another account
        ("12345", DOC_URL.replace("https", "http"), DOC_PARAMS, DOC_SIGNATURE),
        ("12345", "https://mycompany.com/myapp.php", DOC_PARAMS, DOC_SIGNATURE),  # no query
        ("12345", DOC_URL, DOC_PARAMS, None),  # missing
        ("12345", DOC_URL, DOC_PARAMS, ""),
        ("12345", DOC_URL, DOC_PARAMS, "not base64 at all"),
        ("", DOC_URL, DOC_PARAMS, DOC_SIGNATURE),  # no token configured: nothing passes
    ],
)
def test_wrong_or_missing_signatures_fail(token: str, url: str, params: dict[str, str],
                                          signature: str | None) -> None:
    assert not valid_twilio_signature(token, url, params, signature)


# ----------------------------------------------------------------- the REST adapter

SID = "AC0123456789abcdef0123456789abcdef"


def _twilio(handler: httpx.MockTransport) -> TwilioSmsSender:
    return TwilioSmsSender(SID, "secret-token", "+447700900000", transport=handler)


def test_twilio_sender_posts_the_message_and_returns_its_sid() -> None:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(201, json={"sid": "SM" + "a" * 32, "status": "queued"})

    ref = _twilio(httpx.MockTransport(handle)).send("+447700900123", "You can text us any time.")
    assert ref == "SM" + "a" * 32
    (request,) = seen
    assert request.method == "POST"
    assert str(request.url) == (
        f"https://api.twilio.com/2010-04-01/Accounts/{SID}/Messages.json")
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert dict(parse_qsl(request.content.decode())) == {
        "To": "+447700900123", "From": "+447700900000", "Body": "You can text us any time.",
    }
    scheme, _, credentials = request.headers["authorization"].partition(" ")
    assert scheme == "Basic"
    assert base64.b64decode(credentials).decode() == f"{SID}:secret-token"


def test_twilio_refusal_is_an_error_without_the_number_or_body() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, json={
            "code": 21211, "status": 400,
            "message": "The 'To' number +447700900123 is not a valid phone number.",
        })

    with pytest.raises(SmsSendError) as info:
        _twilio(httpx.MockTransport(refuse)).send("+447700900123", "a private phrase")
    assert "21211" in str(info.value) and "400" in str(info.value)
    assert "447700900123" not in str(info.value) and "private" not in str(info.value)


def test_twilio_unreachable_or_odd_replies_are_errors() -> None:
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(SmsSendError, match="could not be reached"):
        _twilio(httpx.MockTransport(down)).send("+447700900123", "hello")
    with pytest.raises(SmsSendError, match="no message sid"):
        _twilio(httpx.MockTransport(lambda r: httpx.Response(201, text="ok"))).send(
            "+447700900123", "hello")
    with pytest.raises(SmsSendError, match="500"):
        _twilio(httpx.MockTransport(lambda r: httpx.Response(500))).send("+447700900123", "x")


def test_twilio_sender_needs_its_credentials() -> None:
    with pytest.raises(ValueError):
        TwilioSmsSender("", "token", "+447700900000")
    with pytest.raises(ValueError):
        TwilioSmsSender(SID, "token", "")
