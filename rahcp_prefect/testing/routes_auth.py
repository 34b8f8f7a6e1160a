"""``POST /auth/token`` (login) and ``GET /capabilities``, the unauthenticated API routes."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field, ValidationError

from rahcp_prefect.testing.auth import BEARER_HEADERS, TENANT_RE, resolve_tenant
from rahcp_prefect.testing.context import EmulatorContext, get_ctx
from rahcp_prefect.testing.formdata import read_form

router = APIRouter()


class LoginForm(BaseModel):
    """FastAPI's ``OAuth2PasswordRequestForm`` plus the extra ``tenant`` field."""

    username: str
    password: str
    grant_type: str | None = Field(default=None, pattern="^password$")
    scope: str = ""
    client_id: str | None = None
    client_secret: str | None = None
    tenant: str | None = None


def _validate_form(fields: dict[str, str]) -> LoginForm:
    # FastAPI treats an empty form value as absent, so an empty password is "Field required".
    present = {k: v for k, v in fields.items() if v != "" and k in LoginForm.model_fields}
    try:
        return LoginForm.model_validate(present)
    except ValidationError as exc:
        errors: list[dict[str, Any]] = []
        for error in exc.errors(include_url=False):
            error = dict(error)
            error["loc"] = ("body", *error["loc"])
            if error["type"] == "missing":
                error["input"] = None
            errors.append(error)
        raise RequestValidationError(errors) from None


@router.post("/auth/token")
async def login(request: Request, ctx: EmulatorContext = Depends(get_ctx)) -> dict[str, str]:
    """Issue a bearer token; checks the password only when the emulator has a user table."""
    form = _validate_form(await read_form(request))
    username, tenant = resolve_tenant(form.username, form.tenant)
    if tenant is not None and not TENANT_RE.match(tenant):
        raise HTTPException(status_code=422, detail="Invalid tenant name")
    if not ctx.auth.check_password(username, form.username, form.password):
        raise HTTPException(
            status_code=401, detail="Invalid username or password", headers=BEARER_HEADERS
        )
    token = ctx.auth.issue(username, tenant)
    return {"access_token": token, "token_type": "bearer"}


@router.get("/capabilities")
async def capabilities(ctx: EmulatorContext = Depends(get_ctx)) -> dict[str, Any]:
    return {"mapi_enabled": ctx.mapi_enabled, "storage_backend": "hcp"}
