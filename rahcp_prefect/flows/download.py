"""The ``bulk-download`` flow: a prefix into a staging folder, moved into place when complete.

Files are downloaded (in batches, one engine run per task run) into a staging folder beside
the destination, ``.<name>.rahcp-staging``. Only when every file of the run arrived does the
flow move them into the destination; on failure the destination is untouched and staging is
kept, so the next run of the job resumes from it instead of downloading again.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Literal

from prefect import flow, get_run_logger

from rahcp_prefect.bulk.exclusions import download_staging
from rahcp_prefect.bulk.filters import GlobFilter
from rahcp_prefect.bulk.validation import check_job_inputs
from rahcp_prefect.bulk.paths import UnsafeKeyError, local_path, relative_key, writable_objects_filter
from rahcp_prefect.bulk.scanner import iter_listing
from rahcp_prefect.bulk.sync import Change, SortedRecords, SyncCounts, decide_download, local_state
from rahcp_prefect.flows.naming import download_run_name, tag_run
from rahcp_prefect.flows.artifacts import RunView, publish_dry_run, publish_job_status
from rahcp_prefect.flows.common import (
    DEFAULT_BATCH_SIZE,
    FlowBlocks,
    abatched,
    first_errors,
    job_name,
    load_blocks,
    run_id,
)
from rahcp_prefect.job import (
    REGISTER_CHUNK,
    BulkTransferFailed,
    LeaseMode,
    add_counts,
    commit_lock,
    drain_job,
    hold_job,
    lease_mode,
    new_counts,
    parse_on_busy,
    register_manifest,
    wait_for_commit_lock,
)
from rahcp_prefect import events
from rahcp_prefect.job.manifest import ExpectedDigests, read_manifest
from rahcp_prefect.job.mtimes import ExpectedMtimes, read_mtimes
from rahcp_prefect.job.promotion import Promotion, promote_staging as promote
from rahcp_prefect.tasks import download_batch, open_client
from rahcp_prefect.tracker.protocol import JobState, TrackerProtocol, TransferStatus


DRY_RUN_SAMPLE = 50


def staging_dir_for(dest: Path) -> Path:
    """The staging folder of ``dest``: a hidden sibling, on the same filesystem."""
    return download_staging(dest)


def promote_staging(staging: Path, dest: Path) -> int:
    """Move every complete file from ``staging`` into ``dest``; returns how many moved
    (``job.promotion.promote_staging`` also names what it could not place)."""
    return promote(staging, dest).moved


def _in_place(dest: Path, prefix: str, key: str, size: int, records: SortedRecords, counts: SyncCounts | None) -> bool:
    """Whether ``key`` is in ``dest`` as this job wrote it (``sync.decide_download``); the
    decision is counted in ``counts`` when given."""
    try:
        rel = relative_key(key, prefix)
        local = local_state(local_path(str(dest), rel)) if rel is not None else None
    except UnsafeKeyError:
        local = None
    change = decide_download(local, records.lookup(key), size)
    if counts is not None:
        counts.add(change)
    return change is Change.unchanged


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
    busy = parse_on_busy(on_busy)
    logger = get_run_logger()
    started = time.monotonic()
    check_job_inputs(bucket, prefix, batch_size)
    dest = Path(dest_dir).expanduser().resolve()
    if dest.exists() and not dest.is_dir():
        raise NotADirectoryError(f"dest_dir is not a directory: {dest}")
    blocks = await load_blocks(credentials_block, settings_block, tracker_block, settings_overrides)
    mode = lease_mode(cooperative, job is not None, blocks.tracker.is_shared)
    job = job_name("bulk-download", bucket, prefix, job)
    owner = run_id()
    staging = staging_dir_for(dest)
    accepts = GlobFilter(list(include or []), list(exclude or []))
    tracker = blocks.tracker.get_tracker(job)
    view = RunView.for_flow("download", job, bucket, prefix, blocks, tracker_block, dest_dir=str(dest))
    await tag_run(bucket)
    try:
        if dry_run:
            return await _download_alone(
                blocks, tracker, job, owner, bucket, prefix, dest, staging, accepts, batch_size, True, view
            )
        lease_seconds = blocks.tracker.lease_seconds
        not_written: list[tuple[str, str]] = []
        async with hold_job(tracker, owner, mode, lease_seconds, busy, log=logger) as lease:
            if mode is LeaseMode.cooperative:
                tracker.update_job(bucket=bucket, staging_prefix=str(staging), final_prefix=prefix)
                totals = await _download_cooperatively(
                    blocks, tracker, job, owner, bucket, prefix, staging, accepts, batch_size, view
                )
            else:
                totals = await _download_alone(
                    blocks, tracker, job, owner, bucket, prefix, dest, staging, accepts, batch_size, False, view
                )
                # alone, this run moves its files: wait if a dead run holds the lock
                await wait_for_commit_lock(tracker, owner, lease_seconds)
            lease.check()  # never move files of a staging folder the job no longer holds
            async with commit_lock(tracker, owner, lease_seconds) as held:
                if not held:
                    outcome = "moved into place by the run holding the lock"
                    moved = 0
                else:
                    with view.phase("commit") as moving:
                        promotion = promote(staging, dest) if staging.exists() else Promotion()
                        moved = moving.files = promotion.moved
                    tracker.update_job(state=JobState.committed)
                    outcome = "complete"
                    not_written = _not_written(totals, promotion, prefix)
        elapsed = time.monotonic() - started
        totals["moved"] = moved
        totals.setdefault("failed", 0)
        if held and not_written:
            outcome = "partial"
        await view.publish_summary(outcome if held else "left to another run", totals, not_written)
        await publish_job_status(job, tracker.summary())
        logger.info("bulk-download %s: %d file(s) moved into %s, %s", job, moved, dest, totals)
        result = {
            **totals, "job": job, "dest_dir": str(dest), "outcome": outcome, "elapsed": round(elapsed, 3),
            "phases": view.phases(),
        }
        if held and not_written:  # every representable file is in place; say which are not
            raise BulkTransferFailed(
                f"{len(not_written)} object(s) cannot be written in {dest} (unwritable: "
                f"{first_errors(not_written)}); the other {moved} file(s) are in place",
                result,
            )
        events.download_completed(job, bucket, prefix, totals, str(dest))
        return result
    except Exception as exc:
        events.download_failed(job, bucket, prefix, tracker, exc)
        await view.publish_failure(exc)
        raise
    finally:
        tracker.close()


async def _download_alone(
    blocks: FlowBlocks,
    tracker: TrackerProtocol,
    job: str,
    owner: str,
    bucket: str,
    prefix: str,
    dest: Path,
    staging: Path,
    accepts: GlobFilter,
    batch_size: int,
    dry_run: bool,
    view: RunView,
) -> dict[str, Any]:
    """One run: list, skip what is done and in place, download the rest in batches.

    The listing is read twice, page by page: once to count (progress, dry run), once to feed
    the batches, so a prefix of millions of keys never sits in memory as a list.
    """
    listed = new_counts()  # the listings' retried API requests go into the run's totals
    sync = SyncCounts()
    unwritable: list[tuple[str, int, str]] = []  # (key, size, why): named, never sent

    async def todo() -> AsyncIterator[tuple[str, int, str | None]]:
        # with its ETag, so a single-part object is checked against its MD5 without a manifest
        records = SortedRecords(tracker.iter_done(prefix))
        why = writable_objects_filter(prefix, str(dest))
        async for key, size, etag in _listing(blocks, bucket, prefix, accepts, listed):
            if why(key) is None and not _in_place(dest, prefix, key, size, records, None):
                yield key, size, etag

    count = skipped = total_bytes = 0
    sample: list[tuple[str, int]] = []
    records = SortedRecords(tracker.iter_done(prefix))  # both passes read the records in step
    why_not = writable_objects_filter(prefix, str(dest))
    with view.phase("scan") as scan:
        async for key, size, _etag in _listing(blocks, bucket, prefix, accepts, listed):
            reason = why_not(key)
            if reason is not None:
                unwritable.append((key, size, reason))
                continue
            if _in_place(dest, prefix, key, size, records, sync):
                skipped += 1
                continue
            count += 1
            total_bytes += size
            if len(sample) < DRY_RUN_SAMPLE:
                sample.append((key, size))
        scan.files, scan.bytes = count + skipped, total_bytes
    if dry_run:
        return {
            **await _dry_run(job, bucket, prefix, sample, count, total_bytes, skipped), **sync.as_dict(),
            "unwritable": len(unwritable), "unwritable_keys": {key: why for key, _size, why in unwritable},
        }
    tracker.update_job(state=JobState.open, bucket=bucket, staging_prefix=str(staging), final_prefix=prefix)
    get_run_logger().info("Downloading %d object(s) of %s/%s via %s", count, bucket, prefix, staging)
    progress = view.progress
    await view.start()
    totals: dict[str, Any] = {**new_counts(), "skipped": skipped, **sync.as_dict(), "unwritable": len(unwritable)}
    totals["unwritable_keys"] = _mark_unwritable(tracker, unwritable)
    expected, times = await _manifest_of(blocks, bucket, prefix, totals)
    try:
        with view.phase("transfer", count, total_bytes) as received:
            async for entries in abatched(todo(), batch_size):
                batch = await download_batch(
                    blocks.credentials, blocks.tracker, job, bucket, staging, prefix,
                    entries=entries, settings=blocks.settings, on_progress=progress.on_batch_progress,
                    on_error=view.failures, manifest=expected.lines_of(entries), mtimes=times.lines_of(entries),
                )
                add_counts(totals, batch)
                progress.batch_finished(int(batch["done"]), int(batch["bytes"]))
            received.files, received.bytes = int(totals.get("done", 0)) - skipped, int(totals.get("bytes", 0))
    finally:
        totals["api_retries"] += listed["api_retries"]  # both listings'

    if totals.get("errors"):
        failure = BulkTransferFailed(
            f"{totals['errors']} object(s) failed to download ({first_errors(tracker.error_details())}); "
            f"{dest} untouched, "
            f"completed files kept in {staging} for the next run"
        )
        await view.publish_summary("failed", totals, tracker.error_details(), reason=str(failure))
        raise failure
    return totals


async def _download_cooperatively(
    blocks: FlowBlocks,
    tracker: TrackerProtocol,
    job: str,
    owner: str,
    bucket: str,
    prefix: str,
    staging: Path,
    accepts: GlobFilter,
    batch_size: int,
    view: RunView,
) -> dict[str, Any]:
    """Many runs, one job: register the listing, drain claims into the shared staging folder."""
    seen = added = 0
    listed = new_counts()
    chunk: list[tuple[str, int]] = []
    async for key, size, _etag in _listing(blocks, bucket, prefix, accepts, listed):
        chunk.append((key, size))
        if len(chunk) >= REGISTER_CHUNK:
            s, a = register_manifest(tracker, chunk)
            seen, added, chunk = seen + s, added + a, []
    s, a = register_manifest(tracker, chunk)
    get_run_logger().info("Manifest of %s: %d object(s), %d new", job, seen + s, added + a)

    expected, times = await _manifest_of(blocks, bucket, prefix, listed)

    async def run_batch(claimed: list[tuple[str, int]]) -> dict[str, Any]:
        return await download_batch(
            blocks.credentials, blocks.tracker, job, bucket, staging, prefix,
            entries=claimed, settings=blocks.settings, skip_done=False, on_error=view.failures,
            manifest=expected.lines_of(claimed), mtimes=times.lines_of(claimed),
        )

    totals = await drain_job(
        tracker, owner, run_batch, batch_size=batch_size, lease_seconds=blocks.tracker.lease_seconds
    )
    add_counts(totals, listed)
    failed = tracker.summary().get("error", 0)
    if failed:
        await publish_job_status(job, tracker.summary())
        failure = BulkTransferFailed(
            f"{failed} object(s) of job {job} failed ({first_errors(tracker.error_details())}); "
            "destination untouched"
        )
        await view.publish_summary("failed", totals, tracker.error_details(), failed, reason=str(failure))
        raise failure
    return totals


async def _manifest_of(
    blocks: FlowBlocks, bucket: str, prefix: str, counts: dict[str, Any]
) -> tuple[ExpectedDigests, ExpectedMtimes]:
    """The prefix's manifest and its files' times (read once per run), which every batch
    checks its files against and gives them; the requests their reads repeated are added to
    ``counts`` (``api_retries`` for the presigns, ``retries`` for the GETs themselves)."""
    async with open_client(blocks.credentials) as client:
        try:
            digests = ExpectedDigests(await read_manifest(client, bucket, prefix))
            # a commit writes the times with the manifest: without one there are none to read
            times = await read_mtimes(client, bucket, prefix) if digests.lines is not None else None
            return digests, ExpectedMtimes(times)
        finally:
            counts["api_retries"] = counts.get("api_retries", 0) + client.api_retries
            counts["retries"] = counts.get("retries", 0) + client.data.retries


def _mark_unwritable(tracker: TrackerProtocol, unwritable: list[tuple[str, int, str]]) -> dict[str, str]:
    """Record the keys that cannot be written here as errors of the job (``rahcp errors``
    lists them with their reason); returns ``{key: why}``, for the result."""
    for key, size, reason in unwritable:
        tracker.mark(key, size, TransferStatus.error, f"unwritable: {reason}")
    if unwritable:
        tracker.flush()
    return {key: reason for key, _size, reason in unwritable}


def _not_written(totals: dict[str, Any], promotion: Promotion, prefix: str) -> list[tuple[str, str]]:
    """``(key, why)`` of every object of the run that is not a file in the destination: keys
    that cannot be local paths, and files the move into place could not put there."""
    named = list(totals.get("unwritable_keys", {}).items())
    named += [(prefix + path, reason) for path, reason in promotion.unplaced]
    totals["unwritable"] = len(named)
    return named


async def _listing(
    blocks: FlowBlocks, bucket: str, prefix: str, accepts: GlobFilter, counts: dict[str, Any]
) -> AsyncIterator[tuple[str, int, str | None]]:
    """``(key, size, etag)`` of every object under ``prefix`` that the filters accept, page by
    page; the API requests the listing repeated are added to ``counts["api_retries"]``."""
    async with open_client(blocks.credentials) as client:
        try:
            async for key, size, etag in iter_listing(client.s3, bucket, prefix):
                if accepts.active and not accepts.accepts(key):
                    continue
                yield key, int(size), etag
        finally:
            counts["api_retries"] += client.api_retries


async def _dry_run(
    job: str, bucket: str, prefix: str, sample: list[tuple[str, int]], count: int, total_bytes: int, skipped: int
) -> dict[str, Any]:
    """Report what a real run would download; transfer nothing."""
    await publish_dry_run("download", job, bucket, prefix, sample, count, total_bytes, skipped)
    get_run_logger().info("Dry run: %d object(s), %d bytes would be downloaded", count, total_bytes)
    return {"job": job, "dry_run": True, "files": count, "bytes": total_bytes, "skipped": skipped}
