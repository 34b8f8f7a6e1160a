"""The ``bulk-upload`` flow: a folder to HCP through staging, committed only when complete.

The flow orchestrates the job's rules (``rahcp_prefect.job``) with Prefect tasks:

1. Load the blocks, open the job's tracker, take the job lease (single mode: one run at a
   time, ``on_busy`` waits or fails; cooperative: shared), finish a commit an earlier run left
   half-done.
2. Upload in batches (one engine run per task run, never one task run per file) into the
   job's staging prefix, inside a Prefect transaction whose rollback applies ``on_failure``.
3. Verify staging against the tracker, commit it to the final prefix under the commit lock,
   then check that the final prefix holds every file of the job before reporting ``committed``.
4. On failure before the commit: ``on_failure="rollback"`` deletes staging and forgets what it
   held; ``"keep"`` leaves it for the next run. The final prefix is untouched either way.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from functools import partial
from pathlib import Path
from typing import Any, Literal

from prefect import flow, get_run_logger
from prefect.transactions import atransaction

from rahcp_prefect.bulk.filters import GlobFilter
from rahcp_prefect.bulk.scanner import scan_tree
from rahcp_prefect.bulk.sync import Change, SyncCounts, files_to_send
from rahcp_prefect.bulk.upload import check_source_dir
from rahcp_prefect.bulk.validation import check_job_inputs
from rahcp_prefect.bulk.exclusions import SourceGuard
from rahcp_prefect.flows.naming import tag_run, upload_run_name
from rahcp_prefect.flows.artifacts import ProgressReporter, RunView, publish_dry_run, publish_job_status
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
    CommitResult,
    FailureReport,
    FinalCheckError,
    JobLease,
    JobLeaseLostError,
    LeaseMode,
    OnFailure,
    STAGING_ROOT,
    StagingPlan,
    add_counts,
    apply_failure_policy,
    commit_job,
    drain_job,
    hold_job,
    lease_mode,
    new_counts,
    parse_on_busy,
    parse_on_failure,
    plan_staging,
    register_manifest,
    resume_commit,
    verify_staging,
)
from rahcp_prefect import events
from rahcp_prefect.tasks import commit_staging_counted, open_client, upload_batch
from rahcp_prefect.tracker.protocol import JobState, TrackerProtocol, TransferStatus

__all__ = ["BulkTransferFailed", "bulk_upload"]


def _count(files: Iterable[tuple[str, int, int]]) -> tuple[int, int]:
    """How many files and bytes ``files`` holds (the scan phase: totals for progress)."""
    count = size = 0
    for _rel, file_size, _mtime in files:
        count, size = count + 1, size + file_size
    return count, size


def _scan(
    source_dir: Path,
    include: list[str],
    exclude: list[str],
    follow_symlinks: bool,
    errors: list[tuple[str, str]],
    guard: SourceGuard | None = None,
) -> Iterator[tuple[str, int, int]]:
    """``(relative path, size, mtime_ns)`` of the files to upload, lazily, in key order;
    unreadable entries and paths that cannot be keys (``guard``) to ``errors``."""
    accepts = GlobFilter(include, exclude)
    return (
        (rel, size, mtime)
        for rel, _path, size, mtime in scan_tree(
            source_dir,
            follow_symlinks=follow_symlinks,
            select=accepts.accepts if accepts.active else None,
            on_error=lambda rel, exc: errors.append((rel, f"{type(exc).__name__}: {exc}")),
            **(guard.scan_options() if guard else {}),
        )
    )


#: Runs in their upload phase, by owner: a transaction stores plain values only (deep copies).
_ACTIVE_RUNS: weakref.WeakValueDictionary[str, UploadRun] = weakref.WeakValueDictionary()


async def _apply_on_failure(txn: Any) -> None:
    """Transaction rollback hook of the upload phase: the run's failure policy (applied once)."""
    run = _ACTIVE_RUNS.get(txn.get("upload_run", ""))
    if run is not None:
        await run.apply_failure_policy()


