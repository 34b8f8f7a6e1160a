"""A download's staging: a local folder beside the destination, moved into place when complete.

``DownloadStaging`` is the download side of a ``JobRun``: it lists the prefix page by page,
decides once per key whether it is in the destination as this job wrote it
(``sync.decide_download``), reads the prefix's manifest once (every batch checks its bytes
against it), and, when every object arrived, moves the staging folder's files into the
destination under the commit lock. On failure the destination is untouched and staging is kept,
so the next run resumes from it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rahcp_prefect.bulk.filters import GlobFilter
from rahcp_prefect.bulk.paths import UnsafeKeyError, check_relpath, relative_key, writable_objects_filter
from rahcp_prefect.bulk.scanner import iter_listing
from rahcp_prefect.bulk.sync import Change, SortedRecords, SyncCounts, decide_download
from rahcp_prefect.client.safe_paths import LinkRefusedError, TreeStates
from rahcp_prefect.job.commit import commit_lock, wait_for_commit_lock
from rahcp_prefect.job.errors import BulkTransferFailed
from rahcp_prefect.job.folder import Promotion, promote_staging, staging_dir_for
from rahcp_prefect.job.manifest import RAHCP_DIR, ExpectedDigests
from rahcp_prefect.job.mtimes import ExpectedMtimes
from rahcp_prefect.job.records import read_fixity
from rahcp_prefect.job.run import Batch, Failure, JobRun, Selection, first_errors
from rahcp_prefect.tracker.protocol import JobState, TransferStatus


@dataclass(kw_only=True)
class DownloadStaging(Selection):
    """The download side of a run: ``bucket/prefix`` into ``dest`` through its staging folder."""

    dest: Path
    expected: ExpectedDigests | None = None
    times: ExpectedMtimes | None = None  # the prefix's ``rahcp-mtimes.txt``: the files' times to restore
    unwritable: list[tuple[str, int, str]] = field(default_factory=list)  # (key, size, why): named, never sent
    not_written: list[tuple[str, str]] = field(default_factory=list)  # (key, why): not a file in dest after the move
    noun, verb = "object", "download"
    failed_outcome = "failed"

    @property
    def folder(self) -> Path:
        return staging_dir_for(self.dest)

    @property
    def left_as_it_was(self) -> str:
        return f"{self.dest} untouched, completed files kept in {self.folder} for the next run"

    async def listing(self, run: JobRun) -> AsyncIterator[tuple[str, int, str | None]]:
        """``(key, size, etag)`` of every object under the prefix that the filters accept, page by page."""
        accepts = GlobFilter(self.include, self.exclude)
        async for key, size, etag in iter_listing(run.client.s3, self.bucket, self.prefix):
            if not accepts.active or accepts.accepts(key):
                yield key, int(size), etag

    async def writable(
        self, run: JobRun, states: TreeStates, found: bool = False
    ) -> AsyncIterator[tuple[str, int, str | None]]:
        """The listing without the keys that cannot be files under ``dest`` (a file and a folder
        of one name, ``..``, a name too long, a symbolic link in the way...); with ``found``
        they go to ``unwritable``. ``states``: what ``dest`` holds (the move into place refuses
        a link made after this look too). The prefix's fixity records (``.rahcp/``) are the
        archive's, not the job's files: not downloaded (the download checks every file against
        them; ``docs/fixity.md`` says how to fetch them)."""
        why = writable_objects_filter(self.prefix, str(self.dest))
        records = self.prefix + RAHCP_DIR
        async for key, size, etag in self.listing(run):
            if key.startswith(records):
                continue
            if (reason := why(key) or self._through_link(key, states)) is None:
                yield key, size, etag
            elif found:
                self.unwritable.append((key, size, reason))

    def _through_link(self, key: str, states: TreeStates) -> str | None:
        """Why the file of ``key`` (a writable path) cannot be placed: a link in ``dest`` in the way."""
        rel = relative_key(key, self.prefix)
        link = states.link(check_relpath(rel)) if rel is not None else None
        return str(LinkRefusedError(rel, link)) if rel is not None and link is not None else None

    def in_place(
        self, key: str, size: int, records: SortedRecords, counts: SyncCounts | None, states: TreeStates
    ) -> bool:
        """Whether ``key`` is in ``dest`` as this job wrote it (``states``: what ``dest`` holds,
        never behind a link); counted in ``counts`` when given."""
        try:
            rel = relative_key(key, self.prefix)
            local = states.state(check_relpath(rel)) if rel is not None else None
        except UnsafeKeyError:
            local = None
        change = decide_download(local, records.lookup(key), size)
        if counts is not None:
            counts.add(change)
        return change is Change.unchanged

    async def preview(self, run: JobRun, sample_size: int) -> tuple[int, int, list[tuple[str, int]], SyncCounts]:
        """The objects and bytes a run would download, a sample, the sync counts (``unchanged``:
        the ones in place)."""
        counts, files, size = SyncCounts(), 0, 0
        sample: list[tuple[str, int]] = []
        records = SortedRecords(run.tracker.iter_done(self.prefix))
        with TreeStates.at(self.dest) as states:
            async for key, object_size, _etag in self.writable(run, states, found=True):
                if not self.in_place(key, object_size, records, counts, states):
                    files, size = files + 1, size + object_size
                    if len(sample) < sample_size:
                        sample.append((key, object_size))
        self._name_unwritable(run)
        return files, size, sample, counts

    def _name_unwritable(self, run: JobRun) -> None:
        """The keys that cannot be written here, in the totals (``{key: why}``)."""
        run.totals.unwritable = len(self.unwritable)
        run.totals.unwritable_keys = {key: why for key, _size, why in self.unwritable}

    # -- the steps of a JobRun ------------------------------------------------------------

    async def open(self, run: JobRun) -> None:
        """Record where the job's files wait."""
        state = {} if run.cooperative else {"state": JobState.open}
        run.tracker.update_job(**state, bucket=self.bucket, staging_prefix=str(self.folder), final_prefix=self.prefix)
        run.totals.sync = None if run.cooperative else SyncCounts()
        run.log.info("Downloading %s/%s via %s", self.bucket, self.prefix, self.folder)

    async def count(self, run: JobRun) -> AsyncIterator[tuple[int, int]]:
        """The scan: every listed object that can be written here, and the bytes of those to
        download; the others are recorded as errors of the job (``rahcp errors`` lists them
        with their reason), never sent."""
        assert run.totals.sync is not None
        files, size = 0, 0
        listed = 0
        records = SortedRecords(run.tracker.iter_done(self.prefix))
        with TreeStates.at(self.dest) as states:
            async for key, object_size, _etag in self.writable(run, states, found=True):
                listed += 1
                if not self.in_place(key, object_size, records, run.totals.sync, states):
                    files, size = files + 1, size + object_size
        for key, object_size, reason in self.unwritable:
            run.tracker.mark(key, object_size, TransferStatus.error, f"unwritable: {reason}")
        if self.unwritable:
            run.tracker.flush()
        self._name_unwritable(run)
        yield listed, size

    async def todo(self, run: JobRun) -> AsyncIterator[tuple[Any, ...]]:
        """What this run downloads: a single run all that is not in place (with its ETag, so a
        single-part object is checked against its MD5 without a manifest); a cooperative run
        registers every key of the listing that can be written here (the run that commits names
        the others, as ``count`` does for a single run)."""
        records = SortedRecords(run.tracker.iter_done(self.prefix))
        with TreeStates.at(self.dest) as states:
            async for key, size, etag in self.writable(run, states, found=run.cooperative):
                if self.expected is None:  # the listing answered: the bucket is there
                    await self._read_manifest(run)
                if run.cooperative:
                    yield key, size
                elif not self.in_place(key, size, records, None, states):
                    yield key, size, etag
        if run.cooperative:
            self._name_unwritable(run)

    async def _read_manifest(self, run: JobRun) -> None:
        """The prefix's fixity records (``records.read_fixity``: the union, newest line of a path
        first; the root manifest and times of an older release), read once per run, which every
        batch checks its files against and gives them (their repeated GETs count in ``retries``)."""
        data = run.client.data
        before = data.retries
        try:
            fixity = await read_fixity(run.client, self.bucket, self.prefix)
            self.expected = ExpectedDigests(fixity.digests if fixity.found else None)
            self.times = ExpectedMtimes(fixity.mtimes if fixity.found else None)
        finally:
            run.totals.transfer.retries += data.retries - before

    def register(self, run: JobRun, entries: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        return entries

    def batch(self, run: JobRun, entries: list[tuple[Any, ...]], claimed: bool) -> Batch:
        assert self.expected is not None and self.times is not None
        return Batch(
            entries, str(self.folder), run.client, skip_done=not claimed,
            manifest=self.expected.lines_of(entries), mtimes=self.times.lines_of(entries), progress=not claimed,
        )

    async def verify(self, run: JobRun) -> None:
        """Every file was checked as it arrived (sizes, digests): nothing more before the move."""

    async def commit(self, run: JobRun) -> tuple[str, bool]:
        """Move the staging folder's files into the destination under the commit lock (a run
        alone waits for it; a cooperative run leaves it to the run that holds it)."""
        if not run.cooperative:
            await wait_for_commit_lock(run.tracker, run.owner, run.lease_seconds, run.log)
        run.check_lease()  # never move files of a staging folder the job no longer holds
        async with commit_lock(run.tracker, run.owner, run.lease_seconds) as held:
            run.totals.moved = 0
            if not held:
                return "moved into place by the run holding the lock", False
            with run.view.phase("commit") as moving:
                promotion = promote_staging(self.folder, self.dest) if self.folder.exists() else Promotion()
                run.totals.moved = moving.files = promotion.moved
            run.tracker.update_job(state=JobState.committed)
        self.not_written = [(key, why) for key, _size, why in self.unwritable]
        self.not_written += [(self.prefix + path, why) for path, why in promotion.unplaced]
        if self.not_written:
            run.totals.unwritable, run.totals.unwritable_keys = len(self.not_written), dict(self.not_written)
            return "partial", True
        return "complete", True

    def partial_failure(self, run: JobRun, result: dict[str, Any]) -> BulkTransferFailed | None:
        """The error of a run that placed every representable file but not all: it names the
        objects that are not files in ``dest`` (None: all are)."""
        if not self.not_written:
            return None
        return BulkTransferFailed(
            f"{len(self.not_written)} object(s) cannot be written in {self.dest} (unwritable: "
            f"{first_errors(self.not_written)}); the other {run.totals.moved} file(s) are in place",
            result,
        )

    async def on_failure(self, run: JobRun) -> Failure:
        """A download keeps its staging folder: the next run resumes from it."""
        return Failure("failed", "destination untouched" if run.cooperative else self.left_as_it_was)

    def failure_message(self, run: JobRun, failed: int, what: str) -> str:
        errors = first_errors(run.errors())
        if run.cooperative:
            return f"{failed} object(s) of job {run.job} failed ({errors}); {what}"
        return f"{failed} object(s) failed to download ({errors}); {what}"

    def reason_is_message(self, run: JobRun) -> bool:
        return True
