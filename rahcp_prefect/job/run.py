"""One run of a job, either direction: lease -> plan -> transfer -> verify -> commit -> final check.

``JobRun`` is where a run's rules meet, once for uploads and downloads alike:

- one logged-in client for the whole run (one login; every retried API request counted by it),
- the job's tracker and its lease, single (one run at a time) or cooperative (runs share
  the job's claims): two lease modes of the same steps,
- the direction's staging (``UploadStaging``: a remote staging prefix; ``DownloadStaging``:
  a local staging folder beside the destination), which decides what to send, checks it and
  commits it,
- typed run totals (``RunTotals``) and the failure policy, applied in one place (``_fail``).

The transfer itself is handed in (``BatchRunner``: a flow passes its Prefect batch task), so
this module never imports Prefect; what the operator sees goes through a ``RunView`` the
caller hands in too (phases, progress, the summary).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractContextManager, aclosing
from dataclasses import dataclass, field, fields
from typing import Any, Protocol

from rahcp_prefect import defaults, interrupts
from rahcp_prefect.bulk.stats import DEFERRED_NAMED, TransferStats
from rahcp_prefect.bulk.sync import SyncCounts
from rahcp_prefect.client import HCPClient
from rahcp_prefect.job.claims import REGISTER_CHUNK, drain_job, register_manifest
from rahcp_prefect.job.counts import COUNTERS, DEFERRALS
from rahcp_prefect.job.deletions import MirrorResult
from rahcp_prefect.job.errors import BulkTransferFailed, JobLeaseLostError, RunStopped
from rahcp_prefect.job.failure import interruption, kept_on_interruption
from rahcp_prefect.job.lease import JobLease, Log, hold_job
from rahcp_prefect.job.policy import OnBusy
from rahcp_prefect.job.retained import waiting_in
from rahcp_prefect.report.format import relative_key, without_staging
from rahcp_prefect.tracker.protocol import LeaseMode, TrackerProtocol, TransferStatus


@dataclass
class RunTotals:
    """What a run did: the engine's counters summed over its batches (``transfer``), what the
    run decided (``sync``), and what its later steps did; an optional field appears in
    ``as_dict`` once a step sets it, so a new count is one field here."""

    transfer: TransferStats = field(default_factory=TransferStats)
    sync: SyncCounts | None = None  # new/changed/unchanged/missing, when the run decided them
    unreadable: int = 0  # files the scan could not read: they never reached a batch
    failed: int | None = None
    committed: int | None = None  # uploads: objects moved to the final prefix
    moved: int | None = None  # downloads: files moved into the destination
    manifest: int | str | None = None  # files the written manifest lists (or why an earlier one stays)
    record: str | None = None  # uploads: the commit's fixity record (its key), or that nothing changed
    replaced: int | None = None  # uploads: final objects replaced by a safe replace (no versioning, no overwrite)
    retained: int | None = None  # uploads: changed files not replaced (their archived object is retained or held)
    retained_files: list[str] | None = None  # the first of them, by final key
    retained_waiting: int | None = None  # uploads: retained files left out until their next try
    retained_next_try: dict[str, str] | None = None  # the first of them: final key -> next try (UTC)
    staging_kept: int | None = None  # uploads: staged objects the namespace may not delete (retention)
    staging_kept_why: str | None = None
    deleted_at_source: int | None = None  # uploads: files of the job the source no longer has
    deleted_at_source_keys: list[str] | None = None  # the first of them, relative to the prefix
    mirror: MirrorResult | None = None  # uploads: what ``mirror_deletions`` did (or would do)
    unwritable: int | None = None  # downloads: objects that cannot be files in the destination
    unwritable_keys: dict[str, str] | None = None  # their keys and why
    copies_in_flight: str | None = None  # uploads: the range of the commit's adaptive window

    def add(self, batch: Mapping[str, Any]) -> None:
        """Sum one batch summary's counters in (``api_retries`` is the run client's, set at the end)."""
        for name in (*COUNTERS, *DEFERRALS):
            if name not in ("done", "api_retries"):
                setattr(self.transfer, name, getattr(self.transfer, name) + int(batch.get(name, 0)))
        named = self.transfer.deferred  # the files left for the next run, the first few by name
        named.extend(list(batch.get("deferred") or [])[: max(0, DEFERRED_NAMED - len(named))])
        low, high = int(batch.get("window_lowest") or 0), int(batch.get("window_highest") or 0)
        if high:  # the range of files in flight over all batches
            ours = self.transfer
            ours.window_lowest = min(ours.window_lowest, low) if ours.window_highest else low
            ours.window_highest = max(ours.window_highest, high)

    @property
    def errors(self) -> int:
        return self.transfer.errors + self.unreadable

    def as_dict(self) -> dict[str, Any]:
        """The JSON-friendly totals: a run's result and its summary's figures (files the run
        found unchanged count as skipped, the unreadable ones as errors)."""
        out: dict[str, Any] = {name: getattr(self.transfer, name) for name in COUNTERS}
        out["errors"] = self.errors
        out.update({name: getattr(self.transfer, name) for name in DEFERRALS if getattr(self.transfer, name)})
        if self.transfer.deferred:
            out["deferred"] = list(self.transfer.deferred)
        if self.sync is not None:
            out["skipped"] += self.sync.unchanged
            out.update(self.sync.as_dict())
        low, high = self.transfer.window_lowest, self.transfer.window_highest
        if high:
            out["files_in_flight"] = str(low) if low == high else f"{low} to {high}"
        return {**out, **self.found()}

    def found(self) -> dict[str, Any]:
        """The optional fields a step set (all a dry run reports beside its counts); the
        mirror's own fields are flat (``mirror_deleted``, ``would_delete``...)."""
        out: dict[str, Any] = {}
        for item in fields(self)[3:]:
            if (value := getattr(self, item.name)) is None:
                continue
            if isinstance(value, MirrorResult):
                out.update(value.fields())
            else:
                out[item.name] = value
        return out