class UploadRun:
    """One run of an upload job under its lease: upload alone or cooperating, then commit."""

    def __init__(
        self,
        blocks: FlowBlocks,
        tracker: TrackerProtocol,
        lease: JobLease,
        plan: StagingPlan,
        source: Path,
        skip_existing: bool,
        follow_symlinks: bool,
        count_files: Callable[[], tuple[int, int]],
        on_failure: OnFailure,
        view: RunView,
    ) -> None:
        self.blocks = blocks
        self.tracker = tracker
        self.lease = lease
        self.job = tracker.job
        self.plan = plan
        self.source = source
        self.skip_existing = skip_existing
        self.follow_symlinks = follow_symlinks
        self.count_files = count_files
        self.on_failure = on_failure
        self.view = view
        self._failure: asyncio.Task[FailureReport] | None = None
        self.sync = SyncCounts()

    def sync_totals(self, totals: dict[str, Any]) -> dict[str, Any]:
        """``totals`` with this run's sync counts; unchanged files count as skipped."""
        totals.update(self.sync.as_dict())
        totals["skipped"] = totals.get("skipped", 0) + self.sync.unchanged
        return totals

    async def _to_send(
        self, client: Any, files: Iterable[tuple[str, int, int]]
    ) -> AsyncIterator[tuple[str, int, int, Change]]:
        """The files this run sends: new, changed or missing from the bucket (``bulk/sync.py``)."""
        plan = self.plan
        async for item in files_to_send(
            client.s3, self.tracker, files, bucket=plan.bucket, staging_prefix=plan.staging_prefix,
            final_prefix=plan.final_prefix, counts=self.sync, send_all=not self.skip_existing,
        ):
            yield item

    @property
    def title(self) -> str:
        return f"bulk-upload {self.plan.bucket}/{self.plan.final_prefix}"

    async def _batch(
        self, entries: list[tuple[Any, ...]], progress: ProgressReporter | None, claimed: bool = False
    ) -> dict[str, Any]:
        self.lease.check()  # never write into staging the job no longer holds
        # A claimed batch is pending by construction; a single run's batch was decided by the
        # sync plan: neither needs the engine to read the job's records or list staging again.
        task = staged_upload_batch if not claimed else upload_batch
        return await task(
            self.blocks.credentials,
            self.blocks.tracker,
            self.job,
            self.plan.bucket,
            self.source,
            self.plan.staging_prefix,
            entries=entries,
            settings=self.blocks.settings,
            skip_existing=self.skip_existing and claimed,
            skip_done=False,
            follow_symlinks=self.follow_symlinks,
            on_progress=progress.on_batch_progress if progress else None,
            on_error=self.view.failures,
        )

    def apply_failure_policy(self) -> asyncio.Task[FailureReport]:
        """Roll back or keep staging, once per run (the transaction hook and the flow both ask)."""
        if self._failure is None:
            self._failure = asyncio.ensure_future(self._failure_policy())
        return self._failure

    async def _failure_policy(self) -> FailureReport:
        self.lease.check()  # never delete staging the job no longer holds
        async with open_client(self.blocks.credentials) as client:
            return await apply_failure_policy(self.on_failure, client, self.tracker, self.plan)

    async def single(
        self, files: Iterable[tuple[str, int, int]], batch_size: int, owner: str,
        scan_errors: list[tuple[str, str]], started: float,
    ) -> dict[str, Any]:
        """Upload in batches inside a transaction; on any failure apply ``on_failure`` and raise."""
        view, progress = self.view, self.view.progress
        with view.phase("scan") as scan:
            scan.files, scan.bytes = self.count_files()
        totals = new_counts()
        try:
            _ACTIVE_RUNS[owner] = self
            async with atransaction() as txn:
                txn.set("upload_run", owner)
                with view.phase("transfer", scan.files, scan.bytes) as sent:
                    async with open_client(self.blocks.credentials) as client:
                        try:
                            todo = ((rel, size, mtime) async for rel, size, mtime, _ in self._to_send(client, files))
                            unchanged_before = 0
                            async for entries in abatched(todo, batch_size):
                                batch = await self._batch(entries, progress)
                                add_counts(totals, batch)
                                unchanged = self.sync.unchanged - unchanged_before
                                unchanged_before = self.sync.unchanged
                                progress.batch_finished(int(batch["done"]) + unchanged, int(batch["bytes"]))
                        finally:
                            totals["api_retries"] = totals.get("api_retries", 0) + client.api_retries
                    sent.files, sent.bytes = int(totals.get("done", 0)), int(totals.get("bytes", 0))
                self.sync_totals(totals)
                totals["errors"] += len(scan_errors)
                if totals["errors"]:
                    raise BulkTransferFailed(f"{totals['errors']} file(s) failed to upload")
                await self.verify(totals)
        except BaseException as exc:
            await self._fail(exc, totals, scan_errors, owner, started)
            raise
        return totals

    async def _fail(
        self, exc: BaseException, totals: dict[str, Any], scan_errors: list[tuple[str, str]], owner: str,
        started: float,
    ) -> None:
        """Apply the failure policy, publish the summary, and raise the run's report."""
        logger = get_run_logger()
        errors = scan_errors + self.tracker.error_details()
        report: FailureReport | None = None
        if not isinstance(exc, JobLeaseLostError):
            try:
                report = await self.apply_failure_policy()
            except Exception as policy_exc:  # the job row keeps the staging prefix for cleanup-staging
                logger.error("Could not apply on_failure=%s to %s: %s", self.on_failure.value, self.plan.staging_prefix, policy_exc)
        outcome = "rolled back" if self.on_failure == OnFailure.rollback else "kept"
        what = report.describe() if report else "staging left as it was"
        result = {
            **totals, "failed": totals.get("errors", 0), "committed": 0, "outcome": outcome, "job": self.job,
            "elapsed": round(time.monotonic() - started, 3), **(report.fields() if report else {}),
        }
        failure: BaseException = exc
        if isinstance(exc, BulkTransferFailed):
            failure = BulkTransferFailed(
                f"{totals['errors']} file(s) failed to upload ({first_errors(errors, self.plan.staging_prefix)}); "
                f"{what}; {self.plan.bucket}/{self.plan.final_prefix} untouched",
                result,
            )
        if report:
            logger.warning("%s: %s", self.title, what)
            if report.staging == "deleted":
                events.upload_rolled_back(self.job, self.plan.bucket, self.plan.final_prefix, totals, failure)
        await self.view.publish_summary(outcome, result, errors, reason=f"{type(exc).__name__}: {exc}; {what}")
        if failure is not exc:
            raise failure from None

    async def cooperative(
        self, files: Iterable[tuple[str, int, int]], batch_size: int, owner: str, scan_errors: list[tuple[str, str]]
    ) -> dict[str, Any]:
        """Register what this run finds to send (new files as pending; changed or missing ones
        set back to pending), drain the job's claims with the other runs, fail on errors (this
        run's scan errors included: files that never reached the manifest).

        Staging is shared, so a cooperative run always keeps it on failure."""
        staging = self.plan.staging_prefix
        async with open_client(self.blocks.credentials) as client:
            seen = added = 0
            async for entries in abatched(self._to_send(client, files), REGISTER_CHUNK):
                for rel, size, mtime, change in entries:
                    if change is not Change.new:  # known to the job as done: send it again
                        self.tracker.mark(staging + rel, size, TransferStatus.pending, mtime_ns=mtime)
                s, a = register_manifest(self.tracker, ((staging + rel, size, mtime) for rel, size, mtime, _ in entries))
                seen, added = seen + s, added + a
            self.tracker.flush()
            listed_retries = client.api_retries
        get_run_logger().info("Manifest of %s: %d file(s) to send, %d new; %s", self.job, seen, added, self.sync.as_dict())

        async def run_batch(claimed: list[tuple[str, int]]) -> dict[str, Any]:
            return await self._batch([(key[len(staging) :], size) for key, size in claimed], None, claimed=True)

        totals = await drain_job(
            self.tracker, owner, run_batch, batch_size=batch_size, lease_seconds=self.blocks.tracker.lease_seconds
        )
        totals["api_retries"] += listed_retries
        self.sync_totals(totals)
        failed = self.tracker.summary().get("error", 0) + len(scan_errors)
        if failed:
            await publish_job_status(self.job, self.tracker.summary())
            failure = BulkTransferFailed(
                f"{failed} file(s) of job {self.job} failed "
                f"({first_errors(scan_errors + self.tracker.error_details(), staging)}); "
                "staging kept for the next run of the job (shared by cooperative runs), "
                f"{self.plan.bucket}/{self.plan.final_prefix} untouched",
                {**totals, "failed": failed, "committed": 0, "outcome": "kept", "job": self.job, "staging": "kept"},
            )
            await self.view.publish_summary(
                "kept", failure.result, scan_errors + self.tracker.error_details(), failed, reason=str(failure)
            )
            raise failure
        await self.verify(totals)
        return totals

    staged = 0
    """Objects found in staging by the check before the commit (what the commit moves)."""

    async def verify(self, totals: dict[str, Any]) -> None:
        """Check staging against the tracker before the commit (raises on any mismatch);
        the listing's retried requests are added to ``totals``."""
        self.lease.check()
        with self.view.phase("verify") as checked:
            async with open_client(self.blocks.credentials) as client:
                try:
                    staged = await verify_staging(client, self.tracker, self.plan)
                finally:
                    totals["api_retries"] = totals.get("api_retries", 0) + client.api_retries
            checked.files = self.staged = staged
        get_run_logger().info("Staging verified: %d object(s) ready to commit", staged)

    def move(self, on_progress: Callable[[int, int], Any] | None = None) -> Callable[[], Any]:
        """The commit's moves as a Prefect task call (staging to the final prefix)."""
        return partial(
            commit_staging_counted,
            self.blocks.credentials,
            self.plan.bucket,
            self.plan.staging_prefix,
            self.plan.final_prefix,
            concurrency=self.blocks.settings.commit_concurrency,
            on_progress=on_progress,
        )

    async def commit(self, owner: str) -> CommitResult | None:
        """Commit under the commit lock: moves, final check, manifest (None: another run commits)."""
        self.lease.check()
        with self.view.phase("commit", self.staged) as committing:
            async with open_client(self.blocks.credentials, self.blocks.settings) as client:
                commit = await commit_job(
                    self.tracker, self.plan, owner, self.blocks.tracker.lease_seconds,
                    self.move(self.view.commit_progress(self.staged)), client,
                    manifest=self.blocks.settings.write_manifest,
                )
            committing.files = commit.moved if commit else 0
        return commit


