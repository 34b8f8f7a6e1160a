"""The tables both backends share, and how their rows are read and written in batches:
table names, the job row's SELECT list and its reader, keys in chunks, the stamp clock."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from itertools import islice
from typing import Any

from rahcp_prefect.tracker.protocol import JobInfo, JobState, LeaseMode

#: The tables every backend uses (created by ``schema``).
TRANSFERS = "rahcp_transfers"
JOBS = "rahcp_jobs"
UPLOADS = "rahcp_uploads"
PARTS = "rahcp_parts"

#: Keys per statement when forgetting many keys at once (SQLite allows 32,766 parameters).
DELETE_BATCH = 500


def batched(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    """Consecutive lists of at most ``size`` items, without materialising ``items``."""
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def utc_now() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(timezone.utc)


def job_columns(now: str) -> str:
    """The SELECT list ``job_info_from_row`` reads; ``now`` is the backend's clock in Unix seconds.

    A commit lock or job lease whose time ran out shows no holder.
    """
    live = f"lease_expires >= {now}"
    return (
        "job, state, bucket, staging_prefix, final_prefix, "
        f"CASE WHEN commit_expires >= {now} THEN commit_owner END, updated_at, "
        f"CASE WHEN {live} THEN lease_owner END, CASE WHEN {live} THEN lease_mode END, "
        f"CASE WHEN {live} THEN lease_expires ELSE 0 END"
    )


def job_info_from_row(row: tuple[Any, ...]) -> JobInfo:
    """A ``JobInfo`` from a row of ``job_columns``."""
    job, state, bucket, staging, final, owner, updated_at, lease_owner, lease_mode, lease_expires = row
    if isinstance(updated_at, str):
        updated_at = datetime.fromisoformat(updated_at)
    if isinstance(updated_at, datetime) and updated_at.tzinfo is None:
        updated_at = updated_at.replace(tzinfo=timezone.utc)
    return JobInfo(
        job=job,
        state=JobState(state),
        bucket=bucket,
        staging_prefix=staging,
        final_prefix=final,
        commit_owner=owner,
        updated_at=updated_at,
        lease_owner=lease_owner,
        lease_mode=LeaseMode(lease_mode) if lease_mode else None,
        lease_expires=float(lease_expires or 0),
    )

