"""The HTTP contract changes only where an issue changes it: every service's OpenAPI
document equals its snapshot, descriptions aside (see ``openapi.py``). Each service
serves its own document and docs page as it would behind the gateway, the docs pages
load nothing from another host, and every error is documented as a problem."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import pytest
from fastapi import APIRouter, Depends, FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel

from services.registry import SERVICES
from services.system import System
from shared.config import Settings
from shared.web.auth import Allow, Principal, Role
from shared.web.deps import IfMatch
from shared.web.openapi import contract
from tests.contract.openapi import documents, snapshot_path, without_prose


def _differences(expected: Any, actual: Any, path: str = "") -> list[str]:
    if type(expected) is not type(actual):
        return [f"{path or '/'}: {type(expected).__name__} became {type(actual).__name__}"]
    if isinstance(expected, dict):
        out = [f"{path}/{k}: removed" for k in expected if k not in actual]
        out += [f"{path}/{k}: added" for k in actual if k not in expected]
        for k in expected.keys() & actual.keys():
            out += _differences(expected[k], actual[k], f"{path}/{k}")
        return out
    if isinstance(expected, list) and len(expected) == len(actual):
        return [d for i, (e, a) in enumerate(zip(expected, actual, strict=True))
                for d in _differences(e, a, f"{path}[{i}]")]
    return [] if expected == actual else [f"{path or '/'}: {expected!r:.60} became {actual!r:.60}"]


@pytest.fixture(scope="module")
def current(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return documents(Path(tmp_path_factory.mktemp("contract")))


@pytest.mark.parametrize("name", [*SERVICES, "all"])
def test_the_openapi_document_is_the_snapshot(current: dict[str, Any], name: str) -> None:
    expected = json.loads(snapshot_path(name).read_text())
    diff = _differences(expected, current[name])
    assert not diff, (
        f"{name}'s HTTP contract changed ({len(diff)} differences, first: {diff[:5]}). If an "
        "issue changes it, rewrite the snapshots: .venv/bin/python -m tests.contract.openapi"
    )


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, TestClient]]:
    """The app of the whole system (``all``) and of each service alone, over ASGI without
    their lifespan: nothing connects to NATS."""
    settings = Settings(data_dir=Path(tmp_path_factory.mktemp("served")),
                        nats_url="nats://127.0.0.1:1")
    systems = {name: System(settings, SERVICES if name == "all" else [name])
               for name in (*SERVICES, "all")}
    try:
        yield {name: TestClient(system.http_app()) for name, system in systems.items()}
    finally:
        for system in systems.values():
            for runtime in system.runtimes.values():
                runtime.close()


@pytest.mark.parametrize("name", SERVICES)
def test_each_service_serves_its_own_document_as_behind_the_gateway(
        served: dict[str, TestClient], name: str) -> None:
    own = served["all"].get(f"/{name}/openapi.json")
    assert own.status_code == 200, own.text
    alone = served[name].get(f"/{name}/openapi.json").json()
    assert own.json() == alone
    expected = json.loads(snapshot_path(name).read_text())
    assert _differences({**expected, "info": None}, {**without_prose(alone), "info": None}) == []
    everything = served["all"].get("/openapi.json").json()
    assert set(alone["paths"]) == {p for p in everything["paths"] if p.startswith(f"/{name}/")}


@pytest.mark.parametrize("page", ["/docs", *(f"/{name}/docs" for name in SERVICES)])
def test_the_docs_pages_load_nothing_from_another_host(
        served: dict[str, TestClient], page: str) -> None:
    client = served["all"]
    html = client.get(page)
    assert html.status_code == 200
    assert html.headers["content-type"].startswith("text/html")
    urls = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html.text)
    urls += re.findall(r"""url:\s*['"]([^'"]+)['"]""", html.text)
    assert len(urls) >= 4, urls  # script, stylesheet, icon, document
    for url in urls:
        assert url.startswith("/") and not url.startswith("//"), f"{page} loads {url}"
        assert client.get(url).status_code == 200, url
    assert "cdn" not in html.text.lower()
    assert client.get("/redoc").status_code == 404  # FastAPI's own pages load a CDN


def test_every_error_is_a_problem_and_every_operation_says_who_may_call_it(
        current: dict[str, Any]) -> None:
    doc = current["all"]
    responses = doc["components"]["responses"]
    public = {("get", path) for path in doc["paths"] if path.endswith("/health")}
    public.add(("post", "/contact/texts/inbound"))
    assert doc["components"]["securitySchemes"]["bearer"] == {
        "type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            where = f"{method.upper()} {path}"
            if (method, path) in public:
                assert operation["security"] == [], where
            else:
                assert operation["security"] == [{"bearer": []}], where
                assert {"401", "403"} <= set(operation["responses"]), where
            assert "503" in operation["responses"], where
            for status, response in operation["responses"].items():
                if int(status) < 400:
                    continue
                if "$ref" in response:
                    response = responses[response["$ref"].rsplit("/", 1)[-1]]
                problem = response["content"]["application/problem+json"]["schema"]
                assert problem == {"$ref": "#/components/schemas/Problem"}, (where, status)
    assert "HTTPValidationError" not in doc["components"]["schemas"]


class _Status(BaseModel):
    up: bool


_ALLOW = Allow(Role.COORDINATOR)


def test_the_contract_is_read_from_the_routes_not_from_a_list() -> None:
    """``contract`` knows no endpoint: a route that depends on ``Allow`` is bearer-only
    with 401/403, one that reads If-Match documents it and 412, and what a route says of
    a status itself (its words, its own body) is kept, with the problem beside it."""
    router = APIRouter(prefix="/demo")

    @router.get("/status", responses={503: {"model": _Status, "description": "Down."}})
    def status() -> _Status:
        return _Status(up=True)

    @router.get("/things/lookup", responses={404: {"description": "No such number."}})
    def lookup(_p: Annotated[Principal, Depends(_ALLOW)], phone: str) -> _Status:
        return _Status(up=True)

    @router.put("/things/{thing_id}")
    def replace(thing_id: int, body: _Status, _p: Annotated[Principal, Depends(_ALLOW)],
                if_match: IfMatch) -> _Status:
        return body

    app = FastAPI()
    app.include_router(router)
    doc = contract(app.openapi(), app.routes)
    status_op = doc["paths"]["/demo/status"]["get"]
    assert status_op["security"] == []
    assert set(status_op["responses"]) == {"200", "503"}
    down = status_op["responses"]["503"]
    assert down["description"] == "Down."
    assert set(down["content"]) == {"application/json", "application/problem+json"}
    lookup_op = doc["paths"]["/demo/things/lookup"]["get"]
    assert lookup_op["security"] == [{"bearer": []}]
    assert set(lookup_op["responses"]) == {"200", "401", "403", "404", "422", "503"}
    assert lookup_op["responses"]["404"]["description"] == "No such number."
    replace_op = doc["paths"]["/demo/things/{thing_id}"]["put"]
    assert set(replace_op["responses"]) == {
        "200", "400", "401", "403", "404", "409", "412", "413", "415", "422", "503"}
    assert replace_op["responses"]["422"] == {"$ref": "#/components/responses/Unprocessable"}
    assert [p["name"] for p in replace_op["parameters"] if p["in"] == "header"] == ["If-Match"]
    assert "HTTPValidationError" not in doc["components"]["schemas"]