# The batch task as the upload phase uses it: its transaction's rollback applies on_failure.
staged_upload_batch = upload_batch.with_options()
staged_upload_batch.on_rollback(_apply_on_failure)  # type: ignore[arg-type]  # Prefect awaits async hooks


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
    """
    busy, failure = parse_on_busy(on_busy), parse_on_failure(on_failure)
    logger = get_run_logger()
    started = time.monotonic()
    check_job_inputs(bucket, prefix, batch_size)
    source = Path(source_dir).expanduser()
    check_source_dir(source)
    blocks = await load_blocks(credentials_block, settings_block, tracker_block, settings_overrides)
    include, exclude = list(include or []), list(exclude or [])
    mode = lease_mode(cooperative, job is not None, blocks.tracker.is_shared)
    job = job_name("bulk-upload", bucket, prefix, job)
    owner = run_id()
    tracker = blocks.tracker.get_tracker(job)
    view = RunView.for_flow("upload", job, bucket, prefix, blocks, tracker_block, source=str(source))
    await tag_run(bucket)
    try:
        async with open_client(blocks.credentials) as client:
            await client.s3.list_objects(bucket, max_keys=1)  # a missing bucket fails here, clearly
        checked_retries = client.api_retries
        if dry_run:
            guard = SourceGuard.for_run(source, tracker, prefix, f"{STAGING_ROOT}{owner}/", warn=logger.warning)
            return await _dry_run(
                source, include, exclude, follow_symlinks, tracker, job, bucket, prefix, guard, blocks, skip_existing
            )
        lease_seconds = blocks.tracker.lease_seconds
        async with hold_job(tracker, owner, mode, lease_seconds, busy, log=logger) as lease:
            plan = plan_staging(tracker, bucket, prefix, owner)
            view.key_prefixes = (plan.staging_prefix, prefix)
            await view.start()
            guard = SourceGuard.for_run(source, tracker, prefix, plan.staging_prefix, warn=logger.warning)
            run = UploadRun(
                blocks, tracker, lease, plan, source, skip_existing, follow_symlinks,
                count_files=lambda: _count(_scan(source, include, exclude, follow_symlinks, [], guard)),
                on_failure=failure, view=view,
            )
            info = tracker.job_info()
            if info is not None and info.state == JobState.committing:
                # An earlier run stopped half-way through its commit: finish its moves first.
                logger.info("Job %s has a commit in progress from an earlier run: finishing it", job)
                checked_retries += await resume_commit(tracker, owner, lease_seconds, run.move())
                info = tracker.job_info()
            if info is not None and info.state != JobState.open:
                tracker.update_job(state=JobState.open)
            logger.info("Uploading %s to %s/%s via staging %s", source, bucket, prefix, plan.staging_prefix)

            scan_errors: list[tuple[str, str]] = []
            files = _scan(source, include, exclude, follow_symlinks, scan_errors, guard)
            if mode is LeaseMode.cooperative:
                totals = await run.cooperative(files, batch_size, owner, scan_errors)
            else:
                totals = await run.single(files, batch_size, owner, scan_errors, started)
            totals["failed"] = 0
            try:
                commit = await run.commit(owner)
            except FinalCheckError as exc:
                await view.publish_summary(
                    "final check failed", {**totals, "committed": 0}, tracker.error_details(),
                    reason=f"job left committing: {exc}",
                )
                raise
        outcome = "committed" if commit is not None else "commit left to the run holding the lock"
        totals["committed"] = commit.moved if commit else 0
        if commit is not None:
            events.upload_committed(job, bucket, prefix, totals)
        totals["api_retries"] += checked_retries + (commit.api_retries if commit else 0)
        elapsed = time.monotonic() - started
        if commit is not None:
            totals.update(commit.extra)
        await view.publish_summary("committed" if commit is not None else "left to another run", totals)
        await publish_job_status(job, tracker.summary())
        logger.info("bulk-upload %s: %s, %s", job, outcome, totals)
        return {**totals, "job": job, "outcome": outcome, "elapsed": round(elapsed, 3), "phases": view.phases()}
    except Exception as exc:
        events.upload_failed(job, bucket, prefix, tracker, exc)
        await view.publish_failure(exc)
        raise
    finally:
        tracker.close()


async def _dry_run(
    source: Path,
    include: list[str],
    exclude: list[str],
    follow_symlinks: bool,
    tracker: TrackerProtocol,
    job: str,
    bucket: str,
    prefix: str,
    guard: SourceGuard,
    blocks: FlowBlocks,
    skip_existing: bool,
) -> dict[str, Any]:
    """Count what a real run would upload (new, changed or missing, as the sync decides);
    transfer nothing (the listings of staging and the final prefix are read)."""
    info = tracker.job_info()
    errors: list[tuple[str, str]] = []
    files = total_bytes = 0
    sample: list[tuple[str, int]] = []
    counts = SyncCounts()
    scanned = _scan(source, include, exclude, follow_symlinks, errors, guard)
    async with open_client(blocks.credentials) as client:
        if info is not None and info.staging_prefix:
            todo: AsyncIterator[tuple[str, int, int, Change]] = files_to_send(
                client.s3, tracker, scanned, bucket=bucket, staging_prefix=info.staging_prefix,
                final_prefix=prefix, counts=counts, send_all=not skip_existing,
            )
        else:  # a job never opened: every file is new
            todo = _all_new(scanned, counts)
        async for rel, size, _mtime, _change in todo:
            files += 1
            total_bytes += size
            if len(sample) < 50:
                sample.append((prefix + rel, size))
    await publish_dry_run("upload", job, bucket, prefix, sample, files, total_bytes)
    get_run_logger().info("Dry run: %d file(s), %d bytes would be uploaded to %s/%s", files, total_bytes, bucket, prefix)
    return {
        "job": job, "dry_run": True, "files": files, "bytes": total_bytes, "scan_errors": len(errors),
        **counts.as_dict(),
    }


async def _all_new(files: Iterable[tuple[str, int, int]], counts: SyncCounts) -> AsyncIterator[tuple[str, int, int, Change]]:
    for rel, size, mtime in files:
        counts.new += 1
        yield rel, size, mtime, Change.new
