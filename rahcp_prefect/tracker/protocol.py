"""The tracker contract every backend implements (SQLite, Postgres).

A tracker records, per key of one *job*, what happened in a transfer, so that a rerun skips
what is done and retries what failed. Every row is scoped by ``job``: two jobs may hold the
same key without touching each other. Calls are synchronous and cheap; ``mark`` is buffered
and reaches the database on ``flush()`` (or every ``flush_every`` marks).

Claims let several flow runs drain one job: each run ``register``s the job's manifest
(idempotent), then ``claim``s batches of pending keys under a lease that it ``renew``s while
working. A key whose lease expired is claimable again; a key marked done never is.

The job lease says who works on a job: one ``single`` run exclusively, or any number of
``cooperative`` runs sharing it. It is taken before a run touches staging, renewed while the
run works and released at its end; a run that dies stops renewing and its lease expires.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import NamedTuple, Protocol, runtime_checkable

from rahcp_prefect.client.resume import PartStore
from rahcp_prefect.tracker.retained import RetainedFile


class TransferStatus(str, Enum):
    """Outcome of one key in a job."""

    pending = "pending"
    done = "done"
    error = "error"


class JobState(str, Enum):
    """Life cycle of a job's staging commit."""

    open = "open"  # transferring (or never committed)
    committing = "committing"  # commit started: staging is being moved to the final prefix
    committed = "committed"  # final prefix complete, staging empty
    rolled_back = "rolled_back"  # staging deleted after a failure


class LeaseMode(str, Enum):
    """How runs share a job: one at a time, or many draining it together through claims."""

    single = "single"
    cooperative = "cooperative"


@dataclass(frozen=True)
class JobInfo:
    """One job's row: its state, where its staging lives, and who holds it (for commit and cleanup).

    ``commit_owner``, ``lease_owner`` and ``lease_mode`` are None once their lease expired.
    """

    job: str
    state: JobState
    bucket: str | None = None
    staging_prefix: str | None = None
    final_prefix: str | None = None
    commit_owner: str | None = None
    updated_at: datetime | None = None
    lease_owner: str | None = None
    lease_mode: LeaseMode | None = None
    lease_expires: float = 0.0  # Unix seconds (database clock on PostgreSQL)


@dataclass(frozen=True)
class LeaseAnswer:
    """The tracker's answer to ``take_job_lease``: whether the caller holds the job, and who
    does (the lease a run holds and renews is ``rahcp_prefect.job.JobLease``)."""

    held: bool  # True: the caller holds (or shares, cooperative) the lease now
    owner: str | None  # the holder (cooperative: the last run that renewed); None when free
    mode: LeaseMode | None
    expires: float  # Unix seconds; 0 when free
    seconds_left: float  # how long the holder's lease still runs (by the database's clock)


class FileEntry(NamedTuple):
    """One key's record: its size and modification time as sent, and its status."""

    size: int
    mtime_ns: int | None
    status: TransferStatus


class FileDigests(NamedTuple):
    """A done key's size and digests (hex) as sent or received; None when not computed."""

    size: int
    sha256: str | None
    md5: str | None


