"""The staging life cycle of an upload job: where staging lives, verify, commit, roll back.

Uploads land under ``.rahcp-staging/<run id>/`` (the id of the flow run that opened the job),
recorded in the job's tracker row so that a rerun, or a parallel run of the same job, uses the
same staging and a crashed run's staging can be found and cleaned. The commit is resumable:
the job is marked ``committing`` before the first object moves and ``committed`` after the
last, so a run that finds a job ``committing`` finishes that commit first.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from rahcp_prefect.client import HCPClient
from rahcp_prefect.tracker.protocol import JobInfo, JobState, TrackerProtocol

logger = logging.getLogger(__name__)

STAGING_ROOT = ".rahcp-staging/"


class StagingVerificationError(RuntimeError):
    """Staging does not hold exactly what the tracker says was uploaded."""


class JobMismatchError(ValueError):
    """A job name was reused for another bucket or prefix."""


@dataclass(frozen=True)
class StagingPlan:
    """Where this run's uploads go and where they end up."""

    bucket: str
    staging_prefix: str
    final_prefix: str
    resumed: bool  # True when an earlier run's staging is being reused


def plan_staging(tracker: TrackerProtocol, bucket: str, final_prefix: str, run_id: str) -> StagingPlan:
    """Reuse the job's staging if it has one (resume or parallel runs), else open a new one.

    Atomic through ``open_job``: runs that start together all get the first one's staging.
    """
    info = tracker.job_info()
    if info is not None and info.bucket and (info.bucket, info.final_prefix or "") != (bucket, final_prefix):
        raise JobMismatchError(
            f"job {tracker.job!r} uploads to {info.bucket}/{info.final_prefix or ''}, "
            f"not {bucket}/{final_prefix}: choose another job name"
        )
    opened = tracker.open_job(bucket=bucket, staging_prefix=f"{STAGING_ROOT}{run_id}/", final_prefix=final_prefix)
    assert opened.staging_prefix is not None
    resumed = not opened.staging_prefix.endswith(f"/{run_id}/")
    return StagingPlan(bucket, opened.staging_prefix, final_prefix, resumed=resumed)


async def verify_staging(client: HCPClient, tracker: TrackerProtocol, plan: StagingPlan) -> int:
    """Check staging against the tracker; returns how many objects wait in staging.

    Every object in staging must be a key the tracker holds as done, with the same size, and
    every done key must be either in staging or, committed earlier, in the final prefix.
    """
    done = tracker.done_entries()
    staged: dict[str, int] = {}
    async for item in client.s3.iter_objects(plan.bucket, prefix=plan.staging_prefix):
        staged[item["Key"]] = int(item["Size"])
    problems: list[str] = []
    for key, size in staged.items():
        expected = done.get(key)
        if expected is None:
            problems.append(f"{key}: in staging but not recorded as done")
        elif expected != size:
            problems.append(f"{key}: {size} bytes in staging, {expected} recorded")
    missing = [key for key in done if key.startswith(plan.staging_prefix) and key not in staged]
    if missing:
        final: dict[str, int] = {}
        async for item in client.s3.iter_objects(plan.bucket, prefix=plan.final_prefix):
            final[item["Key"]] = int(item["Size"])
        for key in missing:
            final_key = plan.final_prefix + key[len(plan.staging_prefix) :]
            if final.get(final_key) != done[key]:
                problems.append(f"{key}: recorded as done but neither staged nor committed")
    if problems:
        shown = "; ".join(problems[:5])
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise StagingVerificationError(f"staging check failed for {len(problems)} key(s): {shown}{more}")
    return len(staged)


def mark_rolled_back(tracker: TrackerProtocol, info: JobInfo | None) -> None:
    """Forget the job's keys (their staged objects are gone) and record the rollback."""
    tracker.delete_job()
    tracker.update_job(
        state=JobState.rolled_back,
        bucket=info.bucket if info else None,
        final_prefix=info.final_prefix if info else None,
    )
