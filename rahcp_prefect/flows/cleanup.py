"""The ``cleanup-staging`` flow: remove upload staging that crashed runs left behind.

A run that is killed cannot roll back, but its job row in the tracker keeps the staging
prefix. This flow finds open jobs that no run holds and whose staging has not moved for
``older_than_hours``, and rolls them back as a failed run would (``job.roll_back``: staged
objects deleted, their marks forgotten, files committed earlier kept). Jobs caught half-way through a commit
are left alone: staging then holds objects not yet in the final prefix, and the next run of
the job finishes that commit.

Then, through the API and not the tracker (``job.leftovers``), it finds what no job row points
at any more: staging prefixes under ``.rahcp-staging/`` that no open job owns (the tracker was
lost after a kill) and open multipart uploads under staging (a part upload killed mid-way), both
older than ``older_than_hours``, and removes them too. A dry run removes nothing and lists it
all; either way one table artifact per bucket, ``cleanup-staging-<bucket>``, says what.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from prefect import flow, get_run_logger

from rahcp_prefect.flows.naming import cleanup_run_name, tag_run
from rahcp_prefect.blocks import HCPCredentials
from rahcp_prefect.bulk.validation import check_bucket
from rahcp_prefect.flows.artifacts import artifact_key
from rahcp_prefect.flows.common import load_blocks, run_id
from rahcp_prefect.job import STAGING_ROOT, StagingPlan, roll_back
from rahcp_prefect.job.errors import JobBusyError, JobModeError
from rahcp_prefect.job.lease import hold_job
from rahcp_prefect.job.policy import OnBusy
from rahcp_prefect.job.leftovers import abort_stale_uploads, find_leftovers, live_prefixes, remove_leftover
from rahcp_prefect.tracker.protocol import JobInfo, JobState, LeaseMode


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
    buckets: list[str] | None = None,
) -> dict[str, Any]:
    """Delete the staging of open upload jobs idle for ``older_than_hours`` (or of ``job``),
    then orphaned staging and open multipart uploads under staging in ``buckets``.

    Args:
        credentials_block: Name of an ``HCPCredentials`` block.
        tracker_block: Name of an ``HCPTracker`` block (a local SQLite file when empty).
        older_than_hours: Only jobs whose tracker row, staging whose newest object, and
            uploads initiated at least this long ago.
        job: Only this job (still only if it is open and idle long enough); no search for
            orphans then.
        dry_run: Only report what would be removed.
        buckets: Buckets to search for orphaned staging and open uploads; default: the
            buckets of the tracker's upload jobs.
    """
    if older_than_hours < 0:
        raise ValueError(f"older_than_hours must be >= 0, got {older_than_hours}")
    for bucket in buckets or []:
        check_bucket(bucket, "buckets")
    logger = get_run_logger()
    blocks = await load_blocks(credentials_block, None, tracker_block, None)
    cutoff = datetime.now(timezone.utc) - timedelta(hours=older_than_hours)
    catalog = blocks.tracker.get_tracker(job or "cleanup-staging")
    try:
        jobs = catalog.list_jobs()
    finally:
        catalog.close()
    owner = f"cleanup-staging:{run_id()}"
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
        if info.lease_owner is not None:
            logger.info("Job %s is held by run %s: left alone", info.job, info.lease_owner)
            continue
        removed = 0
        if not dry_run:
            plan = StagingPlan(info.bucket, info.staging_prefix, info.final_prefix or "", resumed=True)
            tracker = blocks.tracker.get_tracker(info.job)
            try:
                # hold the job (renewed) while deleting its staging, so no run starts writing into it
                async with hold_job(
                    tracker, owner, LeaseMode.single, blocks.tracker.lease_seconds, OnBusy.fail, log=logger
                ) as lease, blocks.credentials.get_client() as client:
                    lease.check()
                    removed = (await roll_back(client, tracker, plan)).staged
            except (JobBusyError, JobModeError) as exc:
                logger.info("Job %s was taken meanwhile, left alone: %s", info.job, exc)
                continue
            finally:
                tracker.close()
        cleaned.append({"job": info.job, "bucket": info.bucket, "staging": info.staging_prefix, "removed": removed})
        logger.info("Staging of job %s (%s/%s): %d object(s) removed", info.job, info.bucket, info.staging_prefix, removed)
    searched: list[str] = []
    if job is None:
        stale = {item["job"] for item in cleaned}
        searched = buckets or sorted({info.bucket for info in jobs if info.bucket and _is_upload_staging(info)})
        cleaned += await _remove_leftovers(blocks.credentials, searched, jobs, stale, cutoff, dry_run)
    await tag_run(*sorted({str(item["bucket"]) for item in cleaned} | set(searched)))
    await _publish(cleaned, searched, dry_run)
    return {"jobs": [item for item in cleaned if "what" not in item],
            "leftovers": [item for item in cleaned if "what" in item], "dry_run": dry_run}


def _is_upload_staging(info: JobInfo) -> bool:
    return bool(info.staging_prefix and info.staging_prefix.startswith(STAGING_ROOT))


async def _remove_leftovers(
    credentials: HCPCredentials,
    buckets: list[str],
    jobs: list[JobInfo],
    stale: set[str],
    cutoff: datetime,
    dry_run: bool,
) -> list[dict[str, Any]]:
    """Find (and unless ``dry_run`` remove) orphaned staging and open uploads in ``buckets``:
    one ``cleaned`` item each (``job`` says what it is, ``what`` marks it as a leftover)."""
    logger = get_run_logger()
    items: list[dict[str, Any]] = []
    async with credentials.get_client() as client:
        for bucket in buckets:
            # Staging of any open job is its own (stale ones were rolled back above, or would
            # be); its uploads are left alone only while the job is live.
            found = await find_leftovers(
                client, bucket, live_prefixes(jobs, bucket), live_prefixes(jobs, bucket, stale), cutoff
            )
            for leftover in found:
                retained: list[str] = []
                removed = 0 if dry_run else await remove_leftover(client, leftover, retained)
                items.append({
                    "job": f"({leftover.kind})", "bucket": bucket, "staging": leftover.where,
                    "removed": removed, "retained": len(retained), "what": leftover.kind, "objects": leftover.objects,
                    "last_modified": leftover.last_modified.isoformat() if leftover.last_modified else None,
                })
                logger.info(
                    "%s %s in %s: %s (%d object(s), last modified %s)",
                    "Would remove" if dry_run else "Removed", leftover.kind, bucket, leftover.where,
                    leftover.objects, leftover.last_modified,
                )
            if not dry_run:  # past the first 1,000 open uploads, which one listing shows
                await abort_stale_uploads(client, bucket, live_prefixes(jobs, bucket, stale), cutoff)
    return items


async def _publish(cleaned: list[dict[str, Any]], buckets: list[str], dry_run: bool) -> None:
    """One table artifact per bucket, ``cleanup-staging-<bucket>``: what was removed (or would be)."""
    from prefect.artifacts import acreate_table_artifact

    by_bucket: dict[str, list[dict[str, Any]]] = {bucket: [] for bucket in buckets}
    for item in cleaned:
        by_bucket.setdefault(str(item["bucket"]), []).append(item)
    action = "would remove" if dry_run else "removed"
    for bucket, items in by_bucket.items():
        rows = [
            {"what": item.get("what", "staging of an idle job"), "job": item["job"], "where": item["staging"],
             "objects": item.get("objects", item["removed"]),
             "action": f"{action}; {item['retained']} retained (retention: may not be deleted)" if item.get("retained") else action}
            for item in items
        ] or [{"what": "(nothing to remove)", "job": "", "where": "", "objects": 0, "action": ""}]
        await acreate_table_artifact(
            table=rows,
            key=artifact_key(f"cleanup-staging-{bucket}"),
            description=f"cleanup-staging of {bucket}{' (dry run)' if dry_run else ''}: {action} {len(items)} item(s)",
        )
