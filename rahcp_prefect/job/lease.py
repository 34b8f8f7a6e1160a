"""The job lease: one single-mode run at a time per job, or cooperative runs together, never both.

A run takes the lease before it touches staging and holds it to its end: renewed every third of
``lease_seconds`` while it works, released when it ends. A run that dies stops renewing, so its
lease runs out within ``lease_seconds`` and the next run takes the job over. A second
single-mode run of the job waits for the holder (``on_busy="wait"``) or fails at once naming
it (``"fail"``); a run of the other mode fails at once (the two cannot mix). Before each step
that writes, verifies or deletes staging the run calls ``JobLease.check()``, which fails if
the lease was lost (the run stalled past its lease and another run took the job).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from rahcp_prefect.job.errors import JobBusyError, JobLeaseLostError, JobModeError
from rahcp_prefect.job.policy import OnBusy, parse_on_busy
from rahcp_prefect.job.renewal import renewed
from rahcp_prefect.tracker.protocol import LeaseAnswer, LeaseMode, TrackerProtocol

logger = logging.getLogger(__name__)

#: Where the job's messages go: a ``logging.Logger`` or adapter (a flow passes its run logger).
Log = logging.Logger | logging.LoggerAdapter[Any]


@dataclass
class JobLease:
    """The lease this run holds on its job, kept alive by ``hold_job``."""

    tracker: TrackerProtocol
    owner: str
    mode: LeaseMode
    lease_seconds: float
    waited_for: str | None = None  # the run this one waited for, if it had to
    lost: str | None = field(default=None, repr=False)

    def check(self) -> None:
        """Raise ``JobLeaseLostError`` if another run took the job from this one."""
        if self.lost:
            raise JobLeaseLostError(self.lost)

    def renew(self) -> bool:
        """Extend the lease (or take it again if it lapsed and nobody took it); False if lost."""
        if self.tracker.renew_job_lease(self.owner, self.lease_seconds, self.mode):
            return True
        answer = self.tracker.take_job_lease(self.owner, self.lease_seconds, self.mode)
        if answer.held:
            return True
        self.lost = (
            f"run {self.owner} lost job {self.tracker.job!r} to run {answer.owner} "
            f"({answer.mode.value if answer.mode else 'unknown'} mode): its lease of "
            f"{self.lease_seconds:g} s ran out before it was renewed"
        )
        return False


def _describe(job: str, answer: LeaseAnswer) -> str:
    mode = answer.mode.value if answer.mode else "unknown"
    return f"job {job!r} is held by run {answer.owner} ({mode} mode, lease ends in {answer.seconds_left:.0f} s)"


async def take_job(
    tracker: TrackerProtocol,
    owner: str,
    mode: LeaseMode,
    lease_seconds: float,
    on_busy: OnBusy | str = OnBusy.wait,
    poll_seconds: float | None = None,
    log: Log = logger,
) -> JobLease:
    """Take the job lease for ``owner``: at once if free, else wait for it or fail per ``on_busy``.

    A lease of the other mode fails at once (``JobModeError``); so does a busy job with
    ``on_busy="fail"`` (``JobBusyError``). Both messages name the run that holds the job.
    """
    on_busy = parse_on_busy(on_busy)
    mode = LeaseMode(mode)
    poll = poll_seconds if poll_seconds is not None else min(1.0, lease_seconds / 4)
    waited_for: str | None = None
    while True:
        answer = tracker.take_job_lease(owner, lease_seconds, mode)
        if answer.held:
            if waited_for:
                log.info("Job %s: run %s took the job after run %s", tracker.job, owner, waited_for)
            return JobLease(tracker, owner, mode, lease_seconds, waited_for=waited_for)
        if answer.owner is None:  # released between the take and the read: try again now
            continue
        if answer.mode is not None and answer.mode != mode:
            raise JobModeError(
                f"{_describe(tracker.job, answer)}: a {mode.value} run cannot share it; "
                f"run {'cooperative runs' if answer.mode == LeaseMode.cooperative else 'single runs'} "
                "of this job alone, or wait until they end"
            )
        if on_busy == OnBusy.fail:
            raise JobBusyError(f"{_describe(tracker.job, answer)}; on_busy='fail', so this run stops untouched")
        if waited_for != answer.owner:
            log.warning("%s: waiting for it (on_busy='wait')", _describe(tracker.job, answer))
            waited_for = answer.owner
        await asyncio.sleep(poll)


@contextlib.asynccontextmanager
async def hold_job(
    tracker: TrackerProtocol,
    owner: str,
    mode: LeaseMode,
    lease_seconds: float,
    on_busy: OnBusy | str = OnBusy.wait,
    log: Log = logger,
) -> AsyncIterator[JobLease]:
    """Take the job (``take_job``), renew it while the body runs, release it at the end."""
    lease = await take_job(tracker, owner, mode, lease_seconds, on_busy, log=log)

    def renew() -> bool:
        if lease.renew():
            return True
        log.error("%s", lease.lost)
        return False

    try:
        async with renewed(renew, lease_seconds / 3, f"lease of job {tracker.job!r}", log):
            yield lease
    finally:
        if mode == LeaseMode.single and not lease.lost:
            try:
                tracker.release_job_lease(owner)
            except Exception as exc:  # the lease then expires on its own
                log.warning("Job %s: could not release the job lease: %s", tracker.job, exc)
