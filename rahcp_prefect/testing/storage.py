"""Calling S3 through boto3 and turning its errors into the backend's HTTP errors (section 6)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any, TypeVar

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    ReadTimeoutError,
)
from fastapi import HTTPException

T = TypeVar("T")

STATUS_BY_CODE: dict[str, int] = {
    "NoSuchBucket": 404,
    "NoSuchKey": 404,
    "NoSuchUpload": 404,
    "404": 404,
    "NotFound": 404,
    "BucketNotEmpty": 409,
    "BucketAlreadyExists": 409,
    "BucketAlreadyOwnedByYou": 409,
    "AccessDenied": 403,
    "403": 403,
    "InvalidBucketName": 400,
    "InvalidArgument": 400,
    "InvalidPart": 400,
    "EntityTooSmall": 400,
    "InvalidPartOrder": 400,
    "MalformedXML": 400,
    "RequestTimeout": 408,
    "SlowDown": 503,
    "ServiceUnavailable": 503,
}


def storage_error(exc: Exception, resource: str) -> HTTPException:
    """The HTTPException the reference backend raises for a botocore error on ``resource``."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        message = error.get("Message") or ("Not Found" if code == "404" else code)
        status = STATUS_BY_CODE.get(code)
        if status is None:
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 502)
            if status < 400:
                status = 502
        return HTTPException(status_code=status, detail=f"{resource}: {message}")
    if isinstance(exc, EndpointConnectionError):
        return HTTPException(status_code=502, detail=f"{resource}: S3 endpoint unreachable")
    if isinstance(exc, ReadTimeoutError):
        return HTTPException(status_code=504, detail=f"{resource}: S3 read timed out")
    return HTTPException(status_code=502, detail=f"{resource}: S3 connection error: {exc}")


def s3_call(resource: str, fn: Callable[..., T], **kwargs: Any) -> T:
    """Run one blocking boto3 call, mapping its failures. Call only from a worker thread."""
    try:
        return fn(**kwargs)
    except (ClientError, BotoCoreError) as exc:
        raise storage_error(exc, resource) from None


def iso_z(value: datetime | None) -> str | None:
    """ISO-8601 UTC with a ``Z`` suffix, as pydantic serialises the backend's datetimes."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def require_bucket(s3: Any, bucket: str) -> None:
    """404 ``The specified bucket does not exist`` (HEAD alone only says "Not Found")."""
    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError as exc:
        if str(exc.response.get("Error", {}).get("Code")) in ("404", "NoSuchBucket"):
            raise HTTPException(
                status_code=404,
                detail=f"{bucket_resource(bucket)}: The specified bucket does not exist",
            ) from None
        raise storage_error(exc, bucket_resource(bucket)) from None
    except BotoCoreError as exc:
        raise storage_error(exc, bucket_resource(bucket)) from None


def empty_bucket(s3: Any, bucket: str) -> None:
    """Abort open multipart uploads, delete every object version and delete marker.

    Raises botocore errors as they are (callers map or ignore them).
    """
    for upload in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []):
        s3.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        targets = [
            {"Key": v["Key"], "VersionId": v["VersionId"]}
            for v in page.get("Versions", []) + page.get("DeleteMarkers", [])
        ]
        if targets:
            s3.delete_objects(Bucket=bucket, Delete={"Objects": targets, "Quiet": True})


def bucket_resource(bucket: str) -> str:
    return f"bucket '{bucket}'"


def object_resource(key: str) -> str:
    return f"object '{key}'"
