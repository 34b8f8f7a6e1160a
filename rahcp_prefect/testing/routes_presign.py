"""``POST /presign`` and bulk ``POST /buckets/{b}/objects/presign`` — hcp-api.md section 4.

Signing is local (SigV4, path-style) and the URLs point at the S3 server, never at the API.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel, Field

from rahcp_prefect.testing.auth import require_principal
from rahcp_prefect.testing.context import EmulatorContext, get_ctx
from rahcp_prefect.testing.sigv4 import HTTP_METHODS
from rahcp_prefect.testing.storage import check_key_length

router = APIRouter(dependencies=[Depends(require_principal)])

SINGLE_METHODS = ("get_object", "put_object")
# The reference passes any name to boto3 and silently drops keys that fail; the emulator
# accepts the methods that make a working URL and rejects the rest with 422.
BULK_METHODS = ("get_object", "put_object", "head_object", "delete_object")
MAX_EXPIRES = 604800


class PresignRequest(BaseModel):
    bucket: str
    key: str
    method: str = "get_object"
    expires_in: int = Field(default=3600, ge=1, le=MAX_EXPIRES)


class BulkPresignRequest(BaseModel):
    keys: list[str] = Field(min_length=1)
    method: str = "get_object"
    expires_in: int = Field(default=3600, ge=1, le=MAX_EXPIRES)


def presign(ctx: EmulatorContext, method: str, params: dict[str, Any], expires_in: int) -> str:
    """One presigned URL (pure computation, no S3 request).

    Plain object URLs go through the fast signer (the same URL as boto3's, ~20x cheaper);
    anything with more parameters (multipart parts) through boto3.
    """
    if ctx.presigner is not None and method in HTTP_METHODS and params.keys() == {"Bucket", "Key"}:
        return ctx.presigner.presign(method, params["Bucket"], params["Key"], expires_in)
    url: str = ctx.signer.generate_presigned_url(method, Params=params, ExpiresIn=expires_in)
    return url


@router.post("/presign")
def presign_one(body: PresignRequest, ctx: EmulatorContext = Depends(get_ctx)) -> dict[str, Any]:
    if body.method not in SINGLE_METHODS:
        raise HTTPException(
            status_code=422, detail=f"method must be one of: {', '.join(SINGLE_METHODS)}"
        )
    check_key_length(body.key)
    url = presign(ctx, body.method, {"Bucket": body.bucket, "Key": body.key}, body.expires_in)
    return {
        "url": url,
        "bucket": body.bucket,
        "key": body.key,
        "expires_in": body.expires_in,
        "method": body.method,
    }


@router.post("/buckets/{bucket}/objects/presign")
def presign_bulk(
    bucket: str, body: BulkPresignRequest, ctx: EmulatorContext = Depends(get_ctx)
) -> dict[str, Any]:
    """URLs for many keys, in request order."""
    if body.method not in BULK_METHODS:
        raise HTTPException(
            status_code=422, detail=f"method must be one of: {', '.join(BULK_METHODS)}"
        )
    check_key_length(*body.keys)
    urls = [
        {
            "key": key,
            "url": presign(ctx, body.method, {"Bucket": bucket, "Key": key}, body.expires_in),
        }
        for key in body.keys
    ]
    return {"urls": urls, "expires_in": body.expires_in}
