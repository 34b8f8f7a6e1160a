"""The ``bulk-upload`` flow: a folder to HCP through staging, committed only when complete.

The job's steps are a ``JobRun`` with an ``UploadStaging`` (``rahcp_prefect.job``): take the job
lease, plan what to send once, upload it in batches into the job's staging prefix, verify it,
commit it under the commit lock, check the final prefix; on failure before the commit apply
``on_failure``. This flow only wires Prefect around it: parameters, blocks, the batch and commit
tasks, artifacts, events and the run's name.
"""

from __future__ import annotations

from typing import Any, Literal

from prefect import flow, get_run_logger

from rahcp_prefect import events
from rahcp_prefect.bulk.upload import check_source_dir
from rahcp_prefect.bulk.validation import check_job_inputs
from rahcp_prefect.client import HCPClient
from rahcp_prefect.flows.artifacts import RunView
from rahcp_prefect.flows.common import (
    DEFAULT_BATCH_SIZE, finish, folder_parameter, job_name, job_run, load_blocks, preview,
)
from rahcp_prefect.flows.naming import upload_run_name
from rahcp_prefect.job import (
    Batch, BulkTransferFailed, JobRun, LeaseMode, StagingPlan, UploadStaging, lease_mode, parse_on_busy,
    parse_on_failure,
)
from rahcp_prefect.job.deletions import parse_max_delete
from rahcp_prefect.tracker.protocol import TrackerProtocol
from rahcp_prefect.tasks import commit_staging, upload_batch

__all__ = ["BulkTransferFailed", "bulk_upload"]


@flow(name="bulk-upload", flow_run_name=upload_run_name, log_prints=False)
async def bulk_upload(
    source_dir: str,
    bucket: str,
    prefix: str = "",
    credentials_block: str = "hcp",
    settings_block: str | None = None,
    tracker_block: str | None = None,
    settings_overrides: dict[str, Any] | None = None,
    job: str | None = None,
    include: list[str] | None = None,
    exclude: list[str] | None = None,
    skip_existing: bool = True,
    follow_symlinks: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
    dry_run: bool = False,
    cooperative: bool | None = None,
    on_busy: Literal["wait", "fail"] = "wait",
    on_failure: Literal["rollback", "keep"] = "rollback",
    mirror_deletions: bool = False,
    max_delete: int | str | None = None,
) -> dict[str, Any]:
    """Upload ``source_dir`` to ``bucket/prefix`` through staging; commit only when complete.

    Args:
        source_dir: Local folder to upload (walked lazily).
        bucket: Target bucket; must exist.
        prefix: Final key prefix; keys are ``prefix + relative/path``.
        credentials_block: Name of an ``HCPCredentials`` block.
        settings_block: Name of an ``HCPTransferSettings`` block (defaults when empty).
        tracker_block: Name of an ``HCPTracker`` block (a local SQLite file when empty).
        settings_overrides: Per-run overrides of transfer settings, e.g. ``{"workers": 32}``.
        job: Tracker job name; defaults to ``bulk-upload:<bucket>/<prefix>``.
        include: Glob patterns; only matching files are uploaded.
        exclude: Glob patterns; matching files are skipped.
        skip_existing: Incremental sync (default): send only files that are new, changed
            (size or mtime differs from what the tracker recorded when they were sent) or
            missing from the bucket; unchanged files cost no request beyond one listing of the
            final prefix. False: send every file again (a full refresh through staging).
        follow_symlinks: Follow symbolic links (loops are detected).
        batch_size: Files per upload task run.
        dry_run: Only report what would be uploaded.
        cooperative: Share the job with other runs through claims on the tracker (many runs,
            one job). Default: on when ``job`` is given and the tracker is PostgreSQL.
            A cooperative run never rolls back the shared staging on failure.
        on_busy: When another single-mode run holds the job: ``"wait"`` for it, or ``"fail"``
            at once naming it. Single and cooperative runs of one job never mix.
        on_failure: When files fail: ``"rollback"`` deletes this job's staging (files committed
            by earlier runs stay recorded), ``"keep"`` keeps staging and the done marks so the
            next run sends only what failed. The final prefix is untouched either way.
        mirror_deletions: Delete from the final prefix the files deleted at the source since
            the job sent them (default: only report them, ``deleted_at_source``). Nothing is
            deleted when the source is empty or could not be read in full, after any error,
            or beyond ``max_delete``; a dry run lists them; retained objects are reported.
            Single-mode runs only.
        max_delete: With ``mirror_deletions``: the most deletions a run may make, a count
            (``10``) or a percentage of the job's files (``"5%"``); more deletes none.
    """
    parse_on_busy(on_busy)
    policy = parse_on_failure(on_failure)
    check_job_inputs(bucket, prefix, batch_size)
    source = folder_parameter("source_dir", source_dir)
    check_source_dir(source)
    blocks = await load_blocks(credentials_block, settings_block, tracker_block, settings_overrides)
    named, job = job is not None, job_name("bulk-upload", bucket, prefix, job)
    if mirror_deletions and lease_mode(cooperative, named, blocks.tracker.is_shared) is LeaseMode.cooperative:
        raise ValueError("mirror_deletions is for single-mode runs: a cooperative run sees only its own scan")
    view = RunView.for_flow("upload", job, bucket, prefix, blocks, tracker_block, source=str(source))

    async def send(batch: Batch) -> dict[str, Any]:
        return await upload_batch(
            blocks.credentials, blocks.tracker, job, batch.bucket, source, batch.staging, entries=batch.entries,
            settings=blocks.settings, skip_existing=batch.skip_existing, skip_done=False,
            follow_symlinks=follow_symlinks, on_progress=view.progress.on_batch_progress if batch.progress else None,
            on_error=view.failures, client=batch.client,
        )

    async def move(client: HCPClient, plan: StagingPlan, on_progress: Any) -> dict[str, Any]:
        return await commit_staging(
            blocks.credentials, plan.bucket, plan.staging_prefix, plan.final_prefix,
            concurrency=blocks.settings.commit_concurrency, on_progress=on_progress,
            max_concurrency=blocks.settings.max_workers,
            staging_bucket=plan.staging_bucket, client=client,
        )

    staging = UploadStaging(
        bucket=bucket, prefix=prefix, include=list(include or []), exclude=list(exclude or []), source=source,
        follow_symlinks=follow_symlinks, skip_existing=skip_existing, policy=policy,
        move=move, write_manifest=blocks.settings.write_manifest, warn=get_run_logger().warning,
        mirror_deletions=mirror_deletions, max_delete=parse_max_delete(max_delete),
        staging_bucket=blocks.settings.staging_bucket, listing_grace=blocks.settings.listing_cache_seconds,
    )
    async with job_run(
        blocks, view, staging, send, _failed, cooperative=cooperative, named=named, on_busy=on_busy,
        batch_size=batch_size,
    ) as run:
        await staging.check_target(run)  # a missing bucket, or staging it would retain, fails here
        if dry_run:
            return await preview(run, view)
        outcome, held = await run.execute()
        if held:
            events.upload_committed(job, bucket, prefix, run.totals.as_dict())
        return await finish(run, view, outcome, held)


def _failed(view: RunView, run: JobRun | None, tracker: TrackerProtocol, exc: BaseException) -> None:
    """The events of a failed upload: the rollback (when staging was deleted), then the failure."""
    if run is not None and run.failure is not None and run.failure.staging_deleted:
        events.upload_rolled_back(view.job, view.bucket, view.prefix, run.totals.as_dict(), exc)
    events.upload_failed(view.job, view.bucket, view.prefix, tracker, exc)
