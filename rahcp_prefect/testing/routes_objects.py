"""Object routes: list, head, delete, bulk delete, copy — hcp-api.md section 3.

Keys come from ``{key:path}`` routes, already percent-decoded by Starlette.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, Response
from pydantic import BaseModel

from rahcp_prefect.testing.auth import require_principal
from rahcp_prefect.testing.context import EmulatorContext, get_ctx
from rahcp_prefect.testing.storage import (
    bucket_resource,
    check_key_length,
    iso_z,
    object_resource,
    require_bucket,
    s3_call,
)

router = APIRouter(dependencies=[Depends(require_principal)])

DELETE_CHUNK = 1000


class BulkDelete(BaseModel):
    keys: list[str] = []
    prefix: str | None = None


class CopySource(BaseModel):
    source_bucket: str
    source_key: str


@router.get("/buckets/{bucket}/objects")
def list_objects(
    bucket: str,
    prefix: str | None = None,
    max_keys: int = Query(default=1000, ge=0, le=1000),
    continuation_token: str | None = None,
    delimiter: str | None = None,
    ctx: EmulatorContext = Depends(get_ctx),
) -> dict[str, Any]:
    params: dict[str, Any] = {"Bucket": bucket, "MaxKeys": max_keys, "FetchOwner": True}
    if prefix:
        params["Prefix"] = prefix
    if continuation_token:
        params["ContinuationToken"] = continuation_token
    if delimiter:
        params["Delimiter"] = delimiter
    query = tuple(sorted(params.items()))
    cached = ctx.cache.listing(bucket, query)
    if cached is not None:
        return cached
    resp = s3_call(bucket_resource(bucket), ctx.listing.list_objects_v2, **params)
    answer = {
        "objects": [_object_record(o) for o in resp.get("Contents", [])],
        "common_prefixes": [p["Prefix"] for p in resp.get("CommonPrefixes", [])],
        "is_truncated": bool(resp.get("IsTruncated", False)),
        "next_continuation_token": resp.get("NextContinuationToken"),
        "key_count": int(resp.get("KeyCount", 0)),
    }
    ctx.cache.keep_listing(bucket, query, answer)
    return answer


def _object_record(obj: dict[str, Any]) -> dict[str, Any]:
    record: dict[str, Any] = {
        "Key": obj["Key"],
        "Size": obj.get("Size", 0),
        "LastModified": iso_z(obj.get("LastModified")),
        "ETag": obj.get("ETag"),
        "StorageClass": obj.get("StorageClass", "STANDARD"),
    }
    owner = obj.get("Owner")
    if owner is not None:
        record["Owner"] = {"DisplayName": owner.get("DisplayName"), "ID": owner.get("ID")}
    return record


@router.post("/buckets/{bucket}/objects/delete")
def bulk_delete(
    bucket: str, body: BulkDelete, ctx: EmulatorContext = Depends(get_ctx)
) -> dict[str, Any]:
    """Delete ``keys`` and/or every object under ``prefix`` (``""`` empties the bucket)."""
    resource = bucket_resource(bucket)
    deleted = 0
    errors: list[dict[str, Any]] = []
    if not body.keys and body.prefix is None:
        require_bucket(ctx.s3, bucket)
    for start in range(0, len(body.keys), DELETE_CHUNK):
        chunk = body.keys[start : start + DELETE_CHUNK]
        chunk_errors = _delete_keys(ctx, bucket, chunk)
        errors.extend(chunk_errors)
        deleted += len(chunk) - len(chunk_errors)
    if body.prefix is not None:
        token: str | None = None
        while True:
            params: dict[str, Any] = {"Bucket": bucket, "MaxKeys": DELETE_CHUNK}
            if body.prefix:
                params["Prefix"] = body.prefix
            if token:
                params["ContinuationToken"] = token
            page = s3_call(resource, ctx.listing.list_objects_v2, **params)
            keys = [o["Key"] for o in page.get("Contents", [])]
            if keys:
                chunk_errors = _delete_keys(ctx, bucket, keys)
                errors.extend(chunk_errors)
                deleted += len(keys) - len(chunk_errors)
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                break
    ctx.cache.deleted(bucket, *body.keys, every_key=body.prefix is not None)
    return {"status": "deleted", "deleted": deleted, "errors": errors}


def _delete_keys(ctx: EmulatorContext, bucket: str, keys: list[str]) -> list[dict[str, Any]]:
    """Delete ``keys``; a key HCP's rules protect (retention, hold) is an ``AccessDenied``
    error entry, as S3's DeleteObjects reports a key it refused."""
    refused: list[dict[str, Any]] = []
    allowed = keys
    if ctx.rules is not None and ctx.rules.enforcing:
        allowed = []
        for key in keys:
            refusal = ctx.rules.delete_refusal(bucket, key)
            if refusal is None:
                allowed.append(key)
            else:
                refused.append({"Key": key, "Code": refusal.code, "Message": refusal.message})
    if not allowed:
        require_bucket(ctx.s3, bucket)
        return refused
    resp = s3_call(
        bucket_resource(bucket),
        ctx.s3.delete_objects,
        Bucket=bucket,
        Delete={"Objects": [{"Key": k} for k in allowed], "Quiet": True},
    )
    return refused + [
        {"Key": e.get("Key"), "Code": e.get("Code"), "Message": e.get("Message")}
        for e in resp.get("Errors", [])
    ]


