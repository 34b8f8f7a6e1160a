"""Assembles the emulator's ASGI application from its routers and middleware."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from starlette.middleware.gzip import GZipMiddleware

from rahcp_prefect.testing import (
    routes_auth,
    routes_buckets,
    routes_control,
    routes_health,
    routes_mapi,
    routes_multipart,
    routes_objects,
    routes_presign,
)
from rahcp_prefect.testing.context import EmulatorContext
from rahcp_prefect.testing.middleware import CountAndFaultMiddleware, RequestIDMiddleware

API_PREFIX = "/api/v1"


async def _internal_error(request: Request, exc: Exception) -> JSONResponse:
    request_id = getattr(request.state, "request_id", None) or uuid.uuid4().hex
    return JSONResponse(
        {"detail": "Internal server error", "request_id": request_id}, status_code=500
    )


def build_app(ctx: EmulatorContext) -> Any:
    """The full ASGI app: request-id -> count/faults -> gzip -> FastAPI routes."""
    app = FastAPI(title="HCP emulator (rahcp-prefect)", version="0.1.0")
    app.state.ctx = ctx
    app.add_exception_handler(Exception, _internal_error)
    app.add_middleware(
        CORSMiddleware, allow_origins=["*"], allow_methods=["*"], allow_headers=["*"]
    )

    # Literal object/multipart sub-routes must precede the {key:path} catch-alls.
    api_routers = [
        routes_auth.router,
        routes_buckets.router,
        routes_presign.router,
        routes_objects.router,
        routes_multipart.router,
    ]
    if ctx.mapi_enabled:
        api_routers.append(routes_mapi.router)
    api = APIRouter(prefix=API_PREFIX)
    for router in api_routers:
        api.include_router(router)
    app.include_router(api)
    app.include_router(routes_health.router)
    app.include_router(routes_control.router)

    templates = [(API_PREFIX, r) for router in api_routers for r in router.routes]
    templates += [("", r) for r in routes_health.router.routes]
    inner = GZipMiddleware(app, minimum_size=500)
    counted = CountAndFaultMiddleware(inner, ctx.faults, ctx.counter, API_PREFIX, templates)
    return RequestIDMiddleware(counted)
