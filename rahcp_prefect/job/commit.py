"""The commit: staging moved to the final prefix under the job's commit lock, then checked.

The job is marked ``committing`` before the first object moves, so a run that dies half-way
leaves a record: the next run finishes the moves first (``resume_commit``). Only the final
check (``check.check_final``, then the manifest written and read back) turns ``committing``
into ``committed``. The moves themselves are
given by the caller (a flow passes its Prefect task), so this module stays Prefect-free.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from rahcp_prefect.client import HCPClient
from rahcp_prefect.job.check import FinalCheck, check_final, fail_final_check
from rahcp_prefect.job.manifest import check_manifest, commit_manifest
from rahcp_prefect.job.mtimes import check_mtimes, plan_mtimes, write_mtimes
from rahcp_prefect.job.renewal import renewed
from rahcp_prefect.job.staging import StagingPlan
from rahcp_prefect.tracker.protocol import JobState, TrackerProtocol

logger = logging.getLogger(__name__)

#: Moves staging to the final prefix: ``{"moved": n, "api_retries": n}``.
MoveFn = Callable[[], Awaitable[dict[str, int]]]


@contextlib.asynccontextmanager
async def commit_lock(tracker: TrackerProtocol, owner: str, lease_seconds: float) -> AsyncIterator[bool]:
    """Hold the job's commit lock (renewed while held); yields False when another run has it."""
    if not tracker.acquire_commit(owner, lease_seconds):
        yield False
        return
    renew = partial(tracker.acquire_commit, owner, lease_seconds)  # the holder re-acquiring extends it
    try:
        async with renewed(renew, lease_seconds / 3, f"commit lock of job {tracker.job!r}"):
            yield True
    finally:
        tracker.release_commit(owner)


async def wait_for_commit_lock(tracker: TrackerProtocol, owner: str, lease_seconds: float) -> None:
    """Take the job's commit lock for ``owner``, waiting while another run holds it.

    A live holder renews its lease until it is done; a run killed while holding it stops
    renewing, so its lease runs out within ``lease_seconds`` and the lock comes free.
    """
    poll = min(1.0, lease_seconds / 4)
    waited = False
    while not tracker.acquire_commit(owner, lease_seconds):
        if not waited:
            info = tracker.job_info()
            holder = info.commit_owner if info else None
            logger.info("Job %s: waiting for the commit lock held by run %s", tracker.job, holder)
            waited = True
        await asyncio.sleep(poll)


@dataclass
class CommitResult:
    """What one commit did: objects moved, API requests repeated, and the final check."""

    moved: int
    api_retries: int
    check: FinalCheck
    extra: dict[str, Any] = field(default_factory=dict)  # ``{"manifest": files listed}`` when written


async def resume_commit(tracker: TrackerProtocol, owner: str, lease_seconds: float, move: MoveFn) -> int:
    """Finish the moves of a commit an earlier run left half-done (waiting for its lock);
    returns the API requests repeated. The job is then open again: this run's own commit and
    final check decide when it is committed."""
    await wait_for_commit_lock(tracker, owner, lease_seconds)
    async with commit_lock(tracker, owner, lease_seconds):
        info = tracker.job_info()
        if info is None or info.state != JobState.committing:
            return 0  # the earlier run finished meanwhile
        result = await move()
    return int(result.get("api_retries", 0))


async def commit_job(
    tracker: TrackerProtocol,
    plan: StagingPlan,
    owner: str,
    lease_seconds: float,
    move: MoveFn,
    client: HCPClient,
    manifest: bool = True,
) -> CommitResult | None:
    """Move staging to the final prefix under the commit lock, check the final prefix, write
    the job's manifest and its files' times (``mtimes.py``) last and check them too
    (``manifest=False``: neither) before the job is
    ``committed``.

    ``client`` is opened for the commit: every API request it repeated (its login's included)
    is counted in the result's ``api_retries``, with the moves'.

    Returns None when another run holds the lock (a cooperative run commits for all). Raises
    ``FinalCheckError`` (the job stays ``committing``) when the final prefix lacks a file of
    the job as recorded or the manifest is not what was written; marks the job ``committed``
    only after the check passed.
    """
    async with commit_lock(tracker, owner, lease_seconds) as held:
        if not held:
            return None
        tracker.update_job(state=JobState.committing)
        moved: dict[str, Any] = await move()
        done = tracker.done_digests()  # read once: the check and the manifest both need them
        check = await check_final(client, tracker, plan, done)
        extra: dict[str, Any] = {}
        if check.ok and manifest:
            written = await commit_manifest(client, done, plan.bucket, plan.staging_prefix, plan.final_prefix)
            check.manifest = await check_manifest(client, plan.bucket, plan.final_prefix, check.listed, written)
            times = plan_mtimes(tracker.iter_done(plan.staging_prefix), plan.staging_prefix)
            await write_mtimes(client, plan.bucket, plan.final_prefix, times)
            check.manifest += await check_mtimes(client, plan.bucket, plan.final_prefix, times, written)
            extra["manifest"] = len(written)
        retries = int(moved.get("api_retries", 0)) + client.api_retries
        if not check.ok:
            raise fail_final_check(tracker, plan, check)
        tracker.update_job(state=JobState.committed)
        return CommitResult(int(moved.get("moved", 0)), retries, check, extra)
