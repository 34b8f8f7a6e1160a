"""Staging, the commit with its final check, and the failure policy (``rahcp_prefect.job``),
against the emulator on both tracker backends: what is in the bucket and in the tracker after."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from rahcp_prefect.job import (
    NOT_IN_FINAL,
    FinalCheckError,
    apply_failure_policy,
    check_final,
    commit_job,
    plan_staging,
)
from rahcp_prefect.tracker import JobState, TransferStatus

OpenTracker = Callable[..., Any]
done = TransferStatus.done


def _keys(emulator: Any, bucket: str, prefix: str) -> dict[str, int]:
    answer = emulator.s3.list_objects_v2(Bucket=bucket, Prefix=prefix)
    return {item["Key"]: item["Size"] for item in answer.get("Contents", [])}


def _stage(emulator: Any, tracker: Any, bucket: str, staging: str, names: list[str]) -> None:
    for name in names:
        emulator.s3.put_object(Bucket=bucket, Key=staging + name, Body=name.encode())
        tracker.mark(staging + name, len(name), done)
    tracker.commit()


@pytest.fixture
def opened(open_tracker: OpenTracker, hcp_bucket: str) -> tuple[Any, Any]:
    """This test's job tracker and the staging plan of its first run."""
    tracker = open_tracker()
    return tracker, plan_staging(tracker, hcp_bucket, "final/", "run-1")


async def _move(client: Any, bucket: str, staging: str, final: str) -> dict[str, int]:
    return {"moved": await client.s3.commit_staging(bucket, staging, final), "api_retries": 0}


async def test_commit_then_a_final_check_that_sees_every_file(
    opened: tuple[Any, Any], hcp_emulator: Any, hcp_client: Any, hcp_bucket: str
) -> None:
    tracker, plan = opened
    _stage(hcp_emulator, tracker, hcp_bucket, plan.staging_prefix, ["a.txt", "sub/b.txt"])
    result = await commit_job(
        tracker, plan, "run-1", 30, lambda: _move(hcp_client, hcp_bucket, plan.staging_prefix, "final/"), hcp_client
    )
    assert result is not None and result.moved == 2 and result.check.checked == 2 and result.check.ok
    assert _keys(hcp_emulator, hcp_bucket, "final/") == {"final/a.txt": 5, "final/sub/b.txt": 9}
    assert _keys(hcp_emulator, hcp_bucket, plan.staging_prefix) == {}
    assert tracker.job_info().state == JobState.committed


async def test_the_final_check_fails_naming_what_is_missing_and_the_job_stays_committing(
    opened: tuple[Any, Any], hcp_emulator: Any, hcp_client: Any, hcp_bucket: str
) -> None:
    tracker, plan = opened
    _stage(hcp_emulator, tracker, hcp_bucket, plan.staging_prefix, ["a.txt", "b.txt", "c.txt"])

    async def move_then_lose_one() -> dict[str, int]:
        moved = await _move(hcp_client, hcp_bucket, plan.staging_prefix, "final/")
        hcp_emulator.s3.delete_object(Bucket=hcp_bucket, Key="final/b.txt")  # gone before the check
        hcp_emulator.s3.put_object(Bucket=hcp_bucket, Key="final/c.txt", Body=b"longer body")  # replaced
        return moved

    with pytest.raises(FinalCheckError, match=r"2 of 3 file\(s\).*final/b.txt: missing.*final/c.txt: 11 bytes, 5 recorded"):
        await commit_job(tracker, plan, "run-1", 30, move_then_lose_one, hcp_client)
    assert tracker.job_info().state == JobState.committing
    assert tracker.job_info().commit_owner is None, "the commit lock is released"
    entries = tracker.entries()
    assert entries[plan.staging_prefix + "a.txt"].status == done
    assert {key: entry.status for key, entry in entries.items() if entry.status != done} == {
        plan.staging_prefix + "b.txt": TransferStatus.error,
        plan.staging_prefix + "c.txt": TransferStatus.error,
    }, "the next run sends what the check did not see"
    assert tracker.error_details()[0][1] == NOT_IN_FINAL


async def test_check_final_ignores_other_prefixes(
    opened: tuple[Any, Any], hcp_emulator: Any, hcp_client: Any, hcp_bucket: str
) -> None:
    tracker, plan = opened
    hcp_emulator.s3.put_object(Bucket=hcp_bucket, Key="final/x", Body=b"1")
    hcp_emulator.s3.put_object(Bucket=hcp_bucket, Key="final/stray", Body=b"stray")
    tracker.mark(plan.staging_prefix + "x", 1, done)
    tracker.mark("elsewhere/y", 1, done)  # not under this job's staging
    check = await check_final(hcp_client, tracker, plan)
    assert (check.checked, check.ok) == (1, True)


async def test_rollback_deletes_staging_and_forgets_only_what_was_staged(
    opened: tuple[Any, Any], hcp_emulator: Any, hcp_client: Any, hcp_bucket: str
) -> None:
    tracker, plan = opened
    staging = plan.staging_prefix
    # an earlier run committed old.txt; this run staged new.txt and failed on bad.txt
    hcp_emulator.s3.put_object(Bucket=hcp_bucket, Key="final/old.txt", Body=b"old")
    tracker.mark(staging + "old.txt", 3, done)
    _stage(hcp_emulator, tracker, hcp_bucket, staging, ["new.txt"])
    tracker.mark(staging + "bad.txt", 7, TransferStatus.error, "boom")

    report = await apply_failure_policy("rollback", hcp_client, tracker, plan)
    assert report.fields() == {"on_failure": "rollback", "staging": "deleted", "staged": 1, "forgotten": 1}
    assert _keys(hcp_emulator, hcp_bucket, staging) == {}
    assert _keys(hcp_emulator, hcp_bucket, "final/") == {"final/old.txt": 3}, "final prefix untouched"
    assert {key: entry.status for key, entry in tracker.entries().items()} == {
        staging + "old.txt": done,  # committed by an earlier run: not sent again
        staging + "bad.txt": TransferStatus.error,  # retried by the next run
    }
    assert tracker.job_info().state == JobState.rolled_back
    again = plan_staging(tracker, hcp_bucket, "final/", "run-2")
    assert again.staging_prefix == staging, "the job keeps its staging prefix, so its records still apply"
    assert tracker.job_info().state == JobState.open


async def test_keep_leaves_staging_and_marks(
    opened: tuple[Any, Any], hcp_emulator: Any, hcp_client: Any, hcp_bucket: str
) -> None:
    tracker, plan = opened
    _stage(hcp_emulator, tracker, hcp_bucket, plan.staging_prefix, ["a", "b"])
    report = await apply_failure_policy("keep", hcp_client, tracker, plan)
    assert report.fields() == {"on_failure": "keep", "staging": "kept", "staged": 2, "forgotten": 0}
    assert len(_keys(hcp_emulator, hcp_bucket, plan.staging_prefix)) == 2
    assert tracker.summary()["done"] == 2 and tracker.job_info().state == JobState.open
