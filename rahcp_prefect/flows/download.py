"""The ``bulk-download`` flow: a prefix into a staging folder, moved into place when complete.

The job's steps are a ``JobRun`` with a ``DownloadStaging`` (``rahcp_prefect.job``): files are
downloaded in batches into a staging folder beside the destination, ``.<name>.rahcp-staging``,
and moved into the destination only when every file of the run arrived; on failure the
destination is untouched and staging is kept, so the next run of the job resumes from it.
This flow only wires Prefect around it: parameters, blocks, the batch task, artifacts, events
and the run's name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from prefect import flow

from rahcp_prefect import events
from rahcp_prefect.bulk.validation import check_job_inputs
from rahcp_prefect.flows.artifacts import RunView
from rahcp_prefect.flows.common import (
    DEFAULT_BATCH_SIZE, finish, folder_parameter, job_name, job_run, load_blocks, preview,
)
from rahcp_prefect.flows.naming import download_run_name
from rahcp_prefect.job import Batch, DownloadStaging, JobRun, parse_on_busy, promote_staging, staging_dir_for
from rahcp_prefect.tasks import download_batch
from rahcp_prefect.tracker.protocol import TrackerProtocol

__all__ = ["bulk_download", "promote_staging", "staging_dir_for"]


@flow(name="bulk-download", flow_run_name=download_run_name, log_prints=False)
async def bulk_download(
    bucket: str,
    dest_dir: str,
    prefix: str = "",
    credentials_block: str = "hcp",
    settings_block: str | None = None,
    tracker_block: str | None = None,
    settings_overrides: dict[str, Any] | None = None,
    job: str | None = None,
    include: list[str] | None = None,
    exclude: list[str] | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    dry_run: bool = False,
    cooperative: bool | None = None,
    on_busy: Literal["wait", "fail"] = "wait",
) -> dict[str, Any]:
    """Download ``bucket/prefix`` into ``dest_dir`` through a staging folder beside it.

    Args:
        bucket: Source bucket.
        dest_dir: Local destination folder (created if missing).
        prefix: Only keys under this prefix; it is stripped from local paths.
        credentials_block: Name of an ``HCPCredentials`` block.
        settings_block: Name of an ``HCPTransferSettings`` block (defaults when empty).
        tracker_block: Name of an ``HCPTracker`` block (a local SQLite file when empty).
        settings_overrides: Per-run overrides of transfer settings, e.g. ``{"workers": 32}``.
        job: Tracker job name; defaults to ``bulk-download:<bucket>/<prefix>``.
        include: Glob patterns; only matching keys are downloaded.
        exclude: Glob patterns; matching keys are skipped.
        batch_size: Keys per download task run.
        dry_run: Only report what would be downloaded.
        cooperative: Share the job with other runs through claims on the tracker (the
            destination must then be a filesystem they all see). Default: on when ``job`` is
            given and the tracker is PostgreSQL.
        on_busy: When another single-mode run holds the job: ``"wait"`` for it, or ``"fail"``
            at once naming it. Single and cooperative runs of one job never mix.
    """
    parse_on_busy(on_busy)
    check_job_inputs(bucket, prefix, batch_size)
    dest = folder_parameter("dest_dir", dest_dir).resolve()
    if dest.exists() and not dest.is_dir():
        raise NotADirectoryError(f"dest_dir is not a directory: {dest}")
    blocks = await load_blocks(credentials_block, settings_block, tracker_block, settings_overrides)
    named, job = job is not None, job_name("bulk-download", bucket, prefix, job)
    view = RunView.for_flow("download", job, bucket, prefix, blocks, tracker_block, dest_dir=str(dest))

    async def send(batch: Batch) -> dict[str, Any]:
        return await download_batch(
            blocks.credentials, blocks.tracker, job, bucket, Path(batch.staging), prefix, entries=batch.entries,
            settings=blocks.settings, skip_done=batch.skip_done,
            on_progress=view.progress.on_batch_progress if batch.progress else None,
            on_error=view.failures, manifest=batch.manifest, mtimes=batch.mtimes, client=batch.client,
        )

    staging = DownloadStaging(bucket=bucket, prefix=prefix, include=list(include or []), exclude=list(exclude or []), dest=dest)
    async with job_run(
        blocks, view, staging, send, _failed, cooperative=cooperative, named=named, on_busy=on_busy,
        batch_size=batch_size,
    ) as run:
        if dry_run:
            return await preview(run, view)
        outcome, held = await run.execute()
        result = await finish(run, view, outcome, held, errors=staging.not_written, dest_dir=str(dest))
        if (partial := staging.partial_failure(run, result)) is not None:
            raise partial  # every representable file is in place; the error names the others
        events.download_completed(job, bucket, prefix, run.totals.as_dict(), str(dest))
        return result


def _failed(view: RunView, run: JobRun | None, tracker: TrackerProtocol, exc: BaseException) -> None:
    """The event of a failed download (the destination is untouched)."""
    events.download_failed(view.job, view.bucket, view.prefix, tracker, exc)
