"""The commit: staging moved to the final prefix under the job's commit lock, then checked.

The job is marked ``committing`` before the first object moves, so a run that dies half-way
leaves a record: the next run finishes the moves first (``resume_commit``). Only the final
check (``check.check_final``, then the manifest written and read back) turns ``committing``
into ``committed``. The moves themselves are
given by the caller (a flow passes its Prefect task), so this module stays Prefect-free.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from rahcp_prefect import defaults
from rahcp_prefect.client import HCPClient, RetentionError
from rahcp_prefect.client.prefix_moves import Place, move_prefix
from rahcp_prefect.client.s3 import PLACED, REPLACED
from rahcp_prefect.job.check import FinalCheck, check_final, fail_final_check
from rahcp_prefect.job.recording import record_commit
from rahcp_prefect.job.renewal import renewed
from rahcp_prefect.job.retained import note_left
from rahcp_prefect.job.staging import StagingPlan
from rahcp_prefect.job.tagstream import ListingSpool
from rahcp_prefect.tracker.protocol import JobState, TrackerProtocol, TransferStatus

logger = logging.getLogger(__name__)

SHOWN_RETAINED = 20
"""Retained files named in a run's result; the rest are counted."""

#: Moves staging to the final prefix: ``{"moved": n, "api_retries": n}`` and what
#: ``move_staged`` adds (``replaced``, ``left``: staged keys not placed, ``kept``: staging
#: that may not be deleted).
MoveFn = Callable[[], Awaitable[dict[str, Any]]]

#: The error recorded on a file whose archived object may not be replaced: the next run sends
#: it again and tries once more (a hold is released, a retention ends).
RETAINED = "retained: its object in the final prefix is under retention or on hold and was not replaced"

#: What ``place_staged`` answers for a staged object it left out (its final object is retained).
LEFT = "left"


def place_staged(client: HCPClient, staging_bucket: str, left: list[str]) -> Place:
    """The commit strategy for one staged object, whatever the namespace allows.

    ``S3Ops.place``: a copy onto the final key (a versioned namespace or one with the
    overwrite option stores it), the safe replace where the namespace refuses (409; the staged
    copy stays until the new bytes are in place; their ETag is checked by the final check's
    listing, not a HEAD each). A final object under retention or on hold (403) is left as it is
    (``LEFT``, its staged key appended to ``left``: the caller records the file as retained;
    the staged copy is deleted all the same), unless it already holds these bytes (an earlier,
    killed commit placed them: ``PLACED``).
    """

    async def place(dest_bucket: str, dest_key: str, item: dict[str, Any]) -> str:
        try:
            return await client.s3.place(dest_bucket, dest_key, staging_bucket, item, check=False)
        except RetentionError as exc:
            etag, size = str(item.get("ETag") or ""), int(item.get("Size", 0) or 0)
            if await client.s3.holds(dest_bucket, dest_key, etag, size):
                return PLACED  # retained, but already these bytes
            logger.warning("Not replaced: %s", exc)
            left.append(item["Key"])
            return LEFT

    return place


async def move_staged(
    client: HCPClient,
    plan: StagingPlan,
    concurrency: int,
    on_progress: Callable[[int, int], Any] | None = None,
    max_concurrency: int = defaults.MAX_WORKERS,
) -> dict[str, Any]:
    """The commit's moves: every staged object placed under the final prefix by
    ``place_staged``, a page at a time (``client.prefix_moves.move_prefix``: ``concurrency``
    copies in flight at first, up to ``max_concurrency``); ``{"moved", "replaced", "left":
    [staged keys], "kept": staged objects that may not be deleted, "copies_in_flight": range}``."""
    left: list[str] = []
    moves = await move_prefix(
        client, plan.staged_in, plan.staging_prefix, plan.final_prefix, place_staged(client, plan.staged_in, left),
        dest_bucket=plan.bucket, concurrency=concurrency, max_concurrency=max_concurrency, on_progress=on_progress,
    )
    return {
        "moved": moves.objects - len(left), "replaced": moves.outcomes[REPLACED], "left": left, "kept": moves.kept,
        "copies_in_flight": moves.window,
    }


