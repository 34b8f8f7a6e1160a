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

from rahcp_prefect.defaults import MAX_KEY_BYTES

T = TypeVar("T")

"""S3's longest object key, in UTF-8 bytes."""
KEY_TOO_LONG = "Your key is too long"
"""S3's message for ``KeyTooLongError`` (400)."""

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
    "KeyTooLongError": 400,
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
    """Abort every open multipart upload, delete every object version and delete marker,
    whatever their number.

    Each listing starts again from the top after deleting what the previous one returned, so
    no marker has to survive the deletes (moto's version markers do not); a page that comes
    back unchanged means S3 refused the deletes, and raises instead of looping.
    Raises botocore errors as they are (callers map or ignore them).
    """
    def uploads() -> list[tuple[str, str]]:
        page = s3.list_multipart_uploads(Bucket=bucket)
        return [(u["Key"], u["UploadId"]) for u in page.get("Uploads", [])]

    def abort(open_uploads: list[tuple[str, str]]) -> None:
        for key, upload_id in open_uploads:
            s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)

    _drain(uploads, abort, bucket)

    def versions() -> list[tuple[str, str]]:
        page = s3.list_object_versions(Bucket=bucket, MaxKeys=1000)
        return [(v["Key"], v["VersionId"]) for v in page.get("Versions", []) + page.get("DeleteMarkers", [])]

    def delete(targets: list[tuple[str, str]]) -> None:
        objects = [{"Key": key, "VersionId": version} for key, version in targets]
        s3.delete_objects(Bucket=bucket, Delete={"Objects": objects, "Quiet": True})

    _drain(versions, delete, bucket)


def _drain(page: Callable[[], list[T]], remove: Callable[[list[T]], Any], bucket: str) -> None:
    """``remove(page())`` until the page is empty; an unchanged page is an error."""
    previous: list[T] | None = None
    while items := page():
        if items == previous:
            raise RuntimeError(f"{bucket_resource(bucket)}: could not be emptied ({len(items)} left)")
        remove(items)
        previous = items


def key_too_long(key: str) -> bool:
    """Whether S3 would refuse ``key`` with 400 ``KeyTooLongError`` (over 1,024 UTF-8 bytes)."""
    return len(key) > MAX_KEY_BYTES // 4 and len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES


def check_key_length(*keys: str) -> None:
    """400 ``Your key is too long`` naming the first key S3 would refuse for its length."""
    for key in keys:
        if key_too_long(key):
            raise HTTPException(status_code=400, detail=f"{object_resource(key)}: {KEY_TOO_LONG}")


def bucket_resource(bucket: str) -> str:
    return f"bucket '{bucket}'"


def object_resource(key: str) -> str:
    return f"object '{key}'"
