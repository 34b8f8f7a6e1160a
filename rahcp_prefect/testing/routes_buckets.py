"""Bucket routes: list, create, head, delete (with ``force``) — hcp-api.md section 2.

Endpoints are plain ``def``: FastAPI runs them in its threadpool, so blocking boto3 calls never
stall the event loop.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Response
from pydantic import BaseModel

from rahcp_prefect.testing.auth import require_principal
from rahcp_prefect.testing.context import EmulatorContext, get_ctx
from rahcp_prefect.testing.storage import (
    bucket_resource,
    empty_bucket,
    iso_z,
    require_bucket,
    s3_call,
)

router = APIRouter(dependencies=[Depends(require_principal)])

# S3's naming rules (3-63 chars, lower-case letters, digits, dots, hyphens); moto accepts any.
BUCKET_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


class CreateBucket(BaseModel):
    bucket: str


@router.get("/buckets")
def list_buckets(ctx: EmulatorContext = Depends(get_ctx)) -> dict[str, Any]:
    resp = s3_call("buckets", ctx.s3.list_buckets)
    owner = resp.get("Owner")
    return {
        "buckets": [
            {"Name": b["Name"], "CreationDate": iso_z(b.get("CreationDate"))}
            for b in resp.get("Buckets", [])
        ],
        "owner": (
            {"DisplayName": owner.get("DisplayName"), "ID": owner.get("ID")} if owner else None
        ),
    }


@router.post("/buckets", status_code=201)
def create_bucket(body: CreateBucket, ctx: EmulatorContext = Depends(get_ctx)) -> dict[str, str]:
    name = body.bucket
    resource = bucket_resource(name)
    if not BUCKET_NAME_RE.match(name) or ".." in name:
        raise HTTPException(
            status_code=400, detail=f"{resource}: The specified bucket is not valid."
        )
    if bucket_exists(ctx, name):
        raise HTTPException(
            status_code=409,
            detail=f"{resource}: Your previous request to create the named bucket succeeded "
            "and you already own it.",
        )
    s3_call(resource, ctx.s3.create_bucket, Bucket=name)
    ctx.cache.deleted(name, every_key=True)
    return {"status": "created", "bucket": name}


@router.head("/buckets/{bucket}")
def head_bucket(bucket: str, ctx: EmulatorContext = Depends(get_ctx)) -> Response:
    try:
        s3_call(bucket_resource(bucket), ctx.s3.head_bucket, Bucket=bucket)
    except HTTPException as exc:
        return Response(status_code=exc.status_code)
    return Response(status_code=200)


@router.delete("/buckets/{bucket}")
def delete_bucket(
    bucket: str,
    force: bool = False,
    ctx: EmulatorContext = Depends(get_ctx),
) -> dict[str, str]:
    resource = bucket_resource(bucket)
    if force:
        # Unlike the reference backend (500), a missing bucket is a plain 404 here too.
        require_bucket(ctx.s3, bucket)
        s3_call(resource, empty_bucket, s3=ctx.s3, bucket=bucket)
    s3_call(resource, ctx.s3.delete_bucket, Bucket=bucket)
    ctx.cache.deleted(bucket, every_key=True)
    return {"status": "deleted", "bucket": bucket}


def bucket_exists(ctx: EmulatorContext, bucket: str) -> bool:
    try:
        s3_call(bucket_resource(bucket), ctx.s3.head_bucket, Bucket=bucket)
    except HTTPException as exc:
        if exc.status_code == 404:
            return False
        raise
    return True