async def keep_left(
    client: HCPClient, tracker: TrackerProtocol, plan: StagingPlan, left: list[str], retention: str | None
) -> None:
    """The files a commit's moves left (their final object retained): recorded as failed
    (``record_retained``) and with their next try (``retained.note_left``), so the sync leaves
    them out until then. One path for a commit and for a commit resumed after a crash."""
    record_retained(tracker, left)
    await note_left(client, tracker, [(key, plan.final_key(key)) for key in left], plan.bucket, retention)


def record_retained(tracker: TrackerProtocol, left: list[str]) -> None:
    """Record files whose archived object was not replaced as failed with ``RETAINED``: the
    final check and the manifest then leave them out, and the next run sends them again."""
    if not left:
        return
    sizes = tracker.done_entries()
    for key in left:
        tracker.mark(key, sizes.get(key, 0), TransferStatus.error, RETAINED)
    tracker.flush()


@contextlib.asynccontextmanager
async def commit_lock(tracker: TrackerProtocol, owner: str, lease_seconds: float) -> AsyncIterator[bool]:
    """Hold the job's commit lock (renewed while held); yields False when another run has it."""
    if not tracker.acquire_commit(owner, lease_seconds):
        yield False
        return
    renew = partial(tracker.acquire_commit, owner, lease_seconds)  # the holder re-acquiring extends it
    try:
        async with renewed(renew, lease_seconds / 3, f"commit lock of job {tracker.job!r}"):
            yield True
    finally:
        tracker.release_commit(owner)


async def wait_for_commit_lock(tracker: TrackerProtocol, owner: str, lease_seconds: float, log: Any = logger) -> None:
    """Take the job's commit lock for ``owner``, waiting while another run holds it (said
    once in ``log``: a flow passes its run logger).

    A live holder renews its lease until it is done; a run killed while holding it stops
    renewing, so its lease runs out within ``lease_seconds`` and the lock comes free.
    """
    poll = min(1.0, lease_seconds / 4)
    waited = False
    while not tracker.acquire_commit(owner, lease_seconds):
        if not waited:
            info = tracker.job_info()
            holder = info.commit_owner if info else None
            log.info("Job %s: waiting for the commit lock held by run %s", tracker.job, holder)
            waited = True
        await asyncio.sleep(poll)


#: The result's ``record`` after a commit that changed nothing the records say.
UNCHANGED = "unchanged: the records already list every file of the prefix as it is; nothing written"


async def _record(
    client: HCPClient, tracker: TrackerProtocol, plan: StagingPlan, check: FinalCheck, listing: ListingSpool | None
) -> dict[str, Any]:
    """The commit's fixity record and the prefix's manifest (``recording.record_commit``, as a
    stream, over the final check's ``listing``); what was read back wrong becomes the final
    check's manifest problems."""
    recorded = await record_commit(client, tracker, plan, listing)
    check.manifest = recorded.problems
    manifest: int | str = recorded.files if recorded.root in ("written", "unchanged") else recorded.root
    return {"manifest": manifest, "record": recorded.record or UNCHANGED}