@dataclass
class Batch:
    """One batch for the ``BatchRunner``: the entries, where they go, and how the engine treats them."""

    entries: list[tuple[Any, ...]]
    staging: str  # the staging prefix (upload) or the staging folder (download)
    client: HCPClient  # the run's client: the batch logs in no more
    skip_existing: bool = False  # upload: adopt what staging already holds (a claimed batch)
    skip_done: bool = False  # download: keep what staging already holds as done
    manifest: Mapping[str, str] | None = None  # download: SHA-256 the bytes are checked against
    mtimes: Mapping[str, int] | None = None  # download: the files' times (ns) to restore
    progress: bool = True  # report the batch's progress (a single run's transfer phase)
    bucket: str = ""  # upload: the bucket that holds staging (``staging_bucket``, else the target)


BatchRunner = Callable[[Batch], Awaitable[dict[str, Any]]]
"""Runs one batch through the engine and returns its summary (a flow passes a Prefect task)."""


@dataclass(kw_only=True)
class Selection:
    """What a job moves: the bucket, the prefix (final keys or keys to read) and the glob
    patterns that narrow it, the same for both directions."""

    bucket: str
    prefix: str
    include: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)

    @property
    def target(self) -> str:
        return f"{self.bucket}/{self.prefix}"


class RunView(Protocol):
    """What the run shows the operator (``flows.artifacts.RunView`` in a flow)."""

    key_prefixes: tuple[str, ...]
    progress: Any

    def phase(self, name: str, files: int = 0, size: int = 0) -> AbstractContextManager[Any]: ...
    def commit_progress(self, total: int) -> Callable[[int, int], Any]: ...
    async def start(self) -> None: ...
    async def publish_summary(
        self, outcome: str, result: Mapping[str, Any], errors: Any = (), error_count: int | None = None,
        reason: str | None = None,
    ) -> None: ...


class Staging(Protocol):
    """A direction's staging: what to send, where it waits, how it is checked and committed."""

    noun: str  # "file" or "object", in messages
    verb: str  # "upload" or "download", in messages

    async def open(self, run: JobRun) -> None: ...
    def count(self, run: JobRun) -> AsyncIterator[tuple[int, int]]: ...
    def todo(self, run: JobRun) -> AsyncIterator[tuple[Any, ...]]: ...
    def register(self, run: JobRun, entries: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]: ...
    def batch(self, run: JobRun, entries: list[tuple[Any, ...]], claimed: bool) -> Batch: ...
    async def verify(self, run: JobRun) -> None: ...
    async def commit(self, run: JobRun) -> tuple[str, bool]: ...
    failed_outcome: str  # the outcome when the failure policy could not run

    @property
    def left_as_it_was(self) -> str: ...  # what a failure leaves when the policy could not run
    async def preview(self, run: JobRun, sample_size: int) -> tuple[int, int, list[tuple[str, int]], SyncCounts]: ...

    async def on_failure(self, run: JobRun) -> Failure: ...
    def failure_message(self, run: JobRun, failed: int, what: str) -> str: ...
    def reason_is_message(self, run: JobRun) -> bool: ...


