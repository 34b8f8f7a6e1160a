"""Async Prefect tasks over the HCP SDK and the bulk engine.

Each task takes an ``HCPCredentials`` block (and, where it matters, ``HCPTransferSettings``),
opens its own client (the batch and commit tasks use the client a flow's ``JobRun`` lends them,
in the same event loop: one login per run), and is safe to retry: uploads overwrite with the same bytes, deletes and
cleanups are idempotent, ``commit_staging`` resumes where a failed attempt stopped, and the
batch tasks skip what the tracker already holds as done. Batch tasks run the engine over many
files in one task run: a task run costs milliseconds, a file should not.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import task_run

from rahcp_prefect import defaults
from rahcp_prefect.blocks import HCPCredentials, HCPTracker, HCPTransferSettings
from rahcp_prefect.bulk import BulkDownloadConfig, BulkUploadConfig, TransferStats
from rahcp_prefect.bulk import bulk_download as run_bulk_download
from rahcp_prefect.bulk import bulk_upload as run_bulk_upload
from rahcp_prefect.bulk.config import DownloadEntry
from rahcp_prefect.bulk.validation import check_bucket, check_prefix
from rahcp_prefect.client import CertificateError, HCPClient, RetentionError
from rahcp_prefect.client.refusals import raise_on_delete_errors
from rahcp_prefect.client.s3 import COPY_CONCURRENCY, REPLACED
from rahcp_prefect.job.attempts import batch_checks
from rahcp_prefect.job.commit import move_staged
from rahcp_prefect.job.staging import StagingPlan
from rahcp_prefect.report.throttle import FailureLog



def _worth_retrying(task: Any, task_run: Any, state: Any) -> bool:
    """A retry cannot release a hold or end a retention, nor make an untrusted certificate
    trusted: a ``RetentionError`` or a ``CertificateError`` fails at once."""
    return not isinstance(getattr(state, "data", None), (RetentionError, CertificateError))


# Every task has side effects on storage: never answer one from a cache.
_TASK_DEFAULTS: dict[str, Any] = {
    "cache_policy": NO_CACHE, "retries": 2, "retry_delay_seconds": 2, "retry_condition_fn": _worth_retrying,
}

ProgressCallback = Callable[[TransferStats], Any]
CommitProgressCallback = Callable[[int, int], Any]
"""``on_progress(objects copied, bytes copied)`` of a staging commit."""
ErrorCallback = Callable[[str, BaseException], Any]
"""``on_error(key, exception)`` of a batch: the flow's throttled failure log."""


@asynccontextmanager
async def _client_for(
    credentials: HCPCredentials, settings: HCPTransferSettings | None, client: HCPClient | None
) -> AsyncIterator[HCPClient]:
    """``client`` when the caller lends one (it stays open), else a client of the task's own."""
    if client is not None:
        yield client
        return
    async with credentials.get_client(settings) as own:
        yield own


def stats_dict(stats: TransferStats, client: HCPClient | None = None) -> dict[str, Any]:
    """A JSON-friendly summary of one engine run (task results and artifacts).

    With the task's own ``client``, ``api_retries`` counts all of that client's retried API
    requests, its login's included (the engine counts from the start of its run).
    """
    return {
        "ok": stats.ok,
        "skipped": stats.skipped,
        "errors": stats.errors,
        "done": stats.done,
        "bytes": stats.bytes,
        "elapsed": round(stats.elapsed, 3),
        "mb_per_sec": round(stats.mb_per_sec, 3),
        "files_per_sec": round(stats.files_per_sec, 1),
        "retries": stats.retries,
        "api_retries": client.api_retries if client is not None else stats.api_retries,
        "throttled": stats.throttled,
        "verified": stats.verified,
        "unverified": stats.unverified,
        "changed_during_run": stats.changed_during_run,
        "vanished": stats.vanished,
        "deferred": list(stats.deferred),
        "window_lowest": stats.window_lowest,
        "window_highest": stats.window_highest,
    }


# -- presigning -------------------------------------------------------------------------------


@task(name="hcp-presign-get", **_TASK_DEFAULTS)
async def presign_get(credentials: HCPCredentials, bucket: str, key: str, expires: int = 3600) -> str:
    """A presigned GET URL for ``bucket/key`` (a secret: do not log it)."""
    async with credentials.get_client() as client:
        return await client.s3.presign_get(bucket, key, expires=expires)