@dataclass
class CommitResult:
    """What one commit did: objects moved, API requests repeated, and the final check; files
    ``retained`` (final keys not replaced: retention or hold), objects ``replaced`` by a safe
    replace, and staging objects ``staging_kept`` (retention: they may not be deleted)."""

    moved: int
    api_retries: int
    check: FinalCheck
    extra: dict[str, Any] = field(default_factory=dict)  # ``{"manifest": files listed}`` when written
    retained: list[str] = field(default_factory=list)
    replaced: int = 0
    staging_kept: int = 0
    copies_in_flight: str = ""  # the range of the commit's adaptive window, e.g. "8 to 32"

    def fields(self) -> dict[str, Any]:
        """The result fields a run reports about what its namespace refused (and the range of
        copies in flight)."""
        out: dict[str, Any] = {"replaced": self.replaced, "retained": len(self.retained), "staging_kept": self.staging_kept}
        if self.copies_in_flight:
            out["copies_in_flight"] = self.copies_in_flight
        if self.retained:
            out["retained_files"] = self.retained[:SHOWN_RETAINED]
        if self.staging_kept:
            out["staging_kept_why"] = "retention: the staging namespace may not delete them; the job is committed"
        return out


async def resume_commit(
    tracker: TrackerProtocol,
    owner: str,
    lease_seconds: float,
    move: MoveFn,
    client: HCPClient,
    plan: StagingPlan,
    retention: str | None = None,
) -> int:
    """Finish the moves of a commit an earlier run left half-done (waiting for its lock);
    returns the API requests repeated. Files whose final object is retained are kept as a
    commit keeps them (``keep_left``: with their next try; ``retention``: the target's default
    retention). The job is then open again: this run's own commit and final check decide when
    it is committed."""
    await wait_for_commit_lock(tracker, owner, lease_seconds)
    async with commit_lock(tracker, owner, lease_seconds):
        info = tracker.job_info()
        if info is None or info.state != JobState.committing:
            return 0  # the earlier run finished meanwhile
        result = await move()
        await keep_left(client, tracker, plan, list(result.get("left", [])), retention)
    return int(result.get("api_retries", 0))


async def commit_job(
    tracker: TrackerProtocol,
    plan: StagingPlan,
    owner: str,
    lease_seconds: float,
    move: MoveFn,
    client: HCPClient,
    manifest: bool = True,
    listing_grace: float = 0.0,
    retention: str | None = None,
) -> CommitResult | None:
    """Move staging to the final prefix under the commit lock, check the final prefix, write
    the commit's fixity record (``records.py``: only when a line changed) and the prefix's
    manifest and times where they may be replaced, last, and read them back
    (``manifest=False``: none of them) before the job is ``committed``.

    ``retention``: the target's default retention (MAPI), to tell when a file it refused may be
    sent again (``retained.note_left``). ``listing_grace``: seconds the final check reads a listing again that lacks files (a
    backend's listing cache). ``client`` is opened for the commit: every API request it repeated (its login's included)
    is counted in the result's ``api_retries``, with the moves'.

    Returns None when another run holds the lock (a cooperative run commits for all). Raises
    ``FinalCheckError`` (the job stays ``committing``) when the final prefix lacks a file of
    the job as recorded or the manifest is not what was written; marks the job ``committed``
    only after the check passed.
    """
    async with commit_lock(tracker, owner, lease_seconds) as held:
        if not held:
            return None
        tracker.update_job(state=JobState.committing)
        moved: dict[str, Any] = await move()
        left = list(moved.get("left", []))
        await keep_left(client, tracker, plan, left, retention)
        extra: dict[str, Any] = {}
        with tempfile.TemporaryDirectory(prefix="rahcp-commit-") as workdir:
            listing = ListingSpool(Path(workdir) / "final-listing") if manifest else None  # listed once
            check = await check_final(client, tracker, plan, listing_grace, listing)
            if check.ok and manifest:
                extra = await _record(client, tracker, plan, check, listing)
        retries = int(moved.get("api_retries", 0)) + client.api_retries
        if not check.ok:
            raise fail_final_check(tracker, plan, check)
        tracker.update_job(state=JobState.committed)
        tracker.forget_committed_retained()
        return CommitResult(
            int(moved.get("moved", 0)), retries, check, extra,
            retained=[plan.final_key(key) for key in left], replaced=int(moved.get("replaced", 0)),
            staging_kept=int(moved.get("kept", 0)), copies_in_flight=str(moved.get("copies_in_flight") or ""),
        )
