"""The HTTP contract as the server keeps it: every service's OpenAPI document says who
may call each operation and every error it can answer, once, for all services.

FastAPI documents what an endpoint declares: its parameters, its body, its success
answer and a 422 of its own shape (``HTTPValidationError``) that this server never
sends. The server answers every error as an RFC 9457 problem (``shared.web.problems``)
and authenticates with bearer tokens (``shared.web.auth``), and that is what clients
and schemathesis must be told. ``contract`` post-processes a generated document from
what the routes themselves say, not from a list of endpoints:

- the bearer scheme (``components.securitySchemes.bearer``), and ``security`` on each
  operation: bearer where the route depends on ``Allow``, none where it does not
  (``/health``; the SMS webhook, authenticated by its signature);
- the errors as ``application/problem+json`` with the shared ``Problem`` schema:
  401 and 403 on authenticated operations, 404 where there is a path parameter, 409 on
  writes, 412 where the route reads ``If-Match`` (the header is documented there too),
  400, 413 and 415 where there is a body, 422 where there are parameters or a body,
  503 everywhere; an error status a route declares itself (the webhook's 403, a 404
  of a lookup) keeps its description and gets the problem content.

``install_openapi`` serves the result: the combined document at ``/openapi.json`` and
``/docs``, and each service's own at ``/<service>/openapi.json`` and
``/<service>/docs``, as it would behind the gateway. The docs pages load Swagger UI
from the ``fastapi-offline`` package, served here, never from a CDN.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.dependencies.models import Dependant
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.routing import APIRoute, RouteContext, iter_route_contexts
from fastapi.staticfiles import StaticFiles
from starlette.routing import BaseRoute

from shared.web.auth import Allow
from shared.web.deps import expected_version
from shared.web.problems import PROBLEM_MEDIA_TYPE

BEARER = "bearer"
PROBLEM = "Problem"
PROBLEM_FIELD_ERROR = "ProblemFieldError"
WRITES = frozenset({"post", "put", "patch", "delete"})
IF_MATCH = "If-Match"
ASSETS_PACKAGE = ("fastapi_offline", "static")  # Swagger UI's bundle, css and favicon

# What each error means here, as the shared response components (components.responses)
# every operation refers to; a route that describes a status itself keeps its words.
ERRORS: dict[int, tuple[str, str]] = {
    400: ("BadRequest", "The body could not be read."),
    401: ("Unauthorized", "No bearer token, or one that is not valid (expired, wrong "
                          "signature, unknown role)."),
    403: ("Forbidden", "The token's role may not do this."),
    404: ("NotFound", "No such resource."),
    409: ("Conflict", "The request conflicts with what is stored (a duplicate, or another "
                      "request changed the resource at the same time)."),
    412: ("PreconditionFailed", "If-Match does not name the resource's current version "
                                "(the answer's ETag does); nothing changed."),
    413: ("ContentTooLarge", "The body is larger than the service takes."),
    415: ("UnsupportedMediaType", "The body is not of a media type this operation takes."),
    422: ("Unprocessable", "A parameter or a body field is not valid (each is named in "
                          "`errors`), or a rule of the service refused the request."),
    503: ("ServiceUnavailable", "The service cannot serve now (its store is not "
                               "reachable); try again later."),
}

# FastAPI's own validation answer, which this server never sends.
FASTAPI_VALIDATION = ("HTTPValidationError", "ValidationError")

SCHEMAS: dict[str, Any] = {
    PROBLEM: {
        "title": PROBLEM,
        "description": "An RFC 9457 problem: every error this service answers.",
        "type": "object",
        "required": ["type", "title", "status", "detail"],
        "properties": {
            "type": {"type": "string", "format": "uri",
                     "description": "Names the kind of problem."},
            "title": {"type": "string", "description": "The kind of problem, in words."},
            "status": {"type": "integer", "minimum": 400, "maximum": 599,
                       "description": "The HTTP status."},
            "detail": {"type": "string", "description": "What went wrong this time."},
            "instance": {"type": "string", "description": "The path it happened on."},
            "errors": {
                "type": "array",
                "items": {"$ref": f"#/components/schemas/{PROBLEM_FIELD_ERROR}"},
                "description": "For a request that is not valid: each bad field.",
            },
        },
    },
    PROBLEM_FIELD_ERROR: {
        "title": PROBLEM_FIELD_ERROR,
        "type": "object",
        "required": ["field", "message"],
        "properties": {
            "field": {"type": "string",
                      "description": "Where: `body.started_at`, `query.limit`, ..."},
            "message": {"type": "string"},
            "code": {"type": "string", "description": "The kind of error, for programs."},
        },
    },
}

SECURITY_SCHEME = {
    "type": "http",
    "scheme": "bearer",
    "bearerFormat": "JWT",
    "description": "A JWT signed by the line (HS256) with claims `sub`, `role` "
                   "(supporter, coordinator, auditor, partner), `name` and `exp`.",
}

HEADERS: dict[int, dict[str, Any]] = {
    401: {"WWW-Authenticate": {"description": "The bearer challenge.",
                               "schema": {"type": "string"}}},
    412: {"ETag": {"description": "The resource's current version.",
                   "schema": {"type": "string"}}},
}


def _dependencies(dependant: Dependant) -> Iterator[Dependant]:
    for sub in dependant.dependencies:
        yield sub
        yield from _dependencies(sub)


def _api_routes(routes: Iterable[BaseRoute | RouteContext]) -> Iterator[RouteContext]:
    """Every API route as served (FastAPI keeps included routers whole: a route's path
    and dependencies are those of its context, prefix and router dependencies included)."""
    for context in iter_route_contexts(list(routes)):
        if isinstance(context.original_route, APIRoute) and context.include_in_schema:
            yield context


def _calls(route: RouteContext) -> list[Any]:
    return [d.call for d in _dependencies(route.dependant)]


def _routes_by_operation(routes: Iterable[BaseRoute | RouteContext]
                         ) -> dict[tuple[str, str], RouteContext]:
    return {(route.path_format or "", method.lower()): route
            for route in _api_routes(routes) for method in route.methods or ()}


def _problem_content() -> dict[str, Any]:
    return {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": f"#/components/schemas/{PROBLEM}"}}}


def _error_statuses(method: str, operation: dict[str, Any], route: RouteContext | None
                    ) -> set[int]:
    calls = _calls(route) if route is not None else []
    parameters = operation.get("parameters", [])
    has_body = "requestBody" in operation
    statuses = {503}
    if any(isinstance(call, Allow) for call in calls):
        statuses |= {401, 403}
    if any(p.get("in") == "path" for p in parameters):
        statuses.add(404)
    if method in WRITES:
        statuses.add(409)
    if expected_version in calls:
        statuses.add(412)
    if has_body:
        statuses |= {400, 413, 415}
    if parameters or has_body:
        statuses.add(422)
    return statuses


def _document_if_match(operation: dict[str, Any]) -> None:
    parameters = operation.setdefault("parameters", [])
    if any(p.get("in") == "header" and p.get("name", "").lower() == IF_MATCH.lower()
           for p in parameters):
        return
    parameters.append({
        "name": IF_MATCH,
        "in": "header",
        "required": False,
        "description": "The ETag of the version this change is based on; a stale one "
                       "is refused with 412 and nothing changes.",
        "schema": {"type": "string"},
    })


def _is_fastapi_default(declared: dict[str, Any]) -> bool:
    refs = [body.get("schema", {}).get("$ref", "").rsplit("/", 1)[-1]
            for body in (declared.get("content") or {}).values()]
    return bool(refs) and all(ref in FASTAPI_VALIDATION for ref in refs)


def _error_response(status: int, declared: dict[str, Any] | None) -> dict[str, Any]:
    """The shared response of this status, or the route's own (with its description and
    any body it documents) answering a problem too."""
    if (declared is None or _is_fastapi_default(declared)) and status in ERRORS:
        return {"$ref": f"#/components/responses/{ERRORS[status][0]}"}
    response = dict(declared or {})
    content = {media: body for media, body in (response.get("content") or {}).items()
               if body.get("schema")}  # FastAPI writes an empty JSON body for a bare status
    content.update(_problem_content())
    response["content"] = content
    if not response.get("description"):
        response["description"] = ERRORS.get(status, ("", "An error, as a problem."))[1]
    if status in HEADERS:
        response["headers"] = {**HEADERS[status], **response.get("headers", {})}
    return response


def _responses_component(names: set[str]) -> dict[str, Any]:
    out = {}
    for status, (name, description) in sorted(ERRORS.items()):
        if name in names:
            out[name] = {"description": description, "content": _problem_content()}
            if status in HEADERS:
                out[name]["headers"] = copy.deepcopy(HEADERS[status])
    return out


def _referenced(doc: Any) -> Iterator[str]:
    if isinstance(doc, dict):
        ref = doc.get("$ref")
        if isinstance(ref, str):
            yield ref.rsplit("/", 1)[-1]
        for value in doc.values():
            yield from _referenced(value)
    elif isinstance(doc, list):
        for value in doc:
            yield from _referenced(value)


def contract(doc: dict[str, Any], routes: Iterable[BaseRoute | RouteContext]
             ) -> dict[str, Any]:
    """The document with security and problems declared (a new dict; ``doc`` is kept)."""
    doc = copy.deepcopy(doc)
    by_operation = _routes_by_operation(routes)
    for path, operations in doc.get("paths", {}).items():
        for method, operation in operations.items():
            route = by_operation.get((path, method))
            calls = _calls(route) if route is not None else []
            authenticated = any(isinstance(call, Allow) for call in calls)
            operation["security"] = [{BEARER: []}] if authenticated else []
            if expected_version in calls:
                _document_if_match(operation)
            responses = operation.setdefault("responses", {})
            statuses = _error_statuses(method, operation, route)
            statuses |= {int(s) for s in responses if s.isdigit() and int(s) >= 400}
            for status in sorted(statuses):
                responses[str(status)] = _error_response(status, responses.get(str(status)))
    components = doc.setdefault("components", {})
    responses_used = set(_referenced(doc.get("paths", {})))
    components["responses"] = {**components.get("responses", {}),
                               **_responses_component(responses_used)}
    schemas = components.setdefault("schemas", {})
    schemas.update(copy.deepcopy(SCHEMAS))
    components.setdefault("securitySchemes", {})[BEARER] = dict(SECURITY_SCHEME)
    for name in FASTAPI_VALIDATION:  # HTTPValidationError first: it names the other
        others = {k: v for k, v in schemas.items() if k != name}
        if name not in set(_referenced(doc["paths"])) | set(_referenced(others)):
            schemas.pop(name, None)
    components["schemas"] = dict(sorted(schemas.items()))
    return doc


def service_routes(routes: Iterable[BaseRoute], service: str) -> list[RouteContext]:
    """A service's routes: every service's router has the prefix ``/<service>``."""
    prefix = f"/{service}/"
    return [r for r in _api_routes(routes) if (r.path_format or "").startswith(prefix)]


def _docs_page(request: Request, title: str, openapi_path: str, assets: str) -> HTMLResponse:
    root = request.scope.get("root_path", "")
    return get_swagger_ui_html(
        openapi_url=root + openapi_path,
        title=title,
        swagger_js_url=f"{root}{assets}/swagger-ui-bundle.js",
        swagger_css_url=f"{root}{assets}/swagger-ui.css",
        swagger_favicon_url=f"{root}{assets}/favicon.png",
        oauth2_redirect_url=None,
        swagger_ui_parameters={"validatorUrl": None},
    )


def _serve_docs(app: FastAPI, prefix: str, title: str, document: Callable[[], dict[str, Any]],
                *, document_route: bool = True) -> None:
    openapi_path, docs_path, assets = f"{prefix}/openapi.json", f"{prefix}/docs", \
        f"{prefix}/docs/assets"
    app.mount(assets, StaticFiles(packages=[ASSETS_PACKAGE]), name=f"docs-assets{prefix}")

    if document_route:
        async def openapi_json() -> JSONResponse:
            return JSONResponse(document())

        app.add_api_route(openapi_path, openapi_json, methods=["GET"],
                          include_in_schema=False)

    async def docs(request: Request) -> HTMLResponse:
        return _docs_page(request, title, openapi_path, assets)

    app.add_api_route(docs_path, docs, methods=["GET"], include_in_schema=False)


def install_openapi(app: FastAPI, services: Sequence[str]) -> None:
    """Serve the contract: ``app.openapi()`` (at ``/openapi.json``) is the combined
    document through ``contract``; each service's own document and docs page are at
    ``/<service>/openapi.json`` and ``/<service>/docs``, the combined page at ``/docs``.
    Build the app with ``docs_url=None, redoc_url=None`` (FastAPI's pages load a CDN)."""
    generate = app.openapi
    cache: dict[str, dict[str, Any]] = {}

    def combined() -> dict[str, Any]:
        if "" not in cache:
            cache[""] = contract(generate(), app.routes)
        return cache[""]

    def own(service: str) -> Callable[[], dict[str, Any]]:
        def document() -> dict[str, Any]:
            if service not in cache:
                routes = service_routes(app.routes, service)
                doc = get_openapi(
                    title=app.title,
                    version=app.version,
                    openapi_version=app.openapi_version,
                    summary=f"{app.title}: the {service} service",
                    routes=routes,
                )
                cache[service] = contract(doc, routes)
            return cache[service]

        return document

    app.openapi = combined  # type: ignore[method-assign]
    _serve_docs(app, "", f"{app.title}: API", combined, document_route=False)
    for service in services:
        _serve_docs(app, f"/{service}", f"{app.title}: {service} API", own(service))