@dataclass
class JobRun:
    """One run of a job; ``await run.execute()`` takes the lease and runs every step."""

    tracker: TrackerProtocol
    client: HCPClient
    staging: Staging
    send: BatchRunner
    view: RunView
    owner: str
    mode: LeaseMode
    lease_seconds: float
    log: Log
    on_busy: OnBusy = OnBusy.wait
    batch_size: int = defaults.BATCH_SIZE
    scan_errors: list[tuple[str, str]] = field(default_factory=list)
    totals: RunTotals = field(default_factory=RunTotals)
    lease: JobLease | None = None
    stop: asyncio.Event | None = None  # set: start no further batch (staging is kept)
    failure: Failure | None = None  # what the failure policy did
    error: BulkTransferFailed | None = None  # the transfer failure to raise (``_fail`` words it)
    started: float = field(default_factory=time.monotonic)

    @property
    def job(self) -> str:
        return self.tracker.job

    @property
    def cooperative(self) -> bool:
        return self.mode is LeaseMode.cooperative

    def check_lease(self) -> None:
        """Never write, verify, move or delete staging the job no longer holds."""
        if self.lease is not None:
            self.lease.check()

    def errors(self) -> list[tuple[str, str]]:
        """The run's failures: its scan's, then the tracker's."""
        return self.scan_errors + self.tracker.error_details()

    async def execute(self) -> tuple[str, bool]:
        """Every step under the job lease; returns the outcome and whether this run committed
        (False: another run holds the commit lock and commits for all). A failure is raised
        after the failure policy ran and the summary said what it left."""
        async with hold_job(self.tracker, self.owner, self.mode, self.lease_seconds, self.on_busy, log=self.log) as lease:
            self.lease = lease
            await self.staging.open(self)
            await self.view.start()
            try:
                await (self._drain() if self.cooperative else self._transfer())
                self._check_errors()
                await self.staging.verify(self)
            except BaseException as exc:
                await self._fail(exc)
                if self.error is not None:
                    raise self.error from None
                raise
            self.check_lease()
            self.totals.failed = 0
            try:
                outcome = await self.staging.commit(self)
            except BaseException as exc:  # interrupted mid-commit: said so; the next run finishes it
                if interruption(exc) is not None:
                    await self._fail(exc)
                raise
        self.totals.transfer.api_retries = self.client.api_retries
        return outcome

    def _unchanged(self) -> int:
        return self.totals.sync.unchanged if self.totals.sync is not None else 0

    def _check_stop(self) -> None:
        """The one place a stop request ends the transfer: no further batch starts (a stop
        signal the event loop has not delivered yet ends it too)."""
        interrupts.check()
        if self.stop is not None and self.stop.is_set():
            raise RunStopped(f"run {self.owner} of job {self.job!r} stopped before its next batch")

    async def _transfer(self) -> None:
        """A single run: count (the scan phase), then send what ``todo`` yields in batches (the
        next one read while one is sent: ``_chunks_ahead``)."""
        with self.view.phase("scan") as scan:
            async for scan.files, scan.bytes in self.staging.count(self):
                pass
        progress = self.view.progress
        with self.view.phase("transfer", scan.files, scan.bytes) as sent:
            before = self.totals.transfer.done
            unchanged = self._unchanged()
            async with aclosing(_chunks_ahead(self.staging.todo(self), self.batch_size)) as chunks:
                async for entries in chunks:  # the next batch's entries are read meanwhile
                    self._check_stop()
                    self.check_lease()
                    batch = await self.send(self.staging.batch(self, entries, claimed=False))
                    self.totals.add(batch)
                    # unchanged files the batch's plan passed over count as handled too
                    handled, unchanged = int(batch["done"]) + self._unchanged() - unchanged, self._unchanged()
                    progress.batch_finished(handled, int(batch["bytes"]))
            sent.files, sent.bytes = self.totals.transfer.done - before, self.totals.transfer.bytes

    async def _drain(self) -> None:
        """A cooperative run: register what this run found to send, then drain the job's claims."""
        seen = added = 0
        async for entries in _chunks(self.staging.todo(self), REGISTER_CHUNK):
            s, a = register_manifest(self.tracker, self.staging.register(self, entries))
            seen, added = seen + s, added + a
        self.tracker.flush()
        self.log.info("Manifest of %s: %d %s(s) to send, %d new", self.job, seen, self.staging.noun, added)

        async def run_batch(claimed: list[tuple[str, int]]) -> dict[str, Any]:
            self._check_stop()
            self.check_lease()
            return await self.send(self.staging.batch(self, list(claimed), claimed=True))

        drained = await drain_job(
            self.tracker, self.owner, run_batch, batch_size=self.batch_size, lease_seconds=self.lease_seconds
        )
        self.totals.add(drained)

    def failed(self) -> int:
        """Files that failed: this run's, or the job's in a cooperative run (but the retained
        files waiting for their next try: reported, never a failed night); scan errors included."""
        if self.cooperative:
            failed = self.tracker.summary().get("error", 0) - waiting_in(self.tracker, TransferStatus.error)
        else:
            failed = self.totals.transfer.errors
        return failed + len(self.scan_errors)

    def _check_errors(self) -> None:
        self.totals.unreadable = 0 if self.cooperative else len(self.scan_errors)
        if failed := self.failed():
            raise BulkTransferFailed(f"{failed} {self.staging.noun}(s) failed to {self.staging.verb}")

    async def _fail(self, exc: BaseException) -> None:
        """The failure policy, in one place: the staging's own (roll back or keep; never once the
        lease is lost), then the summary; a transfer failure comes back as ``self.error``, its
        message naming what failed and what was kept."""
        self.totals.transfer.api_retries = self.client.api_retries
        report: Failure | None = None
        if (cause := interruption(exc)) is not None:  # not a failure: keep staging, ask the store nothing
            what = kept_on_interruption(cause)
            report = Failure("interrupted", what, {"committed": 0, "outcome": "interrupted", "staging": "kept", "interrupted": cause})
            self.log.warning("%s: %s", self.job, what)
        elif not isinstance(exc, JobLeaseLostError):
            try:
                report = await self.staging.on_failure(self)
            except Exception as policy_exc:  # the job row keeps the staging for cleanup-staging
                self.log.error("Could not apply the failure policy of %s: %s", self.job, policy_exc)
        report = report or Failure(self.staging.failed_outcome, self.staging.left_as_it_was)
        self.failure = report
        self.totals.failed = failed = self.failed()
        result = {**self.totals.as_dict(), **report.fields, "job": self.job}
        errors = self.errors()
        reason = f"{type(exc).__name__}: {exc}; {report.what}"
        if isinstance(exc, BulkTransferFailed):
            self.error = BulkTransferFailed(self.staging.failure_message(self, failed, report.what), result)
            if self.staging.reason_is_message(self):
                reason = str(self.error)
        await self.view.publish_summary(
            report.outcome, result, errors, failed if self.cooperative else None, reason=reason
        )


