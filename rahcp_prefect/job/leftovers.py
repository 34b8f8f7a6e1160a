"""What killed runs leave in a bucket, found through the API, not the tracker: staging
prefixes no live job owns, and open multipart uploads under staging.

A tracker lost after a kill (a deleted SQLite file, another machine) leaves staging that no job
row points at; a part upload killed mid-way leaves a multipart upload open, invisible to any
listing of objects, its parts billed for good. ``find_leftovers`` lists ``.rahcp-staging/``
one level deep (delimiter ``/``) and the bucket's open uploads under it, and keeps what is
older than the cutoff (a staging prefix by its newest object's ``LastModified``, an upload by
its ``Initiated``) and not owned by a live job. Prefect-free; the ``cleanup-staging`` flow
removes what it finds and reports it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from rahcp_prefect.client import HCPClient
from rahcp_prefect.job.staging import STAGING_ROOT
from rahcp_prefect.tracker.protocol import JobInfo, JobState

ORPHANED_STAGING = "orphaned staging"
OPEN_UPLOAD = "open multipart upload"


@dataclass(frozen=True)
class Leftover:
    """One thing to remove: a staging prefix (``objects`` under it) or an open upload."""

    kind: str  # ORPHANED_STAGING or OPEN_UPLOAD
    bucket: str
    where: str  # the staging prefix, or the upload's key
    last_modified: datetime | None  # newest object, or when the upload was initiated
    objects: int = 0
    upload_id: str | None = None

    def row(self, action: str) -> dict[str, Any]:
        """A row of the cleanup report (no secret: keys, counts and times only)."""
        return {
            "what": self.kind,
            "bucket": self.bucket,
            "where": self.where,
            "objects": self.objects,
            "last modified": self.last_modified.isoformat() if self.last_modified else "",
            "action": action,
        }


def staging_prefix_of(key: str) -> str | None:
    """The ``.rahcp-staging/<id>/`` prefix a key lies under, or None."""
    if not key.startswith(STAGING_ROOT):
        return None
    run, sep, _rest = key[len(STAGING_ROOT) :].partition("/")
    return f"{STAGING_ROOT}{run}/" if run and sep else None


def live_prefixes(jobs: Iterable[JobInfo], bucket: str, spared: Iterable[str] = ()) -> set[str]:
    """Staging prefixes in ``bucket`` a job still owns: open or committing jobs, less the
    ``spared`` job names (the stale ones the caller rolls back itself). A job's staging may
    live in another bucket than its target (``staging_bucket``), and a staging prefix names
    the run that opened the job, so every live job's prefix counts, whatever its bucket."""
    skip = set(spared)
    return {
        info.staging_prefix
        for info in jobs
        if info.staging_prefix
        and info.state in (JobState.open, JobState.committing)
        and info.job not in skip
    }


def parse_time(value: Any) -> datetime | None:
    """An ISO-8601 timestamp of the API (``...Z``) as an aware datetime, or None."""
    if not value:
        return None
    if isinstance(value, datetime):
        moment = value
    else:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


async def _newest(client: HCPClient, bucket: str, prefix: str) -> tuple[int, datetime | None]:
    """How many objects lie under ``prefix`` and when the newest of them was written."""
    count = 0
    newest: datetime | None = None
    async for item in client.s3.iter_objects(bucket, prefix=prefix):
        count += 1
        moment = parse_time(item.get("LastModified"))
        if moment is not None and (newest is None or moment > newest):
            newest = moment
    return count, newest


async def find_leftovers(
    client: HCPClient, bucket: str, owned: set[str], live: set[str], cutoff: datetime
) -> list[Leftover]:
    """Staging prefixes under ``.rahcp-staging/`` not in ``owned`` whose newest object is
    older than ``cutoff``, then open uploads under staging initiated before ``cutoff`` whose
    staging prefix is not ``live`` (a job's uploads are spared only while that job is live).

    Open uploads are read from one page (the API has no marker): at most 1,000 are listed;
    ``abort_stale_uploads`` gets past them by aborting.
    """
    found: list[Leftover] = []
    async for prefix in client.s3.iter_prefixes(bucket, STAGING_ROOT):
        if prefix in owned:
            continue
        count, newest = await _newest(client, bucket, prefix)
        if count and (newest is None or newest <= cutoff):
            found.append(Leftover(ORPHANED_STAGING, bucket, prefix, newest, objects=count))
    spare = spared_upload(live, cutoff)
    page = await client.s3.list_multipart_uploads(bucket, STAGING_ROOT)
    for upload in page.get("uploads", []):
        if not spare(upload):
            found.append(
                Leftover(OPEN_UPLOAD, bucket, upload["Key"], parse_time(upload.get("Initiated")), upload_id=upload["UploadId"])
            )
    return found


def spared_upload(live: set[str], cutoff: datetime) -> Callable[[dict[str, Any]], bool]:
    """Whether an open upload stays: under the staging of a live job, or initiated after ``cutoff``."""

    def spare(upload: dict[str, Any]) -> bool:
        initiated = parse_time(upload.get("Initiated"))
        return staging_prefix_of(upload["Key"]) in live or (initiated is not None and initiated > cutoff)

    return spare


async def abort_stale_uploads(client: HCPClient, bucket: str, live: set[str], cutoff: datetime) -> int:
    """Abort every open upload under staging that ``spared_upload`` does not spare, past the
    first page too; returns how many."""
    aborted = await client.s3.abort_multipart_uploads(bucket, STAGING_ROOT, keep=spared_upload(live, cutoff))
    return len(aborted)


async def remove_leftover(client: HCPClient, leftover: Leftover, retained: list[str] | None = None) -> int:
    """Remove one leftover; returns the objects deleted (an upload counts as none). Removing
    a staging prefix aborts its open uploads too; an upload already gone is not an error.
    Staged objects the namespace may not delete (retention) stay and go to ``retained``: they
    are reported, never a failure (the job that staged them may well be committed)."""
    if leftover.kind == ORPHANED_STAGING:
        return await client.s3.cleanup_staging(leftover.bucket, leftover.where, kept=retained)
    assert leftover.upload_id is not None
    await client.s3.abort_multipart_upload(leftover.bucket, leftover.where, leftover.upload_id)
    return 0
