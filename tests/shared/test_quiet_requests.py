"""`solidarity up` on a terminal keeps request lines that went well and fast at debug,
so a client polling /health does not flood the screen; failures and slow requests are
still logged at info."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from shared.logging import configure_logging
from shared.web.middleware import install_http_basics


def _app(**quiet: object) -> FastAPI:
    app = FastAPI()

    @app.get("/ok")
    def ok() -> dict[str, str]:
        return {"status": "ok"}

    install_http_basics(app, 65536, **quiet)  # type: ignore[arg-type]
    return app


@pytest.fixture(autouse=True)
def _json_logs() -> Iterator[None]:
    configure_logging("json", "INFO")
    yield
    configure_logging("console", "WARNING")


def _request_lines(err: str) -> list[dict[str, object]]:
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("event") == "request"]


def test_quiet_logs_only_failed_or_slow_requests(capsys: pytest.CaptureFixture[str]) -> None:
    with TestClient(_app(quiet=True)) as client:
        assert client.get("/ok").status_code == 200
        assert client.get("/missing").status_code == 404
    lines = _request_lines(capsys.readouterr().err)
    assert [(line["path"], line["status"]) for line in lines] == [("/missing", 404)]

    with TestClient(_app(quiet=True, slow_ms=0.000001)) as client:
        client.get("/ok")
    assert [line["path"] for line in _request_lines(capsys.readouterr().err)] == ["/ok"]


def test_not_quiet_logs_every_request(capsys: pytest.CaptureFixture[str]) -> None:
    with TestClient(_app()) as client:
        client.get("/ok")
        client.get("/ok")
    assert len(_request_lines(capsys.readouterr().err)) == 2