@runtime_checkable
class TrackerProtocol(PartStore, Protocol):
    """What the engine, the tasks and the flows need from any tracker backend (including the
    SDK's ``PartStore``: the parts of unfinished multipart uploads, for part-level resume)."""

    job: str

    # -- per-key results (the reference SDK's interface) --------------------------------
    def mark(
        self,
        key: str,
        size: int,
        status: TransferStatus,
        error: str | None = None,
        *,
        etag: str | None = None,
        verified: bool = False,
        validated: bool = False,
        mtime_ns: int | None = None,
        sha256: str | None = None,
        md5: str | None = None,
    ) -> None:
        """Record the outcome of ``key`` (buffered); a later mark of the same key wins.

        ``mtime_ns`` is the file's modification time as sent (None: not known); ``sha256`` and
        ``md5`` its digests (hex) as sent or received (None: not computed).
        """

    def done_keys(self) -> set[str]:
        """Every key of this job marked done (flushes first)."""

    def done_entries(self) -> dict[str, int]:
        """``{key: size}`` of every key of this job marked done, for verifying staging."""

    def entries(self, status: TransferStatus | None = None) -> dict[str, FileEntry]:
        """``{key: FileEntry(size, mtime_ns, status)}`` of this job's keys (one status or all)."""

    def iter_done(self, prefix: str = "", page_size: int = 5000) -> Iterator[tuple[str, int, int | None]]:
        """``(key, size, mtime_ns)`` of the done keys under ``prefix`` in key order (UTF-8 bytes),
        read a page at a time: the incremental sync merges it with the scan and the listing."""

    def iter_done_digests(self, prefix: str = "", page_size: int = 5000) -> Iterator[tuple[str, FileDigests]]:
        """``(key, FileDigests)`` of the done keys under ``prefix`` in key order, a page at a time."""

    def statuses_of(self, keys: Iterable[str]) -> dict[str, TransferStatus]:
        """``{key: status}`` of those of ``keys`` the job holds (a batch's, never the job's)."""

    def done_digests(self) -> dict[str, FileDigests]:
        """``{key: FileDigests(size, sha256, md5)}`` of every key of this job marked done."""

    def error_entries(self) -> list[tuple[str, int]]:
        """``(key, size)`` of every key of this job marked error, for ``retry_errors``."""

    def error_details(self) -> list[tuple[str, str]]:
        """``(key, error message)`` of every key marked error."""

    def delete(self, key: str) -> None:
        """Forget ``key`` in this job."""

    def delete_keys(self, keys: Iterable[str]) -> int:
        """Forget every key of ``keys`` in this job (in batches); returns how many were stored."""

    def summary(self) -> dict[str, int]:
        """Counts per status for this job: ``{"pending": n, "done": n, "error": n}``."""

    def unverified_keys(self) -> list[tuple[str, int, str | None]]:
        """``(key, size, etag)`` of done keys not yet verified."""

    def unvalidated_keys(self) -> list[tuple[str, int]]:
        """``(key, size)`` of done keys not yet validated."""

    def flush(self) -> None:
        """Write the buffered marks to the database (the tracker's only "flush"; a job's
        commit is the staging move, see ``job.commit``)."""

    def close(self) -> None:
        """Flush and release connections; the tracker is unusable afterwards."""

    def delete_job(self) -> int:
        """Forget this job entirely (keys and job row), e.g. after a rollback; returns key count."""

    # -- claims: several runs drain one job ---------------------------------------------
    def register(self, entries: Iterable[tuple[str, int] | tuple[str, int, int | None]]) -> int:
        """Add ``(key, size)`` or ``(key, size, mtime_ns)`` rows as pending unless the key
        exists; returns how many were new."""

    def claim(self, owner: str, limit: int, lease_seconds: float) -> list[tuple[str, int]]:
        """Lease up to ``limit`` pending (or lease-expired, not done) keys to ``owner``."""

    def renew(self, owner: str, lease_seconds: float) -> int:
        """Extend every lease ``owner`` holds in this job; returns how many keys it holds."""

    def release(self, owner: str) -> int:
        """Give back ``owner``'s leased keys that are not done; returns how many."""

    # -- job state, for the staging commit ----------------------------------------------
    def job_info(self) -> JobInfo | None:
        """This job's row, or None before ``update_job`` was first called."""

    def update_job(
        self,
        *,
        state: JobState | None = None,
        bucket: str | None = None,
        staging_prefix: str | None = None,
        final_prefix: str | None = None,
    ) -> JobInfo:
        """Create or update this job's row (fields left None keep their value)."""

    def open_job(self, *, bucket: str, staging_prefix: str, final_prefix: str) -> JobInfo:
        """Create this job's row, or reopen it after a rollback, and return it.

        Atomic: when several runs open the job at once, the first one's staging prefix wins
        and every run gets that row back.
        """

    def acquire_commit(self, owner: str, lease_seconds: float) -> bool:
        """Take the job's commit lock: True for exactly one owner until it releases or expires."""

    def release_commit(self, owner: str) -> None:
        """Give up the commit lock if ``owner`` holds it."""

    def list_jobs(self, state: JobState | None = None) -> list[JobInfo]:
        """Every job in this database (optionally in one state): cleanup finds crashed staging."""

    # -- the job lease: who works on the job ---------------------------------------------
    def take_job_lease(
        self, owner: str, lease_seconds: float, mode: LeaseMode = LeaseMode.single
    ) -> LeaseAnswer:
        """Take the job lease for ``lease_seconds`` if it is free, expired, or already ``owner``'s
        (then it is renewed); a cooperative run also shares a live cooperative lease. Atomic:
        of runs taking at once, exactly one single-mode run wins. Creates the job's row if
        needed. The answer names the holder when the caller did not get it."""

    def renew_job_lease(self, owner: str, lease_seconds: float, mode: LeaseMode = LeaseMode.single) -> bool:
        """Extend a live lease the caller holds (single: ``owner`` holds it; cooperative: the
        cooperative lease is live); False when it expired or another run holds the job."""

    def release_job_lease(self, owner: str) -> bool:
        """Free the job if ``owner`` holds it in single mode; True if it did. A cooperative
        lease is shared, so one run cannot free it: it expires ``lease_seconds`` after the
        last cooperative run renewed it."""

    # -- retained files (``tracker/retained.py``) ----------------------------------------
    def note_retained(self, files: Iterable[tuple[str, RetainedFile]]) -> None:
        """Record (or update) files whose archived object was not replaced, by key."""

    def retained_files(self) -> Iterator[tuple[str, RetainedFile]]:
        """Every retained file of this job, in key order."""

    def forget_committed_retained(self) -> int:
        """Drop the record of retained files that are done again."""
