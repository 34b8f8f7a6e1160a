"""The ``cleanup-staging`` flow: remove upload staging that crashed runs left behind.

A run that is killed cannot roll back, but its job row in the tracker keeps the staging
prefix. This flow finds open jobs whose staging has not moved for ``older_than_hours``,
deletes their staged objects and records the rollback. Jobs caught half-way through a commit
are left alone: staging then holds objects not yet in the final prefix, and the next run of
the job finishes that commit.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from prefect import flow, get_run_logger

from rahcp_prefect.flows.naming import cleanup_run_name, tag_run
from rahcp_prefect.flows.artifacts import publish_cleanups
from rahcp_prefect.flows.common import load_blocks
from rahcp_prefect.flows.staging import STAGING_ROOT, mark_rolled_back
from rahcp_prefect.tasks import cleanup_staging as cleanup_staging_task
from rahcp_prefect.tracker.protocol import JobInfo, JobState


def _stale(info: JobInfo, cutoff: datetime) -> bool:
    if info.updated_at is None:
        return True
    updated = info.updated_at if info.updated_at.tzinfo else info.updated_at.replace(tzinfo=timezone.utc)
    return updated <= cutoff


@flow(name="cleanup-staging", flow_run_name=cleanup_run_name, log_prints=False)
async def cleanup_staging(
    credentials_block: str = "hcp",
    tracker_block: str | None = None,
    older_than_hours: float = 24.0,
    job: str | None = None,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Delete the staging of open upload jobs idle for ``older_than_hours`` (or of ``job``).

    Args:
        credentials_block: Name of an ``HCPCredentials`` block.
        tracker_block: Name of an ``HCPTracker`` block (a local SQLite file when empty).
        older_than_hours: Only jobs whose tracker row is at least this old.
        job: Only this job (still only if it is open and idle long enough).
        dry_run: Only report what would be removed.
    """
    if older_than_hours < 0:
        raise ValueError(f"older_than_hours must be >= 0, got {older_than_hours}")
    logger = get_run_logger()
    blocks = await load_blocks(credentials_block, None, tracker_block, None)
    cutoff = datetime.now(timezone.utc) - timedelta(hours=older_than_hours)
    catalog = blocks.tracker.get_tracker(job or "cleanup-staging")
    try:
        jobs = catalog.list_jobs()
    finally:
        catalog.close()
    cleaned: list[dict[str, Any]] = []
    for info in jobs:
        if job is not None and info.job != job:
            continue
        if not (info.bucket and info.staging_prefix and info.staging_prefix.startswith(STAGING_ROOT)):
            continue
        if info.state == JobState.committing:
            logger.warning("Job %s is half-way through a commit: left for its next run", info.job)
            continue
        if info.state != JobState.open or not _stale(info, cutoff):
            continue
        removed = 0
        if not dry_run:
            removed = await cleanup_staging_task(blocks.credentials, info.bucket, info.staging_prefix)
            tracker = blocks.tracker.get_tracker(info.job)
            try:
                mark_rolled_back(tracker, info)
            finally:
                tracker.close()
        cleaned.append({"job": info.job, "bucket": info.bucket, "staging": info.staging_prefix, "removed": removed})
        logger.info("Staging of job %s (%s/%s): %d object(s) removed", info.job, info.bucket, info.staging_prefix, removed)
    await tag_run(*sorted({str(item["bucket"]) for item in cleaned}))
    await publish_cleanups(cleaned, dry_run)
    return {"jobs": cleaned, "dry_run": dry_run}
