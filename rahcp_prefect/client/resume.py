"""Part-level resume of multipart uploads: what the SDK needs recorded, and how it decides.

As parts finish, ``upload_multipart(..., resume=store)`` records the upload id, the part size,
the file's size and modification time, and each part's number, ETag and MD5 in a ``PartStore``
(the tracker implements it; the SDK never imports the tracker). A later call for the same
bucket/key finds the record and resumes when the file is unchanged (same size and mtime) and
the upload still exists: it lists the upload's parts through the API, keeps a part only when the
listed ETag (and size) is the recorded one and the recorded MD5, sends the others and completes.
The recorded MD5 of a region of a file that still has its recorded size and mtime is the proof
that the local bytes are those the server holds: the kept parts are not read again to hash them
(only the whole file's SHA-256 reads them, alongside the missing parts). Anything else (file
changed, upload gone, another part size) aborts the recorded upload and starts afresh: a stale
part is never completed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from .digests import bare_etag
from .errors import HCPError, NotFoundError
from .keys import multipart_path

if TYPE_CHECKING:
    from .client import HCPClient

logger = logging.getLogger(__name__)

LIST_PARTS_PAGE = 1000
"""The API lists at most 1,000 parts and has no marker: parts past those are sent again."""


@dataclass(frozen=True)
class RecordedPart:
    """One part as S3 acknowledged it: its ETag (quoted) and the hex MD5 of the bytes sent."""

    etag: str
    md5: str


@dataclass(frozen=True)
class RecordedUpload:
    """An unfinished multipart upload of a file, as recorded while its parts were sent."""

    upload_id: str
    part_size: int
    size: int
    mtime_ns: int
    parts: dict[int, RecordedPart] = field(default_factory=dict)


@runtime_checkable
class PartStore(Protocol):
    """Where ``upload_multipart`` records an upload's parts (one record per bucket/key)."""

    def recorded_upload(self, bucket: str, key: str) -> RecordedUpload | None:
        """The record of ``bucket/key``, or None."""

    def record_upload(
        self, bucket: str, key: str, upload_id: str, part_size: int, size: int, mtime_ns: int
    ) -> None:
        """A new upload of ``bucket/key``: replaces any earlier record (and its parts)."""

    def record_part(self, bucket: str, key: str, upload_id: str, number: int, etag: str, md5: str) -> None:
        """Part ``number`` of ``upload_id`` was acknowledged with ``etag``; its bytes hash to ``md5``."""

    def forget_upload(self, bucket: str, key: str) -> None:
        """The upload completed or was aborted: drop its record."""


@dataclass(frozen=True)
class ResumePlan:
    """What a resumed upload keeps: its id and the parts S3 still holds as recorded
    (number -> recorded part), for a file unchanged since they were recorded."""

    upload_id: str
    kept: dict[int, RecordedPart]


async def plan_resume(
    client: HCPClient,
    store: PartStore,
    bucket: str,
    key: str,
    *,
    part_size: int,
    size: int,
    mtime_ns: int,
) -> ResumePlan | None:
    """The resumable part of the recorded upload of ``bucket/key``, or None (after aborting a
    recorded upload that cannot be resumed)."""
    record = store.recorded_upload(bucket, key)
    if record is None:
        return None
    what = f"{bucket}/{key}"
    unchanged = (record.size, record.mtime_ns, record.part_size) == (size, mtime_ns, part_size)
    listed = await _listed_parts(client, bucket, key, record.upload_id) if unchanged else None
    if listed is None:
        reason = "the file changed since" if not unchanged else "the upload is gone"
        logger.warning("Multipart upload of %s cannot be resumed (%s): starting afresh", what, reason)
        await abort_upload(client, bucket, key, record.upload_id)
        store.forget_upload(bucket, key)
        return None
    kept = {
        number: part
        for number, part in record.parts.items()
        if listed.get(number) == (part.etag, _part_length(number, part_size, size))
        and bare_etag(part.etag) == part.md5
    }
    logger.info(
        "Resuming multipart upload of %s: %d of %d parts on the server as recorded",
        what,
        len(kept),
        -(-size // part_size),
    )
    return ResumePlan(record.upload_id, kept)


def _part_length(number: int, part_size: int, size: int) -> int:
    return min(part_size, size - (number - 1) * part_size)


async def _listed_parts(
    client: HCPClient, bucket: str, key: str, upload_id: str
) -> dict[int, tuple[str, int]] | None:
    """``{part number: (ETag, size)}`` the server holds for ``upload_id``; None when it is gone."""
    try:
        answer = await client.request_json(
            "GET",
            multipart_path(bucket, key, "/parts"),
            params={"upload_id": upload_id, "max_parts": LIST_PARTS_PAGE},
        )
    except NotFoundError:
        return None
    return {int(p["PartNumber"]): (str(p["ETag"]), int(p["Size"])) for p in (answer or {}).get("parts", [])}


async def abort_upload(client: HCPClient, bucket: str, key: str, upload_id: str | None) -> None:
    """Abort ``upload_id``; best effort: a failure is logged, never raised (a gone upload is fine)."""
    what = f"{bucket}/{key}"
    if upload_id is None:
        return
    try:
        if await client.s3.abort_multipart_upload(bucket, key, upload_id):
            logger.warning("Aborted multipart upload of %s", what)
    except HCPError as exc:
        logger.warning("Could not abort multipart upload of %s: %s", what, exc)
