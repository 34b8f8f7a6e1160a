"""The failure policy: what a run that failed before its commit leaves behind.

``rollback`` (default) deletes the job's staging and forgets the marks of exactly what was
staged (the objects it deletes), so the next run sends those again; records of files that
earlier runs of the job committed stay, and are not sent again. ``keep`` leaves staging and
every done mark as they are, so the next run sends only what failed (or changed). Either way
the final prefix is untouched, and the report says what was kept or deleted.

**Interruption is not failure.** A run stopped from outside (Prefect's cancel, SIGTERM from a
worker or Kubernetes, SIGINT) failed nothing: ``interruption`` tells such a stop from a failure
(without importing Prefect), and ``kept_on_interruption`` keeps staging and the done marks
whatever ``on_failure`` says, without a request (the process has seconds left), so the next
run sends only what is missing. ``on_failure`` applies to failures only.

A rollback goes page by page, forgetting a page's marks before deleting its objects: a crash
half-way leaves objects that are no longer recorded as done, which the next run sends again
(or its verification removes), never a done mark without its object.
"""

from __future__ import annotations

import asyncio
import signal
from dataclasses import dataclass

from rahcp_prefect.client import HCPClient
from rahcp_prefect.interrupts import Interrupted, received, signal_name
from rahcp_prefect.job.errors import RunStopped
from rahcp_prefect.job.policy import OnFailure, parse_on_failure
from rahcp_prefect.job.staging import StagingPlan
from rahcp_prefect.tracker.protocol import JobInfo, JobState, TrackerProtocol


@dataclass(frozen=True)
class FailureReport:
    """What the policy did: ``staging`` is ``"kept"`` or ``"deleted"``, with its object count;
    ``forgotten``: marks dropped so the next run sends those files again."""

    policy: OnFailure
    staging: str
    staged: int
    forgotten: int

    def fields(self) -> dict[str, object]:
        """The result fields a run reports: ``on_failure``, ``staging``, ``staged``, ``forgotten``."""
        return {"on_failure": self.policy.value, "staging": self.staging, "staged": self.staged, "forgotten": self.forgotten}

    def describe(self) -> str:
        if self.staging == "deleted":
            return (
                f"staging rolled back ({self.staged} object(s) deleted, {self.forgotten} mark(s) forgotten; "
                "files committed by earlier runs stay recorded)"
            )
        return (
            f"staging kept ({self.staged} object(s)) with its done marks: the next run sends only what "
            "failed or changed"
        )


#: Class names of Prefect's signal exceptions (``prefect.exceptions``), matched by name so the
#: job stays Prefect-free: ``TerminationSignal`` is SIGTERM raised in the flow's process.
_SIGNAL_EXCEPTIONS = frozenset({"TerminationSignal", "ExternalSignal"})


def interruption(exc: BaseException | None) -> str | None:
    """What stopped the run from outside, or None when ``exc`` is a failure (or None).

    Interruptions: Prefect's ``TerminationSignal`` (SIGTERM: a worker's cancel, an eviction),
    ``Interrupted`` (a stop signal seen at a synchronous safe point, ``rahcp_prefect.interrupts``),
    ``KeyboardInterrupt`` (SIGINT), ``SystemExit``, and ``asyncio.CancelledError`` (how a
    cancel or a stop signal heard through the event loop reaches the run's code; named after
    that signal). A group counts as interrupted when any of its exceptions is.
    A failure that merely happened during a cancellation (its ``__context__``) stays a failure:
    ``asyncio.wait_for``'s ``TimeoutError`` has a ``CancelledError`` there too.
    """
    if exc is None:
        return None
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = interruption(inner)
            if found:
                return found
        return None
    if isinstance(exc, Interrupted) or any(kind.__name__ in _SIGNAL_EXCEPTIONS for kind in type(exc).__mro__):
        return signal_name(getattr(exc, "signal", signal.SIGTERM))
    if isinstance(exc, KeyboardInterrupt):
        return "SIGINT"
    if isinstance(exc, SystemExit):
        return "exit"
    if isinstance(exc, asyncio.CancelledError):  # named after the signal that cancelled the run
        return signal_name(signum) if (signum := received()) is not None else "cancelled"
    if isinstance(exc, RunStopped):
        return "stopped"
    return None


def kept_on_interruption(cause: str) -> str:
    """What an interrupted run left, in a sentence: nothing was asked of the store (the
    process has seconds left), so staging and the done marks stay whatever on_failure says."""
    return (
        f"interrupted ({cause}): staging kept with its done marks, whatever on_failure says; "
        "the next run sends only what is missing"
    )


async def roll_back(client: HCPClient, tracker: TrackerProtocol, plan: StagingPlan) -> FailureReport:
    """Delete the job's staging, forgetting the marks of what it held, and record the rollback."""
    info = tracker.job_info()
    forgotten = 0

    def forget(keys: list[str]) -> None:
        nonlocal forgotten
        forgotten += tracker.delete_keys(keys)

    deleted = await client.s3.cleanup_staging(plan.staged_in, plan.staging_prefix, before_delete=forget)
    mark_rolled_back(tracker, info)
    return FailureReport(OnFailure.rollback, "deleted", deleted, forgotten)


async def keep_staging(client: HCPClient, plan: StagingPlan) -> FailureReport:
    """Leave staging and the marks as they are; count what stays in staging."""
    staged = 0
    async for _item in client.s3.iter_objects(plan.staged_in, prefix=plan.staging_prefix):
        staged += 1
    return FailureReport(OnFailure.keep, "kept", staged, 0)


async def apply_failure_policy(
    policy: OnFailure | str, client: HCPClient, tracker: TrackerProtocol, plan: StagingPlan
) -> FailureReport:
    """Roll back or keep, per ``policy`` (a failed run: an interruption never comes here)."""
    if parse_on_failure(policy) == OnFailure.rollback:
        return await roll_back(client, tracker, plan)
    return await keep_staging(client, plan)


def mark_rolled_back(tracker: TrackerProtocol, info: JobInfo | None) -> None:
    """Record the rollback on the job row; its bucket, prefixes and committed records stay."""
    tracker.update_job(
        state=JobState.rolled_back,
        bucket=info.bucket if info else None,
        final_prefix=info.final_prefix if info else None,
    )
