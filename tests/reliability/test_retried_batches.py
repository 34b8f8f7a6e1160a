"""A batch task retried after the tracker went away never sends again what staging holds.

The engine's side of the rule (``job.attempts``), with the real engine, the emulator and a
real SQLite tracker: the first attempt of a single run's batch sends its files without
reading the job's records or listing staging (the run's plan decided); its marks never reach
the job's tracker (a separate tracker file stands for the flush that failed when the database
was away). The retry, with the checks ``batch_checks`` gives every later attempt, lists the
batch's part of staging and adopts what it holds: no PUT, every file recorded done, staging
verified.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from rahcp_prefect.bulk import BulkUploadConfig, bulk_upload
from rahcp_prefect.job import StagingPlan, verify_staging
from rahcp_prefect.job.attempts import batch_checks
from rahcp_prefect.testing.counter import LIST_OBJECTS
from rahcp_prefect.testing.prefect_fixtures import make_tree

from .helpers import data_requests, job_tracker

FILES = 30
STAGING = ".rahcp-staging/run-1/"


@pytest.mark.timeout(120)
async def test_a_retried_batch_sends_nothing_that_staging_already_holds(
    hcp_client: Any, hcp_emulator: Any, hcp_bucket: str, tmp_path: Path
) -> None:
    source = tmp_path / "src"
    files = make_tree(source, FILES)
    entries = [(rel, len(data)) for rel, data in sorted(files.items())]
    job = "retried-batch"

    def config(tracker: Any, attempt: int) -> BulkUploadConfig:
        checks = batch_checks(attempt, skip_existing=False, skip_done=False)  # a single run's batch
        return BulkUploadConfig(
            client=hcp_client, bucket=hcp_bucket, source_dir=source, tracker=tracker, prefix=STAGING,
            entries=entries, skip_existing=checks.skip_existing, skip_done=checks.skip_done, workers=4,
        )

    with job_tracker(tmp_path / "lost.db", job) as lost:  # the marks that never reached the database
        first = await bulk_upload(config(lost, attempt=1))
    assert first.ok == FILES and data_requests(hcp_emulator, "PUT") == FILES

    hcp_emulator.reset_counts()
    with job_tracker(tmp_path / "job.db", job) as tracker:
        retried = await bulk_upload(config(tracker, attempt=2))
        assert retried.ok == 0 and retried.skipped == FILES and retried.errors == 0
        assert data_requests(hcp_emulator, "PUT") == 0, "nothing staging holds is sent again"
        assert hcp_emulator.request_counts[LIST_OBJECTS] == 1, "one listing of the batch's staging"
        assert tracker.done_entries() == {STAGING + rel: size for rel, size in entries}
        staged = await verify_staging(hcp_client, tracker, StagingPlan(hcp_bucket, STAGING, "final/", resumed=True))
        assert staged == FILES

    hcp_emulator.reset_counts()
    with job_tracker(tmp_path / "again.db", job) as tracker:  # without the checks: every file again
        again = await bulk_upload(config(tracker, attempt=1))
    # every file sent again onto its staged key: HCP's default namespace refuses each PUT (409),
    # the engine deletes the staged object and sends the file again (two PUTs a file)
    assert again.ok == FILES and data_requests(hcp_emulator, "PUT") == 2 * FILES


def test_only_retries_check_records_and_staging() -> None:
    assert batch_checks(1, skip_existing=False, skip_done=False) == (False, False)
    assert batch_checks(1, skip_existing=True, skip_done=False) == (True, False)
    assert batch_checks(2, skip_existing=False, skip_done=False) == (True, True)
    assert batch_checks(3, skip_existing=False, skip_done=True) == (True, True)
    with pytest.raises(ValueError, match="attempt must be >= 1"):
        batch_checks(0, skip_existing=False, skip_done=False)


@pytest.mark.timeout(120)
async def test_prefect_counts_a_task_retry_as_the_attempt_the_batch_reads(prefect_api: None) -> None:
    """``upload_batch`` reads its attempt from ``prefect.runtime.task_run.get_run_count()``:
    1 on the first attempt, 2 on the retry Prefect runs after a failure."""
    from prefect import flow, task
    from prefect.runtime import task_run

    attempts: list[int] = []

    @task(retries=1, retry_delay_seconds=0)
    async def flaky() -> int:
        attempts.append(task_run.get_run_count())
        if len(attempts) == 1:
            raise RuntimeError("the tracker was away")
        return attempts[-1]

    @flow
    async def run() -> int:
        return await flaky()

    assert await run() == 2
    assert attempts == [1, 2]
