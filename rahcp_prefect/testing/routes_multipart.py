"""Multipart upload routes with presigned parts — hcp-api.md section 4 "Multipart".

Sub-routes (``/presign``, ``/complete``, ``/abort``, ``/parts``) are declared before the
initiate route, because ``{key:path}`` would swallow them otherwise (as in the reference).
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel, Field

from rahcp_prefect.testing.auth import require_principal
from rahcp_prefect.testing.context import EmulatorContext, get_ctx
from rahcp_prefect.testing.routes_presign import presign
from rahcp_prefect.testing.storage import (
    bucket_resource,
    check_key_length,
    iso_z,
    object_resource,
    s3_call,
)

router = APIRouter(dependencies=[Depends(require_principal)])

MIN_PART = 5 * 1024 * 1024
MAX_PART = 5 * 1024 * 1024 * 1024
MAX_PARTS = 10_000


class PresignParts(BaseModel):
    upload_id: str | None = None
    file_size: int = Field(gt=0)
    part_size: int = Field(default=26214400, ge=MIN_PART, le=MAX_PART)
    expires_in: int = Field(default=3600, ge=60, le=43200)


class CompletedPart(BaseModel):
    PartNumber: int
    ETag: str


class CompleteUpload(BaseModel):
    upload_id: str
    parts: list[CompletedPart]


class AbortUpload(BaseModel):
    upload_id: str


@router.post("/buckets/{bucket}/multipart/{key:path}/presign")
def presign_parts(
    bucket: str, key: str, body: PresignParts, ctx: EmulatorContext = Depends(get_ctx)
) -> dict[str, Any]:
    """URLs for every part; creates the upload first when no ``upload_id`` is given."""
    total_parts = math.ceil(body.file_size / body.part_size)
    if total_parts > MAX_PARTS:
        raise HTTPException(
            status_code=400,
            detail=f"Too many parts ({total_parts}). Increase part_size or reduce file_size. "
            "S3 maximum is 10,000 parts.",
        )
    upload_id = body.upload_id or _create_upload(ctx, bucket, key)
    base = {"Bucket": bucket, "Key": key, "UploadId": upload_id}
    urls = [
        {
            "part_number": n,
            "url": presign(ctx, "upload_part", {**base, "PartNumber": n}, body.expires_in),
        }
        for n in range(1, total_parts + 1)
    ]
    return {
        "bucket": bucket,
        "key": key,
        "upload_id": upload_id,
        "part_size": body.part_size,
        "total_parts": total_parts,
        "urls": urls,
        "expires_in": body.expires_in,
    }


@router.post("/buckets/{bucket}/multipart/{key:path}/complete")
def complete_upload(
    bucket: str, key: str, body: CompleteUpload, ctx: EmulatorContext = Depends(get_ctx)
) -> dict[str, Any]:
    resource = object_resource(key)
    if not body.parts:
        raise HTTPException(
            status_code=400,
            detail=f"{resource}: The XML you provided was not well-formed or did not validate "
            "against our published schema",
        )
    _check_upload_exists(ctx, bucket, key, body.upload_id)
    resp = s3_call(
        resource,
        ctx.s3.complete_multipart_upload,
        Bucket=bucket,
        Key=key,
        UploadId=body.upload_id,
        MultipartUpload={"Parts": [p.model_dump() for p in body.parts]},
    )
    ctx.cache.written(bucket, key)
    return {"bucket": bucket, "key": key, "etag": resp.get("ETag")}


@router.post("/buckets/{bucket}/multipart/{key:path}/abort")
def abort_upload(
    bucket: str, key: str, body: AbortUpload, ctx: EmulatorContext = Depends(get_ctx)
) -> dict[str, str]:
    s3_call(
        object_resource(key),
        ctx.s3.abort_multipart_upload,
        Bucket=bucket,
        Key=key,
        UploadId=body.upload_id,
    )
    return {"status": "aborted"}


@router.get("/buckets/{bucket}/multipart/{key:path}/parts")
def list_parts(
    bucket: str,
    key: str,
    upload_id: str,
    max_parts: int = Query(default=1000, ge=1, le=1000),
    ctx: EmulatorContext = Depends(get_ctx),
) -> dict[str, Any]:
    resp = s3_call(
        object_resource(key),
        ctx.s3.list_parts,
        Bucket=bucket,
        Key=key,
        UploadId=upload_id,
        MaxParts=max_parts,
    )
    parts = [
        {
            "PartNumber": p["PartNumber"],
            "ETag": p.get("ETag"),
            "Size": p.get("Size"),
            "LastModified": iso_z(p.get("LastModified")),
        }
        for p in resp.get("Parts", [])
    ]
    return {
        "bucket": bucket,
        "key": key,
        "upload_id": upload_id,
        "parts": parts,
        "is_truncated": bool(resp.get("IsTruncated", False)),
    }


@router.get("/buckets/{bucket}/uploads")
def list_uploads(
    bucket: str,
    prefix: str | None = None,
    max_uploads: int = Query(default=1000, ge=1, le=1000),
    ctx: EmulatorContext = Depends(get_ctx),
) -> dict[str, Any]:
    params: dict[str, Any] = {"Bucket": bucket, "MaxUploads": max_uploads}
    if prefix:
        params["Prefix"] = prefix
    resp = s3_call(bucket_resource(bucket), ctx.s3.list_multipart_uploads, **params)
    found = resp.get("Uploads", [])
    uploads = [
        {
            "Key": u["Key"],
            "UploadId": u["UploadId"],
            "Initiated": ctx.initiated.get(u["UploadId"]) or iso_z(u.get("Initiated")),
            "StorageClass": u.get("StorageClass", "STANDARD"),
        }
        for u in found[:max_uploads]  # moto ignores MaxUploads
    ]
    truncated = bool(resp.get("IsTruncated", False)) or len(found) > max_uploads
    return {"bucket": bucket, "uploads": uploads, "is_truncated": truncated}


@router.post("/buckets/{bucket}/multipart/{key:path}", status_code=201)
def initiate_upload(
    bucket: str, key: str, ctx: EmulatorContext = Depends(get_ctx)
) -> dict[str, str]:
    return {"bucket": bucket, "key": key, "upload_id": _create_upload(ctx, bucket, key)}


def _create_upload(ctx: EmulatorContext, bucket: str, key: str) -> str:
    check_key_length(key)
    resp = s3_call(object_resource(key), ctx.s3.create_multipart_upload, Bucket=bucket, Key=key)
    upload_id = str(resp["UploadId"])
    ctx.initiated[upload_id] = iso_z(datetime.now(timezone.utc)) or ""
    return upload_id


def _check_upload_exists(ctx: EmulatorContext, bucket: str, key: str, upload_id: str) -> None:
    """404 NoSuchUpload for an unknown id: moto's complete answers 500 (a KeyError) instead."""
    s3_call(
        object_resource(key),
        ctx.s3.list_parts,
        Bucket=bucket,
        Key=key,
        UploadId=upload_id,
        MaxParts=1,
    )
