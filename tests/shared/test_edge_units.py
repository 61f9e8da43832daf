"""The edge of every service without a server: request checks, tokens, problems for a
store that cannot be reached, the 405 ``Allow`` header, the health model, the CLI's
refusals and the gateway's headers. No network, no database (an in-memory ASGI
client where a response is needed)."""

from __future__ import annotations

import io
import json
import os
import stat
import sys
import time
from pathlib import Path
from typing import Any

import jwt
import psycopg
import psycopg_pool
import pytest
import sqlalchemy.exc as sa_exc
from eventsourcing import persistence as es
from fastapi import FastAPI
from fastapi.testclient import TestClient

from services import cli
from shared.config import Settings
from shared.web.auth import ALGORITHM, Role, decode_token, issue_token
from shared.web.middleware import install_http_basics
from shared.web.platform import Health
from shared.web.problems import PROBLEM_BASE, Unauthorized, install_problem_handlers
from shared.web.types import (
    MAX_JSON_DEPTH,
    MAX_POSITION,
    ascii_int,
    check_json_body,
    is_opaque_id,
    query_nul_fields,
)

ROOT = Path(__file__).resolve().parents[2]
SECRET = "a-test-secret-of-enough-length-for-hs256"
PROBLEM = "application/problem+json"


# ------------------------------------------------------------------ numbers and ids


@pytest.mark.parametrize(
    ("text", "value"),
    [("0", 0), ("17", 17), ("007", 7), (str(MAX_POSITION), MAX_POSITION),
     (str(MAX_POSITION + 1), None), ("9" * 20, None), ("9" * 400, None), ("²", None),
     ("١٢", None), ("", None), ("-1", None), ("+1", None), (" 1", None), ("1_000", None),
     ("0x10", None)],
)
def test_ascii_int_takes_only_ascii_digits_bounded_to_64_bits(text: str,
                                                              value: int | None) -> None:
    assert ascii_int(text) == value


@pytest.mark.parametrize(
    ("text", "ok"),
    [("0b6f8a3e-9c1d-4e2f-8a7b-1c2d3e4f5a6b", True),
     ("0B6F8A3E-9C1D-4E2F-8A7B-1C2D3E4F5A6B", True),
     ("0b6f8a3e9c1d4e2f8a7b1c2d3e4f5a6b", True),  # the form X-Request-ID takes
     ("07700900991-Wilhelmina.Frobisher", False), ("corr-123", False), ("", False),
     ("{0b6f8a3e-9c1d-4e2f-8a7b-1c2d3e4f5a6b}", False),
     ("urn:uuid:0b6f8a3e-9c1d-4e2f-8a7b-1c2d3e4f5a6b", False),
     ("0b6f8a3e-9c1d-4e2f-8a7b-1c2d3e4f5a6b\n", False),
     ("0b6f8a3e-9c1d-4e2f-8a7b-1c2d3e4f5a6bb", False), ("g" * 32, False)],
)
def test_only_an_opaque_uuid_is_a_correlation_id(text: str, ok: bool) -> None:
    assert is_opaque_id(text) is ok


# ------------------------------------------------------------------ request bodies


def _field(result: Any) -> list[str]:
    assert result is not None
    return [e["field"] for e in result.errors]


def test_json_body_checks_pass_ordinary_bodies_untouched() -> None:
    body = json.dumps({"channel": "phone", "issues": ["housing"], "notes": "café \\u0000"})
    for ct in ("application/json", "application/json; charset=utf-8",
               'application/json; charset="UTF-8"', "application/problem+json",
               "application/merge-patch+json; charset=utf8"):
        assert check_json_body(ct, body.encode()) is None, ct
    # Not JSON: left to the endpoint (the SMS webhook is a form).
    assert check_json_body("application/x-www-form-urlencoded", b"Body=%00") is None
    assert check_json_body(None, b"\xff\x00") is None
    assert check_json_body("application/json", b"") is None
    # An escaped backslash before u0000 is text, not a NUL.
    assert check_json_body("application/json", b'{"a": "\\\\u0000"}') is None


@pytest.mark.parametrize("charset", ["latin-1", "iso-8859-1", "utf-16", '"utf-32"', "ascii"])
def test_a_charset_other_than_utf8_is_415(charset: str) -> None:
    result = check_json_body(f"application/json; charset={charset}", b"{}")
    assert result is not None and result.status == 415
    assert result.type == "unsupported-media-type"