@task(name="hcp-presign-put", **_TASK_DEFAULTS)
async def presign_put(credentials: HCPCredentials, bucket: str, key: str, expires: int = 3600) -> str:
    """A presigned PUT URL for ``bucket/key`` (a secret: do not log it)."""
    async with credentials.get_client() as client:
        return await client.s3.presign_put(bucket, key, expires=expires)


@task(name="hcp-presign-bulk", **_TASK_DEFAULTS)
async def presign_bulk(
    credentials: HCPCredentials,
    bucket: str,
    keys: Sequence[str],
    method: str = "get_object",
    expires: int = 3600,
) -> dict[str, str]:
    """Presigned URLs for many keys, ``{key: url}``."""
    async with credentials.get_client() as client:
        return await client.s3.presign_bulk(bucket, list(keys), method=method, expires=expires)


# -- single objects ---------------------------------------------------------------------------


@task(name="hcp-upload-object", **_TASK_DEFAULTS)
async def upload_object(
    credentials: HCPCredentials,
    bucket: str,
    key: str,
    source: Path | bytes,
    settings: HCPTransferSettings | None = None,
) -> str:
    """Upload a file or bytes (multipart above the threshold) onto ``key`` whatever the
    namespace allows (``S3Ops.write``: where it refuses overwrites, the old object is replaced;
    ``RetentionError`` when it is retained or on hold); returns the ETag."""
    async with credentials.get_client(settings) as client:
        etag = await client.s3.write(bucket, key, Path(source) if isinstance(source, str) else source)
    get_run_logger().info("Uploaded %s/%s", bucket, key)
    return etag


@task(name="hcp-upload-multipart", **_TASK_DEFAULTS)
async def upload_multipart(
    credentials: HCPCredentials,
    bucket: str,
    key: str,
    path: Path,
    settings: HCPTransferSettings | None = None,
) -> str:
    """Upload a large file in parallel parts streamed from disk, onto ``key`` whatever the
    namespace allows (as ``upload_object``); returns the ETag."""
    async with credentials.get_client(settings) as client:
        etag = await client.s3.write(bucket, key, Path(path), multipart=True)
    get_run_logger().info("Uploaded %s/%s in parts", bucket, key)
    return etag


@task(name="hcp-download-object", **_TASK_DEFAULTS)
async def download_object(credentials: HCPCredentials, bucket: str, key: str, dest: Path) -> int:
    """Download ``bucket/key`` to ``dest`` (complete or not at all); returns the byte count."""
    async with credentials.get_client() as client:
        size = await client.s3.download(bucket, key, Path(dest))
    get_run_logger().info("Downloaded %s/%s (%d bytes)", bucket, key, size)
    return size


@task(name="hcp-list-objects", **_TASK_DEFAULTS)
async def list_objects(
    credentials: HCPCredentials, bucket: str, prefix: str = "", limit: int | None = None
) -> list[dict[str, Any]]:
    """Objects under ``prefix`` (``Key``, ``Size``, ``ETag``...), every page, up to ``limit``."""
    found: list[dict[str, Any]] = []
    async with credentials.get_client() as client:
        async for item in client.s3.iter_objects(bucket, prefix=prefix):
            found.append(item)
            if limit is not None and len(found) >= limit:
                break
    return found


@task(name="hcp-head-object", **_TASK_DEFAULTS)
async def head_object(credentials: HCPCredentials, bucket: str, key: str) -> dict[str, str]:
    """The object's metadata headers (lower-case names)."""
    async with credentials.get_client() as client:
        return await client.s3.head(bucket, key)


@task(name="hcp-copy-object", **_TASK_DEFAULTS)
async def copy_object(
    credentials: HCPCredentials, dest_bucket: str, dest_key: str, src_bucket: str, src_key: str
) -> dict[str, Any]:
    """Server-side copy of one object onto ``dest_key`` whatever the namespace allows
    (``S3Ops.copy_over``: a copy, or the safe replace where the namespace refuses overwrites;
    ``RetentionError`` when the destination is retained or on hold):
    ``{"bucket", "key", "replaced"}``."""
    async with credentials.get_client() as client:
        outcome = await client.s3.copy_over(dest_bucket, dest_key, src_bucket, src_key)
    return {"bucket": dest_bucket, "key": dest_key, "replaced": outcome == REPLACED}


