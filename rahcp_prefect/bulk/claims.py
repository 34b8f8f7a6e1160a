"""Many runs, one job: drain a job's manifest through leased claims on a shared tracker.

Every run of a cooperative job registers the manifest (idempotent), then claims batches of
keys under a lease that it renews while the batch runs, and marks the results. A run that dies
loses nothing: its leases expire and a surviving run takes the keys over. A run finishes when
no key of the job is pending any more; keys that failed stay ``error`` and are tried again by
a later run of the job. Each run tries a key at most once, so a key that keeps failing cannot
keep a run busy forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any

from itertools import islice

from rahcp_prefect.tracker.protocol import TrackerProtocol

logger = logging.getLogger(__name__)

BatchFn = Callable[[list[tuple[str, int]]], Awaitable[dict[str, Any]]]
REGISTER_CHUNK = 10_000


COUNTERS = ("ok", "skipped", "errors", "done", "bytes", "retries", "api_retries", "verified", "unverified")


def new_counts() -> dict[str, Any]:
    """Every counter at zero, so a run that got no work still reports each of them."""
    return dict.fromkeys(COUNTERS, 0)


def add_counts(total: dict[str, Any], batch: dict[str, Any]) -> dict[str, Any]:
    """Sum the counters of one batch summary into ``total`` (in place) and return it."""
    for name in COUNTERS:
        total[name] = total.get(name, 0) + int(batch.get(name, 0))
    return total


def register_manifest(tracker: TrackerProtocol, entries: Iterable[tuple[str, int]]) -> tuple[int, int]:
    """Register ``(key, size)`` entries in chunks; returns ``(seen, newly added)``."""
    seen = added = 0
    iterator = iter(entries)
    while chunk := list(islice(iterator, REGISTER_CHUNK)):
        seen += len(chunk)
        added += tracker.register(chunk)
    return seen, added


@contextlib.asynccontextmanager
async def renewing(tracker: TrackerProtocol, owner: str, lease_seconds: float) -> AsyncIterator[None]:
    """Renew ``owner``'s leases every third of the lease while the body runs."""

    async def renew_forever() -> None:
        while True:
            await asyncio.sleep(lease_seconds / 3)
            try:
                tracker.renew(owner, lease_seconds)
            except Exception as exc:  # a missed renewal only risks a duplicate transfer
                logger.warning("lease renewal failed: %s", exc)

    task = asyncio.create_task(renew_forever())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def drain_job(
    tracker: TrackerProtocol,
    owner: str,
    run_batch: BatchFn,
    *,
    batch_size: int,
    lease_seconds: float,
    poll_seconds: float = 2.0,
) -> dict[str, Any]:
    """Claim and transfer batches until no key of the job is pending; returns summed stats.

    While other runs still hold pending keys this run waits and claims again, so it takes
    over the keys of a run that died once their lease expires.
    """
    attempted: set[str] = set()
    totals = new_counts()
    while True:
        claimed = tracker.claim(owner, batch_size, lease_seconds)
        fresh = [(key, size) for key, size in claimed if key not in attempted]
        if fresh:
            attempted.update(key for key, _ in fresh)
            async with renewing(tracker, owner, lease_seconds):
                add_counts(totals, await run_batch(fresh))
            continue
        if tracker.summary().get("pending", 0) == 0:
            return totals
        await asyncio.sleep(poll_seconds)


@contextlib.asynccontextmanager
async def commit_lock(tracker: TrackerProtocol, owner: str, lease_seconds: float) -> AsyncIterator[bool]:
    """Hold the job's commit lock (renewed while held); yields False when another run has it."""
    if not tracker.acquire_commit(owner, lease_seconds):
        yield False
        return

    async def keep() -> None:
        while True:
            await asyncio.sleep(lease_seconds / 3)
            tracker.acquire_commit(owner, lease_seconds)  # the holder re-acquiring extends it

    task = asyncio.create_task(keep())
    try:
        yield True
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        tracker.release_commit(owner)