@pytest.mark.parametrize(
    "body",
    [b'{"name": "caf\xe9"}',  # Latin-1
     '{"name": "x"}'.encode("utf-16"),  # with a BOM
     '{"name": "x"}'.encode("utf-16-le"),  # without: NUL bytes, which json.loads accepts
     '{"name": "x"}'.encode("utf-32-be"),
     b'{"name": "\xed\xa0\x80"}',  # a UTF-8-encoded surrogate
     b'{"name": "a\x00b"}'],
)
def test_a_json_body_that_is_not_utf8_is_422_naming_body(body: bytes) -> None:
    result = check_json_body("application/json", body)
    assert result is not None and result.status == 422 and result.type == "validation"
    assert _field(result) == ["body"]


def test_json_nested_too_deep_is_422_naming_body_without_parsing_it_all() -> None:
    ok = b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH
    assert check_json_body("application/json", ok) is None
    deep = b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1)
    assert _field(check_json_body("application/json", deep)) == ["body"]
    mixed = (b'{"a":' * 20) + (b"[" * 20) + b"1" + (b"]" * 20) + (b"}" * 20)
    assert _field(check_json_body("application/json", mixed)) == ["body"]
    started = time.perf_counter()
    huge = b"[" * 10_000 + b"]" * 10_000
    assert _field(check_json_body("application/json", huge)) == ["body"]
    unclosed = b"[" * 60_000
    assert _field(check_json_body("application/json", unclosed)) == ["body"]
    assert time.perf_counter() - started < 1.0
    # Many brackets, shallow: not refused (and brackets inside strings do not count).
    wide = json.dumps({"a": [[1]] * 500, "s": "[[[[" * 100}).encode()
    assert check_json_body("application/json", wide) is None


def test_nul_characters_are_named_by_path_and_never_echoed() -> None:
    body = json.dumps({
        "supporter_ids": ["ok", "Wilhelmina\u0000Frobisher"],
        "follow_up": {"needed": True, "note": "\u0000"},
        "fine": "x",
        "k\u0000": 1,
    }).encode()
    result = check_json_body("application/json", body)
    assert result is not None and result.status == 422 and result.type == "validation"
    fields = _field(result)
    assert fields == ["body.supporter_ids.1", "body.follow_up.note", "body.k\\u0000"]
    text = json.dumps(result.errors) + result.detail
    assert "Wilhelmina" not in text and "Frobisher" not in text
    # A top-level string, and one nested in a list of lists.
    assert _field(check_json_body("application/json", b'"\\u0000"')) == ["body"]
    assert _field(check_json_body("application/json", b'[[1, "a\\u0000"]]')) == ["body.0.1"]


def test_nul_in_the_query_string_names_the_parameter() -> None:
    assert query_nul_fields(b"purpose=audit&limit=5") == []
    assert query_nul_fields(b"purpose=x%00y&limit=5&cursor=%00") == ["query.purpose",
                                                                      "query.cursor"]
    assert query_nul_fields(b"a%00b=1") == ["query.a\\u0000b"]
    assert query_nul_fields(b"purpose=%2500") == []  # a literal "%00", not a NUL


# ------------------------------------------------------------------ an app, in memory


def _app(**routes: Any) -> TestClient:
    app = FastAPI()
    install_problem_handlers(app)
    install_http_basics(app, 65536)

    @app.get("/things")
    def list_things() -> dict[str, str]:
        return {"ok": "list"}

    @app.post("/things")
    def add_thing() -> dict[str, str]:
        return {"ok": "add"}

    @app.delete("/things")
    def clear_things() -> dict[str, str]:
        return {"ok": "clear"}

    @app.get("/fail/{kind}")
    def fail(kind: str) -> None:
        raise routes["errors"][kind]

    return TestClient(app, raise_server_exceptions=False)


STORE_ERRORS: dict[str, BaseException] = {
    "sa-operational": sa_exc.OperationalError(
        "SELECT * FROM v_contacts WHERE phone = %(phone)s", {"phone": "07700900991"},
        psycopg.OperationalError("connection to server at 10.0.0.5 failed")),
    "sa-interface": sa_exc.InterfaceError("SELECT 1", {"p": "07700900991"},
                                          Exception("connection already closed")),
    "sa-pool-timeout": sa_exc.TimeoutError("QueuePool limit of size 3 overflow 5 reached"),
    "psycopg-operational": psycopg.OperationalError("terminating connection 07700900991"),
    "psycopg-interface": psycopg.InterfaceError("the connection is closed"),
    "pool-timeout": psycopg_pool.PoolTimeout("couldn't get a connection after 5.00 sec"),
    "es-operational": es.OperationalError("database \"crisisdb\" does not exist"),
    "es-interface": es.InterfaceError("connection closed 07700900991"),
    "es-database": es.DatabaseError("server closed the connection unexpectedly"),
    "es-unavailable": es.ConnectionUnavailableError("timed out getting a connection"),
}


