"""Part-level resume of multipart uploads: what the SDK needs recorded, and how it decides.

As parts finish, ``upload_multipart(..., resume=store)`` records the upload id, the part size,
the file's size and modification time, and each part's number, ETag and MD5 in a ``PartStore``
(the tracker implements it; the SDK never imports the tracker). A later call for the same
bucket/key finds the record and resumes when the file is unchanged (same size and mtime) and
the upload still exists: it lists the upload's parts through the API, keeps a part when the
listed ETag (and size) is the recorded one and the recorded MD5, sends the others and completes.
A listed part with no record (the run was killed between the server's answer and the record)
is kept too when the MD5 of that region of the unchanged file, read locally once, is the listed
ETag: a part is never sent again only because its record was lost.
The recorded MD5 of a region of a file that still has its recorded size and mtime is the proof
that the local bytes are those the server holds: the kept parts are not read again to hash them
(only the whole file's SHA-256 reads them, alongside the missing parts). Anything else (file
changed, upload gone, another part size) aborts the recorded upload and starts afresh: a stale
part is never completed.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
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
    path: Path | None = None,
) -> ResumePlan | None:
    """The resumable part of the recorded upload of ``bucket/key``, or None (after aborting a
    recorded upload that cannot be resumed). ``path``: the file, to prove listed parts that
    have no record by the MD5 of their region (``_proven_parts``)."""
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
    if path is not None:
        proven = await _proven_parts(path, listed, kept, part_size, size)
        for number, part in proven.items():
            store.record_part(bucket, key, record.upload_id, number, part.etag, part.md5)
        kept.update(proven)
    logger.info(
        "Resuming multipart upload of %s: %d of %d parts on the server as recorded",
        what,
        len(kept),
        -(-size // part_size),
    )
    return ResumePlan(record.upload_id, kept)


async def _proven_parts(
    path: Path, listed: dict[int, tuple[str, int]], kept: dict[int, RecordedPart], part_size: int, size: int
) -> dict[int, RecordedPart]:
    """Listed parts not kept from the record whose region of ``path`` (unchanged: same size and
    mtime as recorded) hashes to the listed ETag; each region is read once."""
    count = -(-size // part_size)
    todo = {
        number: etag
        for number, (etag, length) in listed.items()
        if number not in kept and 1 <= number <= count and length == _part_length(number, part_size, size)
    }
    if not todo:
        return {}
    found = await asyncio.to_thread(_region_md5s, path, part_size, size, sorted(todo))
    return {n: RecordedPart(todo[n], md5) for n, md5 in found.items() if bare_etag(todo[n]) == md5}


def _region_md5s(path: Path, part_size: int, size: int, numbers: list[int]) -> dict[int, str]:
    """Hex MD5 of each part's region of ``path`` (1 MiB reads; nothing held beyond one)."""
    out: dict[int, str] = {}
    with path.open("rb") as handle:
        for number in numbers:
            handle.seek((number - 1) * part_size)
            left, digest = _part_length(number, part_size, size), hashlib.md5(usedforsecurity=False)
            while left > 0:
                chunk = handle.read(min(left, 1 << 20))
                if not chunk:
                    break
                digest.update(chunk)
                left -= len(chunk)
            if left == 0:
                out[number] = digest.hexdigest()
    return out


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