@task(name="hcp-delete-object", **_TASK_DEFAULTS)
async def delete_object(credentials: HCPCredentials, bucket: str, key: str) -> dict[str, Any]:
    """Delete one object (idempotent); ``RetentionError`` when it is retained or on hold."""
    async with credentials.get_client() as client:
        return await client.s3.delete(bucket, key)


@task(name="hcp-delete-objects", **_TASK_DEFAULTS)
async def delete_objects(credentials: HCPCredentials, bucket: str, keys: Sequence[str]) -> dict[str, Any]:
    """Delete many objects in bulk (idempotent): ``{"status", "deleted", "errors": []}``;
    ``RetentionError`` naming the objects retained or on hold (the others are deleted)."""
    async with credentials.get_client() as client:
        result = await client.s3.delete_bulk(bucket, list(keys))
    raise_on_delete_errors(result, bucket)
    return result


# -- staging ----------------------------------------------------------------------------------


@task(name="hcp-commit-staging", **_TASK_DEFAULTS)
async def commit_staging(
    credentials: HCPCredentials,
    bucket: str,
    staging_prefix: str,
    dest_prefix: str,
    concurrency: int = COPY_CONCURRENCY,
    on_progress: CommitProgressCallback | None = None,
    staging_bucket: str | None = None,
    client: HCPClient | None = None,
    max_concurrency: int = defaults.MAX_WORKERS,
) -> dict[str, Any]:
    """Move everything under ``staging_prefix`` to ``dest_prefix`` the way the bulk flows
    commit (``job.commit.move_staged``: a copy over, or a safe replace where the namespace
    refuses overwrites; a final object under retention or on hold is left and named);
    resumable after a crash. Returns ``{"moved", "replaced", "left": [staged keys], "kept",
    "copies_in_flight", "api_retries"}``.

    ``concurrency`` copies in flight at first, up to ``max_concurrency`` (the adaptive
    window); ``on_progress(objects, bytes)`` after every object; ``staging_bucket``: staging
    in another namespace; ``client``: one to lend (the flows lend the run's, which then counts
    the commit's retried requests)."""
    check_bucket(bucket)
    check_prefix(staging_prefix, "staging_prefix")
    check_prefix(dest_prefix, "dest_prefix")
    plan = StagingPlan(bucket, staging_prefix, dest_prefix, resumed=True, staging_bucket=staging_bucket)
    async with _client_for(credentials, None, client) as used:
        moves = await move_staged(used, plan, concurrency, on_progress, max_concurrency)
    get_run_logger().info(
        "Committed %d object(s) to %s/%s (%d replaced, %d retained, %d staging kept; copies in flight %s)",
        moves["moved"], bucket, dest_prefix, moves["replaced"], len(moves["left"]), moves["kept"],
        moves["copies_in_flight"],
    )
    return {**moves, "api_retries": used.api_retries}


@task(name="hcp-cleanup-staging", **_TASK_DEFAULTS)
async def cleanup_staging(credentials: HCPCredentials, bucket: str, staging_prefix: str) -> int:
    """Delete everything under ``staging_prefix`` (open multipart uploads aborted); idempotent."""
    check_bucket(bucket)
    check_prefix(staging_prefix, "staging_prefix")
    async with credentials.get_client() as client:
        removed = await client.s3.cleanup_staging(bucket, staging_prefix)
    get_run_logger().info("Removed %d staged object(s) under %s/%s", removed, bucket, staging_prefix)
    return removed


# -- batches through the engine ---------------------------------------------------------------


