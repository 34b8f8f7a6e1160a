"""Login (``POST /auth/token``) helpers and bearer-token validation, as in hcp-api.md section 1.

Tokens are HS256 JWTs with ``sub``, ``exp`` and ``tenant`` (when resolved). Unlike the reference
backend the emulator does not put the password into the token.
"""

from __future__ import annotations

import hmac
import math
import re
import time
from dataclasses import dataclass
from typing import Any

import jwt
from fastapi import HTTPException, Request

TENANT_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?$")
BEARER_HEADERS = {"WWW-Authenticate": "Bearer"}


@dataclass(frozen=True)
class Principal:
    """The caller of a protected route, from a validated token."""

    username: str
    tenant: str | None


@dataclass
class AuthConfig:
    """Everything auth needs: signing key, token lifetime, optional user table."""

    secret_key: str
    token_ttl_seconds: float
    users: dict[str, str] | None = None

    def check_password(self, username: str, raw_username: str, password: str) -> bool:
        """True when login may succeed: any user without a table, else a matching password."""
        if self.users is None:
            return True
        for name in (username, raw_username):
            expected = self.users.get(name)
            if expected is not None and hmac.compare_digest(
                expected.encode("utf-8"), password.encode("utf-8")
            ):
                return True
        return False

    def issue(self, username: str, tenant: str | None, ttl: float | None = None) -> str:
        """A signed token for ``username`` (and ``tenant``), valid ``ttl`` seconds."""
        lifetime = self.token_ttl_seconds if ttl is None else ttl
        claims: dict[str, Any] = {"sub": username, "exp": math.ceil(time.time() + lifetime)}
        if tenant:
            claims["tenant"] = tenant
        return jwt.encode(claims, self.secret_key, algorithm="HS256")

    def verify(self, token: str) -> Principal:
        """Decode and check a bearer token; raise the backend's exact 401s."""
        try:
            claims = jwt.decode(
                token, self.secret_key, algorithms=["HS256"], options={"require": []}
            )
        except jwt.ExpiredSignatureError:
            raise unauthorized("Token has expired") from None
        except jwt.InvalidTokenError:
            raise unauthorized("Invalid token") from None
        sub = claims.get("sub")
        if not sub:
            raise unauthorized("Invalid token: no subject")
        tenant = claims.get("tenant")
        return Principal(username=str(sub), tenant=str(tenant) if tenant else None)


def unauthorized(detail: str) -> HTTPException:
    return HTTPException(status_code=401, detail=detail, headers=BEARER_HEADERS)


def resolve_tenant(username: str, tenant: str | None) -> tuple[str, str | None]:
    """(user, tenant) by the backend's rules: tenant field, else ``tenant/user``, else none."""
    if tenant is not None and tenant.strip():
        return username, tenant.strip()
    if "/" in username:
        prefix, user = username.split("/", 1)
        return user, (prefix or None)
    return username, None


async def require_principal(request: Request) -> Principal:
    """FastAPI dependency of every protected route."""
    header = request.headers.get("authorization")
    if not header:
        raise unauthorized("Not authenticated")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise unauthorized("Not authenticated")
    config: AuthConfig = request.app.state.ctx.auth
    return config.verify(token.strip())
