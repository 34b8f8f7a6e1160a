"""The tracker contract every backend implements (SQLite, Postgres).

A tracker records, per key of one *job*, what happened in a transfer, so that a rerun skips
what is done and retries what failed. Every row is scoped by ``job``: two jobs may hold the
same key without touching each other. Calls are synchronous and cheap; ``mark`` is buffered
and reaches the database on ``commit()`` (or every ``flush_every`` marks).

Claims let several flow runs drain one job: each run ``register``s the job's manifest
(idempotent), then ``claim``s batches of pending keys under a lease that it ``renew``s while
working. A key whose lease expired is claimable again; a key marked done never is.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Protocol, runtime_checkable


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


@dataclass(frozen=True)
class JobInfo:
    """One job's row: its state and where its staging lives, for commit and cleanup."""

    job: str
    state: JobState
    bucket: str | None = None
    staging_prefix: str | None = None
    final_prefix: str | None = None
    commit_owner: str | None = None
    updated_at: datetime | None = None


@runtime_checkable
class TrackerProtocol(Protocol):
    """What the engine, the tasks and the flows need from any tracker backend."""

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
    ) -> None:
        """Record the outcome of ``key`` (buffered); a later mark of the same key wins."""

    def done_keys(self) -> set[str]:
        """Every key of this job marked done (flushes first)."""

    def done_entries(self) -> dict[str, int]:
        """``{key: size}`` of every key of this job marked done, for verifying staging."""

    def error_entries(self) -> list[tuple[str, int]]:
        """``(key, size)`` of every key of this job marked error, for ``retry_errors``."""

    def error_details(self) -> list[tuple[str, str]]:
        """``(key, error message)`` of every key marked error."""

    def delete(self, key: str) -> None:
        """Forget ``key`` in this job."""

    def summary(self) -> dict[str, int]:
        """Counts per status for this job: ``{"pending": n, "done": n, "error": n}``."""

    def unverified_keys(self) -> list[tuple[str, int, str | None]]:
        """``(key, size, etag)`` of done keys not yet verified."""

    def unvalidated_keys(self) -> list[tuple[str, int]]:
        """``(key, size)`` of done keys not yet validated."""

    def commit(self) -> None:
        """Flush buffered marks to the database."""

    def close(self) -> None:
        """Flush and release connections; the tracker is unusable afterwards."""

    def delete_job(self) -> int:
        """Forget this job entirely (keys and job row), e.g. after a rollback; returns key count."""

    # -- claims: several runs drain one job ---------------------------------------------
    def register(self, entries: Iterable[tuple[str, int]]) -> int:
        """Add ``(key, size)`` rows as pending unless the key exists; returns how many were new."""

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