async def _engine_batch(
    direction: str,
    credentials: HCPCredentials,
    tracker: HCPTracker,
    job: str,
    settings: HCPTransferSettings | None,
    make_config: Callable[..., Any],
    run: Callable[[Any], Awaitable[TransferStats]],
    on_error: ErrorCallback | None = None,
    client: HCPClient | None = None,
) -> dict[str, Any]:
    """One engine run for a batch task: the job's tracker and a client for the task, the
    settings' engine options, then the summary (logged and returned).

    Failed files go to ``on_error`` (the flow's throttled ``FailureLog``); without one the task
    keeps its own, so a batch of a million failures still logs a few dozen lines. With the
    run's ``client`` (a ``JobRun``'s, in the same event loop) the batch logs in no more and its
    ``api_retries`` are the engine's count for the batch alone."""
    settings = settings or HCPTransferSettings()
    own_log = FailureLog(get_run_logger(), interval=settings.log_interval) if on_error is None else None
    job_tracker = tracker.get_tracker(job)
    try:
        async with _client_for(credentials, settings, client) as used:
            config = make_config(
                client=used,
                tracker=job_tracker,
                on_error=on_error or own_log,
                **settings.engine_options(direction),
            )
            stats = await run(config)
    finally:
        job_tracker.close()
        if own_log is not None:
            own_log.close()
    summary = stats_dict(stats, used if client is None else None)
    get_run_logger().info("%s batch: %s", direction.capitalize(), summary)
    return summary


@task(name="hcp-upload-batch", **_TASK_DEFAULTS)
async def upload_batch(
    credentials: HCPCredentials,
    tracker: HCPTracker,
    job: str,
    bucket: str,
    source_dir: Path,
    prefix: str,
    entries: Sequence[tuple[str, int]] | None = None,
    settings: HCPTransferSettings | None = None,
    skip_existing: bool = True,
    skip_done: bool = True,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    follow_symlinks: bool = False,
    on_progress: ProgressCallback | None = None,
    on_error: ErrorCallback | None = None,
    client: HCPClient | None = None,
) -> dict[str, Any]:
    """Upload a batch of files (``(relative path, size)``; None = the whole tree) with the engine.

    Outcomes go to the tracker of ``job``; a retry of the task skips what is done. ``client``:
    the run's, lent to the batch (no login of its own); a retry
    also adopts what staging holds that the tracker did not record (``job.attempts``).
    ``skip_done=False`` spares reading the job's done keys when the batch was claimed (its
    keys are pending by construction).
    """
    check_bucket(bucket)
    check_prefix(prefix)
    # A retry may follow an attempt whose files reached staging unrecorded: check before sending.
    checks = batch_checks(task_run.get_run_count() or 1, skip_existing=skip_existing, skip_done=skip_done)
    make_config = partial(
        BulkUploadConfig,
        bucket=bucket,
        source_dir=Path(source_dir),
        prefix=prefix,
        entries=entries,
        skip_existing=checks.skip_existing,
        skip_done=checks.skip_done,
        include=list(include),
        exclude=list(exclude),
        follow_symlinks=follow_symlinks,
        on_progress=on_progress,
    )
    return await _engine_batch(
        "upload", credentials, tracker, job, settings, make_config, run_bulk_upload, on_error, client
    )


@task(name="hcp-download-batch", **_TASK_DEFAULTS)
async def download_batch(
    credentials: HCPCredentials,
    tracker: HCPTracker,
    job: str,
    bucket: str,
    dest_dir: Path,
    prefix: str,
    entries: Sequence[DownloadEntry] | None = None,
    settings: HCPTransferSettings | None = None,
    skip_done: bool = True,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    on_progress: ProgressCallback | None = None,
    on_error: ErrorCallback | None = None,
    manifest: Mapping[str, str] | None = None,
    mtimes: Mapping[str, int] | None = None,
    client: HCPClient | None = None,
) -> dict[str, Any]:
    """Download a batch of keys (``(key, size)`` or ``(key, size, etag)``; None = the whole
    prefix) with the engine (``client``: the run's, lent to the batch);
    ``manifest`` (key -> SHA-256, e.g. the batch's lines of the prefix's manifest) is what the
    bytes are checked against; ``mtimes`` (key -> ns, the prefix's ``rahcp-mtimes.txt``) the
    times the files are given."""
    check_bucket(bucket)
    check_prefix(prefix)
    make_config = partial(
        BulkDownloadConfig,
        bucket=bucket,
        dest_dir=Path(dest_dir),
        prefix=prefix,
        entries=entries,
        skip_done=skip_done,
        include=list(include),
        exclude=list(exclude),
        on_progress=on_progress,
        manifest=manifest,
        mtimes=mtimes,
    )
    return await _engine_batch(
        "download", credentials, tracker, job, settings, make_config, run_bulk_download, on_error, client
    )
