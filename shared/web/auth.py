"""Bearer-token auth: HS256 JWTs with claims ``sub``, ``role`` and ``name``.

Every endpoint names the roles it allows with ``Allow(...)``; no token is a 401,
a wrong role a 403, both as problems. The roles also go into the endpoint's
OpenAPI description (see ``shared.web.deps.roles_doc``).

A token's ``sub`` becomes the ``actor`` of every event it causes, stored for ever and
published: it must be a short printable id (1 to 100 characters, no control or
invisible characters, no surrounding spaces). ``exp`` and ``iat`` must be JSON numbers
(PyJWT alone takes ``"exp": "9999999999"``), and a token may live no longer than
``SOLIDARITY_TOKEN_MAX_LIFETIME_S`` (``exp - iat``; default 12 hours), so a leaked
token does not work for ever.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import jwt
from fastapi import Request

from shared.kernel import set_acting
from shared.web.problems import Forbidden, Unauthorized


class Role(StrEnum):
    SUPPORTER = "supporter"
    COORDINATOR = "coordinator"
    AUDITOR = "auditor"
    PARTNER = "partner"


ALL_ROLES = tuple(Role)
ALGORITHM = "HS256"
MAX_SUB_LENGTH = 100
DEFAULT_MAX_LIFETIME_S = 12 * 3600


@dataclass(frozen=True)
class Principal:
    sub: str
    role: Role
    name: str

    @property
    def actor(self) -> str:
        """What events record as who did it: the subject id, never the display name."""
        return self.sub


def issue_token(
    secret: str,
    *,
    sub: str,
    role: Role | str,
    name: str = "",
    issuer: str = "solidarity",
    ttl_s: int = DEFAULT_MAX_LIFETIME_S,
) -> str:
    role = Role(role)
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": sub,
        "role": role.value,
        "name": name,
        "iss": issuer,
        "iat": now,
        "exp": now + ttl_s,
    }
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def _numeric(value: Any) -> float | None:
    """A JSON number as a float; None for anything else (a string, a boolean, NaN)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _claims_problem(claims: dict[str, Any], max_lifetime_s: int) -> str | None:
    """What is wrong with claims PyJWT accepted, or None."""
    sub = claims.get("sub")
    if not (isinstance(sub, str) and 0 < len(sub) <= MAX_SUB_LENGTH and sub.isprintable()
            and sub.strip() == sub):
        return f"The token's sub must be 1 to {MAX_SUB_LENGTH} printable characters."
    exp, iat = _numeric(claims.get("exp")), _numeric(claims.get("iat"))
    if exp is None or iat is None:
        return "The token's exp and iat must be numbers."
    if exp - iat > max_lifetime_s:
        return f"The token lives longer than {max_lifetime_s} seconds."
    return None


def decode_token(secret: str, token: str, issuer: str = "solidarity",
                 max_lifetime_s: int = DEFAULT_MAX_LIFETIME_S) -> Principal:
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            issuer=issuer,
            options={"require": ["sub", "role", "exp", "iat"]},
        )
    except jwt.ExpiredSignatureError as e:
        raise Unauthorized("The token has expired.", headers=_challenge("invalid_token")) from e
    except jwt.PyJWTError as e:
        raise Unauthorized(
            "The bearer token is not valid.", headers=_challenge("invalid_token")
        ) from e
    problem = _claims_problem(claims, max_lifetime_s)
    if problem is not None:
        raise Unauthorized(problem, headers=_challenge("invalid_token"))
    try:
        role = Role(claims["role"])
    except ValueError as e:
        raise Unauthorized(
            "The token names an unknown role.", headers=_challenge("invalid_token")
        ) from e
    return Principal(sub=str(claims["sub"]), role=role, name=str(claims.get("name", "")))


def _challenge(error: str | None = None) -> dict[str, str]:
    value = 'Bearer realm="solidarity"'
    if error:
        value += f', error="{error}"'
    return {"WWW-Authenticate": value}


def principal_from_request(request: Request) -> Principal:
    header = request.headers.get("authorization")
    if not header:
        raise Unauthorized("A bearer token is required.", headers=_challenge())
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized(
            "The Authorization header must be 'Bearer <token>'.", headers=_challenge()
        )
    settings = request.app.state.settings
    return decode_token(settings.effective_jwt_secret, token.strip(), settings.jwt_issuer,
                        settings.token_max_lifetime_s)


class Allow:
    """A FastAPI dependency that admits only the given roles."""

    def __init__(self, *roles: Role) -> None:
        if not roles:
            raise ValueError("an endpoint must allow at least one role")
        self.roles = tuple(roles)

    async def __call__(self, request: Request) -> Principal:
        # async: a token check is quick CPU work, not worth a thread-pool hop.
        principal = principal_from_request(request)
        if principal.role not in self.roles:
            allowed = ", ".join(r.value for r in self.roles)
            raise Forbidden(f"Role '{principal.role.value}' may not do this; allowed: {allowed}.")
        request.state.principal = principal
        # Who acts, for every event this request triggers (read by shared.kernel.Aggregate).
        set_acting(principal.actor, getattr(request.state, "correlation_id", None))
        return principal

    def describe(self) -> str:
        return "Roles: " + ", ".join(r.value for r in self.roles) + "."
