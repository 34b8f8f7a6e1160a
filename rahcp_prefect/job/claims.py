"""Many runs, one job: drain a job's manifest through leased claims on a shared tracker.

Every run of a cooperative job registers the manifest (idempotent), then claims batches of
keys under a lease that it renews while the batch runs, and marks the results. A run that dies
loses nothing: its leases expire and a surviving run takes the keys over. A run finishes when
no key of the job is pending any more; keys that failed stay ``error`` and are tried again by
a later run of the job. A retained file (its archived object refused the new bytes) is claimed
only once its next try has come (the tracker's claim leaves it out until then). Each run tries
a key at most once, so a key that keeps failing cannot keep a run busy forever.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from functools import partial
from itertools import islice
from typing import Any

from rahcp_prefect.job.counts import add_counts, new_counts
from rahcp_prefect.job.renewal import renewed
from rahcp_prefect.job.retained import waiting_in
from rahcp_prefect.tracker.protocol import TrackerProtocol, TransferStatus

BatchFn = Callable[[list[tuple[str, int]]], Awaitable[dict[str, Any]]]
REGISTER_CHUNK = 10_000


def register_manifest(tracker: TrackerProtocol, entries: Iterable[tuple[Any, ...]]) -> tuple[int, int]:
    """Register ``(key, size)`` or ``(key, size, mtime_ns)`` entries in chunks; returns
    ``(seen, newly added)``."""
    seen = added = 0
    iterator = iter(entries)
    while chunk := list(islice(iterator, REGISTER_CHUNK)):
        seen += len(chunk)
        added += tracker.register(chunk)
    return seen, added


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
    over the keys of a run that died once their lease expires. Keys this run attempted that
    stay pending (files deferred because they changed while sent) are left for the next run.
    What the run remembers is only the keys it tried that are not done (deferred or failed,
    asked of the tracker after each batch), never every key it sent: flat at any job size.
    """
    tried_undone: set[str] = set()  # tried by this run, not done: never claimed by it again
    totals = new_counts()
    while True:
        claimed = tracker.claim(owner, batch_size, lease_seconds)
        fresh = [(key, size) for key, size in claimed if key not in tried_undone]
        if fresh:
            renew = partial(tracker.renew, owner, lease_seconds)  # a missed renewal risks a duplicate only
            async with renewed(renew, lease_seconds / 3, f"claims of {owner}"):
                add_counts(totals, await run_batch(fresh))
            statuses = tracker.statuses_of(key for key, _ in fresh)
            tried_undone.update(key for key, _ in fresh if statuses.get(key) is not TransferStatus.done)
            continue
        pending = tracker.summary().get("pending", 0)
        if pending == 0:
            return totals
        ours = sum(1 for status in tracker.statuses_of(tried_undone).values() if status is TransferStatus.pending)
        if pending <= ours + waiting_in(tracker, TransferStatus.pending):
            return totals  # what stays pending, this run deferred or a retention holds back: the next run's
        await asyncio.sleep(poll_seconds)