@pytest.mark.parametrize("kind", sorted(STORE_ERRORS))
def test_a_store_that_cannot_be_reached_is_503_and_leaks_nothing(kind: str) -> None:
    client = _app(errors=STORE_ERRORS)
    r = client.get(f"/fail/{kind}")
    assert r.status_code == 503, r.text
    assert r.headers["content-type"] == PROBLEM
    assert r.headers["retry-after"] == "5"
    assert r.json()["type"] == PROBLEM_BASE + "store-unavailable"
    for leak in ("SELECT", "07700900991", "10.0.0.5", "crisisdb", "QueuePool", "phone"):
        assert leak not in r.text, leak


def test_a_store_bug_is_still_a_500_not_a_503() -> None:
    errors = {"data": es.DataError("invalid byte sequence 0x00"),
              "programming": sa_exc.ProgrammingError("SELEC", {}, Exception("syntax"))}
    client = _app(errors=errors)
    for kind in errors:
        r = client.get(f"/fail/{kind}")
        assert r.status_code == 500 and "SELEC" not in r.text


def test_405_lists_every_method_of_the_path() -> None:
    client = _app(errors={})
    r = client.put("/things")
    assert r.status_code == 405 and r.headers["content-type"] == PROBLEM
    allowed = {m.strip() for m in r.headers["allow"].split(",")}
    assert allowed == {"GET", "POST", "DELETE"}


def test_every_response_says_nosniff_and_no_store() -> None:
    client = _app(errors={"x": RuntimeError("boom")})
    for r in (client.get("/things"), client.put("/things"), client.get("/nowhere"),
              client.get("/fail/x"),
              client.post("/things", content=b"[" * 100, headers={"content-type":
                                                                  "application/json"})):
        assert r.headers["x-content-type-options"] == "nosniff", r.request.url
        assert r.headers["cache-control"] == "no-store", r.request.url
        assert len(r.headers.get_list("cache-control")) == 1


# ------------------------------------------------------------------ tokens


def _token(**claims: Any) -> str:
    now = int(time.time())
    base: dict[str, Any] = {"sub": "s-1", "role": "supporter", "name": "Sam", "iss": "solidarity",
                            "iat": now, "exp": now + 600}
    # A claim given as a function of now is made when the token is (the parameters are
    # made at collection, maybe minutes before a slow suite reaches this test).
    base.update({k: v(now) if callable(v) else v for k, v in claims.items()})
    return jwt.encode({k: v for k, v in base.items() if v is not None}, SECRET,
                      algorithm=ALGORITHM)


@pytest.mark.parametrize(
    "claims",
    [{"sub": ""}, {"sub": "x" * 101}, {"sub": "a\nb"}, {"sub": "a\x00b"}, {"sub": "\u200b"},
     {"sub": " "}, {"exp": lambda now: str(now + 600)}, {"exp": True},
     {"iat": None}, {"iat": lambda now: str(now)},
     {"exp": lambda now: now + 43200 + 60},  # 12 h and a minute
     {"exp": 253402300799},  # the year 9999
     {"iat": lambda now: now - 50_000, "exp": lambda now: now + 60}],
)
def test_tokens_refuse_bad_sub_exp_and_lifetime(claims: dict[str, Any]) -> None:
    with pytest.raises(Unauthorized):
        decode_token(SECRET, _token(**claims))


def test_tokens_within_bounds_are_accepted_and_the_bound_is_a_setting() -> None:
    now = int(time.time())
    p = decode_token(SECRET, _token(sub="x" * 100, iat=now, exp=now + 43200))
    assert p.sub == "x" * 100 and p.role is Role.SUPPORTER
    assert decode_token(SECRET, _token(sub="service:backfill")).actor == "service:backfill"
    with pytest.raises(Unauthorized):
        decode_token(SECRET, _token(exp=now + 600), max_lifetime_s=300)
    assert Settings().token_max_lifetime_s == 43200
    with pytest.raises(Unauthorized):  # the default of issue_token is the maximum
        decode_token(SECRET, issue_token(SECRET, sub="u", role="auditor"), max_lifetime_s=60)


# ------------------------------------------------------------------ the CLI