@dataclass
class Failure:
    """What a failed run left: its outcome (``rolled back``, ``kept``, ``failed``), a sentence
    saying so, and the result fields that record it."""

    outcome: str
    what: str
    fields: dict[str, Any] = field(default_factory=dict)
    staging_deleted: bool = False


def first_errors(errors: list[tuple[str, str]], strip: str = "", limit: int = 3) -> str:
    """``key: message`` of the first ``limit`` errors, for an exception text that names them
    (``strip``, e.g. the staging prefix, is taken off the keys; no staging path is shown, in the
    keys or in the messages)."""
    shown = "; ".join(
        f"{relative_key(key, strip)}: {without_staging(message)[:200]}" for key, message in errors[:limit]
    )
    return shown + (f"; and {len(errors) - limit} more" if len(errors) > limit else "")


async def _chunks_ahead(items: AsyncIterator[Any], size: int) -> AsyncGenerator[list[Any], None]:
    """``_chunks``, the next chunk gathered while the caller works on the one it was given (a
    batch's transfers): batch n+1's listing pages and local checks overlap batch n instead of
    running between the two with nothing in flight (at 50 ms a page of 1,000 keys, five of them
    a batch). One chunk ahead at most; an error of ``items`` is raised where its chunk would
    have come; when the caller stops (a stop request, an error, cancellation) the read-ahead is
    cancelled and ``items`` closed."""
    source = _chunks(items, size)
    ahead: asyncio.Future[Any] = asyncio.ensure_future(anext(source, _NO_MORE))
    try:
        while (chunk := await ahead) is not _NO_MORE:
            ahead = asyncio.ensure_future(anext(source, _NO_MORE))
            yield chunk
    finally:
        if not ahead.done():
            ahead.cancel()
        await asyncio.gather(ahead, return_exceptions=True)  # never closed while it runs
        await source.aclose()
        aclose = getattr(items, "aclose", None)
        if aclose is not None:  # ``_chunks`` leaves it open: its ``finally`` runs now, not at GC
            await aclose()


_NO_MORE: Any = object()


async def _chunks(items: AsyncIterator[Any], size: int) -> AsyncGenerator[list[Any], None]:
    """Consecutive lists of ``size`` items of an async iterator, the last one shorter; lazy."""
    if size < 1:
        raise ValueError(f"batch_size must be >= 1, got {size}")
    batch: list[Any] = []
    async for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
