"""Root-level probes: ``/liveness``, ``/health``, ``/readiness`` (not under ``/api/v1``)."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from rahcp_prefect.testing.context import EmulatorContext, get_ctx

router = APIRouter()


@router.get("/liveness")
async def liveness() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/health")
async def health(ctx: EmulatorContext = Depends(get_ctx)) -> dict[str, str]:
    return {"status": "ok", "cache": "connected" if ctx.cache.enabled else "disabled"}


@router.get("/readiness")
def readiness(ctx: EmulatorContext = Depends(get_ctx)) -> Any:
    """Ready when S3 answers a bucket listing."""
    try:
        ctx.s3.list_buckets()
        storage = "ok"
    except (ClientError, BotoCoreError):
        storage = "unreachable"
    checks = {"storage": storage, "mapi": "ok" if ctx.mapi_enabled else "disabled"}
    if storage != "ok":
        return JSONResponse({"status": "not ready", "checks": checks}, status_code=503)
    return {"status": "ready", "checks": checks}