def test_token_ttl_cannot_exceed_the_maximum(monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("SOLIDARITY_JWT_SECRET", SECRET)
    assert cli.main(["token", "--role", "coordinator", "--ttl", "43201"]) == 2
    assert "43200" in capsys.readouterr().err
    assert cli.main(["token", "--role", "coordinator", "--ttl", "0"]) == 2
    capsys.readouterr()
    monkeypatch.setenv("SOLIDARITY_TOKEN_MAX_LIFETIME_S", "600")
    assert cli.main(["token", "--role", "coordinator", "--ttl", "601"]) == 2
    capsys.readouterr()
    assert cli.main(["token", "--role", "coordinator", "--ttl", "600"]) == 0
    token = capsys.readouterr().out.strip()
    assert decode_token(SECRET, token, max_lifetime_s=600).role is Role.COORDINATOR


@pytest.mark.parametrize(
    ("env", "missing"),
    [({}, ["SOLIDARITY_JWT_SECRET", "SOLIDARITY_MASTER_KEY"]),
     ({"SOLIDARITY_JWT_SECRET": SECRET}, ["SOLIDARITY_MASTER_KEY"]),
     ({"SOLIDARITY_MASTER_KEY": "ab" * 32}, ["SOLIDARITY_JWT_SECRET"]),
     ({"SOLIDARITY_JWT_SECRET": SECRET, "SOLIDARITY_MASTER_KEY": "not-hex"},
      ["SOLIDARITY_MASTER_KEY"])],
)
def test_serve_refuses_to_start_without_its_secrets(
    env: dict[str, str], missing: list[str], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    for name in list(os.environ):
        if name.startswith("SOLIDARITY_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("SOLIDARITY_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("SOLIDARITY_NATS_URL", "nats://127.0.0.1:1")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert cli.main(["serve", "contact", "--port", "1"]) == 2
    err = capsys.readouterr().err
    for name in missing:
        assert name in err
    assert not (tmp_path / "var" / "secrets").exists(), "serve generated a secret"


def test_the_banner_prints_a_token_only_to_a_terminal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = Settings(data_dir=tmp_path, jwt_secret=SECRET, nats_url="nats://x:4222")
    cli._print_banner(settings, ["contact"])
    out = capsys.readouterr().out
    assert "coordinator token" in out and "solidarity token --role coordinator" in out
    assert "eyJ" not in out  # no JWT

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    monkeypatch.setattr(sys, "stdout", terminal)
    cli._print_banner(settings, ["contact"])
    # As a line to paste: export TOKEN=<the token>
    token = next(w.removeprefix("TOKEN=") for w in terminal.getvalue().split()
                 if w.startswith("TOKEN=eyJ"))
    assert decode_token(SECRET, token).role is Role.COORDINATOR


def test_the_server_sends_no_server_header(tmp_path: Path) -> None:
    config = cli.uvicorn_config(FastAPI(), Settings(data_dir=tmp_path))
    assert config.server_header is False


# ------------------------------------------------------------------ secrets on disk


def test_secret_files_are_0600_in_a_0700_directory(tmp_path: Path) -> None:
    secrets_dir = tmp_path / "secrets"
    secrets_dir.mkdir(mode=0o755)
    secrets_dir.chmod(0o755)  # made earlier by someone with a looser umask
    old = secrets_dir / "sms-auth-token"
    old.write_text("kept")
    old.chmod(0o644)
    s = Settings(data_dir=tmp_path)
    value = s.secret("jwt-secret")
    assert len(value) == 64
    assert stat.S_IMODE(secrets_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE((secrets_dir / "jwt-secret").stat().st_mode) == 0o600
    assert s.secret("sms-auth-token") == "kept"
    assert stat.S_IMODE(old.stat().st_mode) == 0o600
    assert Settings(data_dir=tmp_path).secret("jwt-secret") == value
    assert [p.name for p in secrets_dir.iterdir() if p.name.endswith(".tmp")] == []


# ------------------------------------------------------------------ health, gateway


def test_the_public_health_model_needs_only_up_or_down() -> None:
    public = Health(service="contact", status="ok", live=True, ready=True)
    assert public.model_dump(exclude_unset=True) == {
        "service": "contact", "status": "ok", "live": True, "ready": True}
    assert set(Health.model_json_schema()["required"]) == {"service", "status", "live",
                                                           "ready"}


def test_the_gateway_sends_hsts_and_hides_its_server() -> None:
    text = (ROOT / "deploy" / "Caddyfile").read_text()
    lines = [ln.split("#")[0].strip() for ln in text.splitlines()]
    hsts = [ln for ln in lines if ln.startswith("Strict-Transport-Security")]
    assert hsts and "max-age=" in hsts[0]
    assert int(hsts[0].split("max-age=")[1].split(";")[0].strip('"')) >= 31536000
    assert "-Server" in lines
