"""Where a job's uploads wait before the commit, and the check that staging is what was sent.

Uploads land under ``.rahcp-staging/<run id>/`` (the id of the run that first opened the job),
recorded on the job's tracker row, so a rerun, a parallel run of the job and ``cleanup-staging``
all find the same staging. The prefix stays the job's for its whole life, rollbacks included:
the tracker's keys are staging keys, so records of files committed by earlier runs keep their
meaning for the runs after a rollback.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import NamedTuple, TypeVar

from rahcp_prefect.bulk.existing import RemoteSizes
from rahcp_prefect.bulk.scanner import iter_listing
from rahcp_prefect.client import HCPClient
from rahcp_prefect.job.errors import JobMismatchError, StagingVerificationError
from rahcp_prefect.job.merge import Problems, outer_join
from rahcp_prefect.tracker.protocol import JobState, TrackerProtocol

logger = logging.getLogger(__name__)
T = TypeVar("T")

STAGING_ROOT = ".rahcp-staging/"


@dataclass(frozen=True)
class StagingPlan:
    """Where this run's uploads go and where they end up."""

    bucket: str
    staging_prefix: str
    final_prefix: str
    resumed: bool  # True when an earlier run's staging is being reused
    staging_bucket: str | None = None  # staging in another namespace (``staging_bucket`` setting)

    @property
    def staged_in(self) -> str:
        """The bucket that holds staging: ``staging_bucket``, else the target bucket."""
        return self.staging_bucket or self.bucket

    def final_key(self, staged_key: str) -> str:
        """The final key of a staging (tracker) key."""
        return self.final_prefix + staged_key[len(self.staging_prefix) :]


def plan_staging(
    tracker: TrackerProtocol, bucket: str, final_prefix: str, run_id: str, staging_bucket: str | None = None
) -> StagingPlan:
    """The job's staging: its recorded prefix (rolled back or not), else a new one for this run;
    in ``staging_bucket`` when given (another namespace: ``job.namespace``).

    Atomic through ``open_job``: runs that start together all get the first one's staging.
    """
    info = tracker.job_info()
    if info is not None and info.bucket and (info.bucket, info.final_prefix or "") != (bucket, final_prefix):
        raise JobMismatchError(
            f"job {tracker.job!r} uploads to {info.bucket}/{info.final_prefix or ''}, "
            f"not {bucket}/{final_prefix}: choose another job name"
        )
    proposed = f"{STAGING_ROOT}{run_id}/"
    if info is not None and info.state == JobState.rolled_back and info.staging_prefix:
        proposed = info.staging_prefix  # the job's records of committed files are keyed by it
    opened = tracker.open_job(bucket=bucket, staging_prefix=proposed, final_prefix=final_prefix)
    assert opened.staging_prefix is not None
    resumed = not opened.staging_prefix.endswith(f"/{run_id}/")
    return StagingPlan(bucket, opened.staging_prefix, final_prefix, resumed=resumed, staging_bucket=staging_bucket or None)


class Listed(NamedTuple):
    """One object as a listing shows it: its size and its ETag (quotes and case as sent)."""

    size: int
    etag: str


async def listed_objects(client: HCPClient, bucket: str, prefix: str) -> dict[str, Listed]:
    """``{key: Listed(size, etag)}`` of every object under ``prefix``, page by page."""
    found: dict[str, Listed] = {}
    async for item in client.s3.iter_objects(bucket, prefix=prefix):
        found[item["Key"]] = Listed(int(item["Size"]), str(item.get("ETag") or ""))
    return found


async def listing(client: HCPClient, bucket: str, prefix: str) -> dict[str, int]:
    """``{key: size}`` of every object under ``prefix``."""
    return {key: listed.size for key, listed in (await listed_objects(client, bucket, prefix)).items()}


def problems_text(problems: list[str]) -> str:
    """The first ``SHOWN`` problems, and how many more there are."""
    found = Problems()
    for problem in problems:
        found.add(problem)
    return found.text()


async def settled(
    read: Callable[[], Awaitable[T]], lacking: Callable[[T], bool], grace: float, first_delay: float = 0.5
) -> T:
    """``read()`` again with backoff while ``lacking(result)``, for up to ``grace`` seconds.

    A backend that caches listings (``hcp-api.md`` section 8: up to 120 s with Redis) can
    answer one that lacks objects written a moment ago by presigned PUTs; the checks read
    again before they call a file missing. ``grace`` 0: one read.
    """
    deadline = time.monotonic() + grace
    delay = first_delay
    while True:
        result = await read()
        left = deadline - time.monotonic()
        if not lacking(result) or left <= 0:
            return result
        logger.info("Listing lacks recorded objects: reading it again in %.1f s (listing cache)", min(delay, left))
        await asyncio.sleep(min(delay, left))
        delay = min(delay * 2, 30.0)


async def verify_staging(client: HCPClient, tracker: TrackerProtocol, plan: StagingPlan, grace: float = 0.0) -> int:
    """Check staging against the tracker before the commit; returns how many objects wait in it.

    Every object in staging must be a key the tracker holds as done, with the same size, and
    every done key must be either in staging or, committed earlier, in the final prefix. A
    listing that lacks done keys is read again for up to ``grace`` seconds (a listing cache).
    The staging listing and the tracker's done records are walked in step in key order, the
    final prefix's listing only as far as a done key missing from staging needs it: one page
    of each in memory at any size.
    """

    async def read() -> tuple[int, Problems, int]:
        staged = missing = 0
        problems = Problems()
        final = RemoteSizes(iter_listing(client.s3, plan.bucket, plan.final_prefix))
        listed = ((key, size) async for key, size, _etag in iter_listing(client.s3, plan.staged_in, plan.staging_prefix))
        records = ((key, size) for key, size, _mtime in tracker.iter_done(plan.staging_prefix))
        async for key, size, expected in outer_join(listed, records):
            if size is not None:
                staged += 1
            if expected is None:
                problems.add(f"{key}: in staging but not recorded as done")
            elif size is None:
                found = await final.lookup(plan.final_key(key))
                if found is None or found[0] != expected:
                    missing += 1
                    problems.add(f"{key}: recorded as done but neither staged nor committed")
            elif size != expected:
                problems.add(f"{key}: {size} bytes in staging, {expected} recorded")
        return staged, problems, missing

    staged, problems, _missing = await settled(read, lambda found: found[2] > 0, grace)
    if problems:
        raise StagingVerificationError(f"staging check failed for {problems.count} key(s): {problems.text()}")
    return staged
