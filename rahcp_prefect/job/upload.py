"""An upload's staging: a remote prefix the batches write, verified, then committed to the final prefix.

``UploadStaging`` is the upload side of a ``JobRun``: it walks ``source_dir`` (leaving out what
must never be uploaded), decides once what to send (``bulk/sync.py``: new, changed or missing
from the bucket; the engine then sends what it is given), checks staging against the tracker,
commits it under the commit lock with the final check, and on failure applies ``on_failure``
(a cooperative run always keeps the shared staging).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rahcp_prefect.bulk.exclusions import SourceGuard
from rahcp_prefect.bulk.filters import GlobFilter
from rahcp_prefect.bulk.scanner import scan_tree
from rahcp_prefect.bulk.sync import Change, SyncCounts, files_to_send
from rahcp_prefect.client import HCPClient
from rahcp_prefect.client.s3 import COPY_CONCURRENCY
from rahcp_prefect.job.commit import CommitResult, commit_job, move_staged, resume_commit
from rahcp_prefect.job.deletions import DeletionWatch, MaxDelete, deletion_fields, mirror_or_hold, watch_job
from rahcp_prefect.job.errors import FinalCheckError
from rahcp_prefect.job.failure import apply_failure_policy
from rahcp_prefect.job.namespace import check_namespaces
from rahcp_prefect.job.policy import OnFailure
from rahcp_prefect.job.records import ArchivedLines
from rahcp_prefect.job.retained import Waiting, retained_fields
from rahcp_prefect.job.run import Batch, Failure, JobRun, Selection, first_errors
from rahcp_prefect.job.staging import STAGING_ROOT, StagingPlan, plan_staging, verify_staging
from rahcp_prefect.tracker.protocol import JobState, TrackerProtocol, TransferStatus

Entry = tuple[str, int, int]  # (relative path, size, mtime_ns)
MoveRunner = Callable[[HCPClient, StagingPlan, "Callable[[int, int], Any] | None"], Awaitable[dict[str, Any]]]
"""Moves staging to the final prefix with the run's client and says what happened
(``job.commit.move_staged``'s dict; a flow passes its Prefect task)."""


async def move_staging(
    client: HCPClient, plan: StagingPlan, on_progress: Callable[[int, int], Any] | None
) -> dict[str, Any]:
    """The commit's moves without Prefect: ``move_staged`` (copy over, or a safe replace where
    the namespace refuses overwrites), resumable."""
    return await move_staged(client, plan, COPY_CONCURRENCY, on_progress)


@dataclass(kw_only=True)
class UploadStaging(Selection):
    """The upload side of a run: ``source`` to ``bucket/prefix`` through the job's staging."""

    source: Path
    follow_symlinks: bool = False
    skip_existing: bool = True
    policy: OnFailure = OnFailure.rollback  # ``on_failure``: roll back or keep staging
    move: MoveRunner = move_staging
    write_manifest: bool = True
    warn: Callable[[str], Any] | None = None
    mirror_deletions: bool = False  # delete what the source deleted (single runs), behind safety nets
    max_delete: MaxDelete = None  # with ``mirror_deletions``: a count or a percentage of the job's files
    staging_bucket: str | None = None  # stage in another namespace (a target that retains: ``job.namespace``)
    listing_grace: float = 0.0  # ``listing_cache_seconds``: the checks read a lacking listing again this long
    plan: StagingPlan | None = None
    watch: DeletionWatch | None = None  # the job's files the run's scan no longer finds
    guard: SourceGuard | None = None
    commit_result: CommitResult | None = None
    retention: str | None = None  # the target's default retention (MAPI), when known
    noun, verb = "file", "upload"
    failed_outcome = "kept"
    left_as_it_was = "staging left as it was"

    def scan(self, tracker: TrackerProtocol, errors: list[tuple[str, str]], staging_prefix: str) -> Iterator[Entry]:
        """``(relative path, size, mtime_ns)`` of the files to upload, lazily, in key order;
        unreadable entries and paths that cannot be keys to ``errors``."""
        if self.guard is None:
            self.guard = SourceGuard.for_run(self.source, tracker, self.prefix, staging_prefix, warn=self.warn)
        accepts = GlobFilter(self.include, self.exclude)
        return (
            (rel, size, mtime)
            for rel, _path, size, mtime in scan_tree(
                self.source,
                follow_symlinks=self.follow_symlinks,
                select=accepts.accepts if accepts.active else None,
                on_error=lambda rel, exc: errors.append((rel, f"{type(exc).__name__}: {exc}")),
                **self.guard.scan_options(),
            )
        )

    def _to_send(self, run: JobRun, counts: SyncCounts, staging_prefix: str | None) -> AsyncIterator[tuple[Entry, Change]]:
        """What a run sends, decided once: new, changed or missing from the bucket (``bulk/sync.py``;
        a file the tracker does not know is looked up in the prefix's fixity records,
        ``records.ArchivedLines``), but the retained files waiting for their next try; a job that
        never opened sends everything."""
        files = self.scan(run.tracker, run.scan_errors, staging_prefix or f"{STAGING_ROOT}{run.owner}/")
        if staging_prefix is None:
            return _all_new(files, counts)
        self.watch = watch_job(run.tracker, staging_prefix, self.include, self.exclude, run.scan_errors)
        files = self.watch.watch(files)
        waiting = Waiting.of(run.tracker)
        return _not_waiting(_paired(files_to_send(
            run.client.s3, run.tracker, files, bucket=self.bucket, staging_prefix=staging_prefix,
            final_prefix=self.prefix, counts=counts, send_all=not self.skip_existing,
            staging_bucket=self.staging_bucket, archive=ArchivedLines(run.client, self.bucket, self.prefix),
        )), waiting, staging_prefix)

    async def preview(self, run: JobRun, sample_size: int) -> tuple[int, int, list[tuple[str, int]], SyncCounts]:
        """A dry run: the files and bytes a real run would send, a sample of keys, the sync counts."""
        info = run.tracker.job_info()
        counts, files, size = SyncCounts(), 0, 0
        sample: list[tuple[str, int]] = []
        async for (rel, file_size, _mtime), _change in self._to_send(run, counts, info.staging_prefix if info else None):
            files, size = files + 1, size + file_size
            if len(sample) < sample_size:
                sample.append((self.prefix + rel, file_size))
        await self.note_deletions(run, dry_run=True)
        return files, size, sample, counts

    async def note_deletions(self, run: JobRun, dry_run: bool = False) -> None:
        """The scan's finding of files deleted at the source into the totals (reported, the
        objects kept) and, with ``mirror_deletions``, their removal (a dry run lists them)."""
        if self.watch is None:
            return
        for name, value in deletion_fields(self.watch).items():
            setattr(run.totals, name, value)
        if not self.mirror_deletions:
            return
        errors = len(run.scan_errors) if dry_run else run.totals.errors
        run.totals.mirror = mirror = await mirror_or_hold(
            run.client, run.tracker, self.watch, errors, self.max_delete, self.bucket, self.prefix,
            self.watch.record_prefix, dry_run=dry_run,
        )
        if mirror is not None and mirror.held_back and not dry_run:
            run.log.warning("mirror_deletions deleted nothing: %s", mirror.held_back)

    async def check_target(self, run: JobRun) -> None:
        """Before any byte moves: the bucket exists, and staging would not be retained there
        (``check_namespaces``: a target with a default retention needs ``staging_bucket``)."""
        await run.client.s3.list_objects(self.bucket, max_keys=1)  # a missing bucket fails here, clearly
        namespaces = await check_namespaces(run.client, self.bucket, self.staging_bucket)
        self.retention = namespaces.target.retention_default
        run.log.info("%s", namespaces.describe())

    # -- the steps of a JobRun ------------------------------------------------------------

    async def open(self, run: JobRun) -> None:
        """Open the job's staging; finish a commit an earlier run left half-done."""
        self.plan = plan = plan_staging(run.tracker, self.bucket, self.prefix, run.owner, self.staging_bucket)
        run.view.key_prefixes = (plan.staging_prefix, self.prefix)
        run.totals.sync = SyncCounts()
        info = run.tracker.job_info()
        if info is not None and info.state == JobState.committing:
            run.log.info("Job %s has a commit in progress from an earlier run: finishing it", run.job)
            await resume_commit(
                run.tracker, run.owner, run.lease_seconds, lambda: self._move(run, None), run.client, plan,
                self.retention,
            )
            info = run.tracker.job_info()
        if info is not None and info.state != JobState.open:
            run.tracker.update_job(state=JobState.open)
        run.log.info("Uploading %s to %s via staging %s", self.source, self.target, plan.staging_prefix)

    async def count(self, run: JobRun) -> AsyncIterator[tuple[int, int]]:
        assert self.plan is not None
        files = size = 0
        for _rel, file_size, _mtime in self.scan(run.tracker, [], self.plan.staging_prefix):
            files, size = files + 1, size + file_size
        yield files, size

    async def todo(self, run: JobRun) -> AsyncIterator[tuple[Any, ...]]:
        assert self.plan is not None and run.totals.sync is not None
        async for entry, change in self._to_send(run, run.totals.sync, self.plan.staging_prefix):
            yield (*entry, change) if run.cooperative else entry

    def register(self, run: JobRun, entries: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        """Changed or missing files known to the job as done go back to pending; all are registered."""
        assert self.plan is not None
        staging = self.plan.staging_prefix
        for rel, size, mtime, change in entries:
            if change is not Change.new:
                run.tracker.mark(staging + rel, size, TransferStatus.pending, mtime_ns=mtime)
        return [(staging + rel, size, mtime) for rel, size, mtime, _ in entries]

    def batch(self, run: JobRun, entries: list[tuple[Any, ...]], claimed: bool) -> Batch:
        """A claimed batch (pending by construction) adopts what staging holds; a single run's
        batch was decided by the sync plan: the engine reads neither records nor listings again."""
        assert self.plan is not None
        staging = self.plan.staging_prefix
        if claimed:
            entries = [(key[len(staging) :], size) for key, size in entries]
        return Batch(
            entries, staging, run.client, skip_existing=self.skip_existing and claimed, progress=not claimed,
            bucket=self.plan.staged_in,
        )

    async def verify(self, run: JobRun) -> None:
        """Staging against the tracker before the commit (raises on any mismatch)."""
        assert self.plan is not None
        run.check_lease()
        with run.view.phase("verify") as checked:
            checked.files = self.staged = await verify_staging(run.client, run.tracker, self.plan, self.listing_grace)
        run.log.info("Staging verified: %d object(s) ready to commit", self.staged)

    staged = 0
    """Objects found in staging by the check before the commit (what the commit moves)."""

    async def _move(self, run: JobRun, on_progress: Callable[[int, int], Any] | None) -> dict[str, Any]:
        assert self.plan is not None  # the run's client counts the retries: none counted twice
        return {**await self.move(run.client, self.plan, on_progress), "api_retries": 0}

    async def commit(self, run: JobRun) -> tuple[str, bool]:
        """Under the commit lock: moves, final check, manifest (another run may hold the lock).
        A failed final check leaves the job ``committing`` and says so in the summary."""
        assert self.plan is not None
        await self.note_deletions(run)  # before the commit: its manifest leaves mirrored files out
        try:
            with run.view.phase("commit", self.staged) as committing:
                progress = run.view.commit_progress(self.staged)
                commit = self.commit_result = await commit_job(
                    run.tracker, self.plan, run.owner, run.lease_seconds, lambda: self._move(run, progress),
                    run.client, manifest=self.write_manifest, listing_grace=self.listing_grace,
                    retention=self.retention,
                )
                committing.files = commit.moved if commit else 0
        except FinalCheckError as exc:
            run.totals.committed, run.totals.transfer.api_retries = 0, run.client.api_retries
            await run.view.publish_summary(
                "final check failed", run.totals.as_dict(), run.tracker.error_details(),
                reason=f"job left committing: {exc}",
            )
            raise
        run.totals.committed = commit.moved if commit else 0
        if commit is None:
            return "commit left to the run holding the lock", False
        run.totals.manifest = commit.extra.get("manifest")
        run.totals.record = commit.extra.get("record")
        for name, value in commit.fields().items():  # what the namespace refused: replaced, retained...
            setattr(run.totals, name, value)
        for name, value in retained_fields(run.tracker, self.plan.staging_prefix, self.prefix).items():
            setattr(run.totals, name, value)
        return "committed", True

    async def on_failure(self, run: JobRun) -> Failure:
        """``on_failure`` for a single run; a cooperative run keeps the staging it shares."""
        assert self.plan is not None
        if run.cooperative:
            return Failure("kept", "staging kept for the next run of the job (shared by cooperative runs)",
                           {"committed": 0, "outcome": "kept", "staging": "kept"})
        run.check_lease()  # never delete staging the job no longer holds
        report = await apply_failure_policy(self.policy, run.client, run.tracker, self.plan)
        outcome = "rolled back" if self.policy == OnFailure.rollback else "kept"
        fields = {"committed": 0, "outcome": outcome, "elapsed": round(time.monotonic() - run.started, 3), **report.fields()}
        run.log.warning("bulk-upload %s: %s", self.target, report.describe())
        return Failure(outcome, report.describe(), fields, staging_deleted=report.staging == "deleted")

    def failure_message(self, run: JobRun, failed: int, what: str) -> str:
        assert self.plan is not None
        errors = first_errors(run.errors(), self.plan.staging_prefix)
        if run.cooperative:
            return f"{failed} file(s) of job {run.job} failed ({errors}); {what}, {self.target} untouched"
        return f"{failed} file(s) failed to upload ({errors}); {what}; {self.target} untouched"

    def reason_is_message(self, run: JobRun) -> bool:
        return run.cooperative


async def _all_new(files: Iterator[Entry], counts: SyncCounts) -> AsyncIterator[tuple[Entry, Change]]:
    for entry in files:
        counts.new += 1
        yield entry, Change.new


async def _not_waiting(
    items: AsyncIterator[tuple[Entry, Change]], waiting: Waiting, staging_prefix: str
) -> AsyncIterator[tuple[Entry, Change]]:
    """``items`` but the retained files whose next try is ahead (``retained.Waiting``)."""
    async for entry, change in items:
        if not waiting.waits(staging_prefix + entry[0]):
            yield entry, change


async def _paired(items: AsyncIterator[tuple[str, int, int, Change]]) -> AsyncIterator[tuple[Entry, Change]]:
    async for rel, size, mtime, change in items:
        yield (rel, size, mtime), change