@router.post("/buckets/{bucket}/objects/{key:path}/copy")
def copy_object(
    bucket: str, key: str, body: CopySource, ctx: EmulatorContext = Depends(get_ctx)
) -> dict[str, str]:
    """Copy ``source_bucket/source_key`` to ``bucket/key``; errors name the destination key."""
    check_key_length(key)
    s3_call(
        object_resource(key),
        ctx.s3.copy_object,
        Bucket=bucket,
        Key=key,
        CopySource={"Bucket": body.source_bucket, "Key": body.source_key},
    )
    ctx.cache.written(bucket, key)
    return {"status": "copied", "bucket": bucket, "key": key}


class Hold(BaseModel):
    hold: bool


@router.post("/buckets/{bucket}/objects/{key:path}/hold")
def set_hold(
    bucket: str, key: str, body: Hold, ctx: EmulatorContext = Depends(get_ctx)
) -> dict[str, Any]:
    """Put an object on hold or release it (an emulator extension: HCP sets holds through its
    REST API, ``PUT ...?hold=true``, which the reference backend does not serve)."""
    _protection(ctx, bucket, key)
    assert ctx.rules is not None
    ctx.rules.set_hold(bucket, key, body.hold)
    return {"status": "held" if body.hold else "released", "bucket": bucket, "key": key}


@router.get("/buckets/{bucket}/objects/{key:path}/hold")
def get_hold(bucket: str, key: str, ctx: EmulatorContext = Depends(get_ctx)) -> dict[str, Any]:
    """``{"bucket","key","hold","retained_until"}``: ``retained_until`` is ISO-8601 UTC, the
    string ``"forever"`` (retention ``-1``) or null (no retention). An emulator extension."""
    state = _protection(ctx, bucket, key)
    until = state["retained_until"]
    if until is None:
        shown = None
    elif until == float("inf"):
        shown = "forever"
    else:
        shown = iso_z(datetime.fromtimestamp(until, timezone.utc))
    return {"bucket": bucket, "key": key, "hold": state["hold"], "retained_until": shown}


def _protection(ctx: EmulatorContext, bucket: str, key: str) -> dict[str, Any]:
    """An existing object's hold and retention; 404 as HEAD would be for a missing one."""
    require_bucket(ctx.s3, bucket)
    if ctx.rules is None:
        raise HTTPException(status_code=501, detail="holds need the emulator's built-in S3 server")
    try:
        return ctx.rules.protection(bucket, key)
    except KeyError:
        raise HTTPException(
            status_code=404, detail=f"{object_resource(key)}: The specified key does not exist."
        ) from None


@router.head("/buckets/{bucket}/objects/{key:path}")
def head_object(bucket: str, key: str, ctx: EmulatorContext = Depends(get_ctx)) -> Response:
    """Object metadata as headers; errors are the bare status with an empty body."""
    headers = ctx.cache.head(bucket, key)
    if headers is None:
        try:
            resp = s3_call(object_resource(key), ctx.s3.head_object, Bucket=bucket, Key=key)
        except HTTPException as exc:
            return Response(status_code=exc.status_code)
        headers = {
            "content-length": str(resp.get("ContentLength", 0)),
            "content-type": resp.get("ContentType") or "application/octet-stream",
            "etag": resp.get("ETag", ""),
            "last-modified": str(resp.get("LastModified")),
        }
        ctx.cache.keep_head(bucket, key, headers)
    return Response(status_code=200, headers=headers)


@router.delete("/buckets/{bucket}/objects/{key:path}")
def delete_object(
    bucket: str,
    key: str,
    version_id: str | None = None,
    ctx: EmulatorContext = Depends(get_ctx),
) -> dict[str, str]:
    """Idempotent: a missing key is still 200; only a missing bucket is 404."""
    params: dict[str, Any] = {"Bucket": bucket, "Key": key}
    if version_id:
        params["VersionId"] = version_id
    s3_call(object_resource(key), ctx.s3.delete_object, **params)
    ctx.cache.deleted(bucket, key)
    return {"status": "deleted", "bucket": bucket, "key": key}
