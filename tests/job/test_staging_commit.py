"""Staging, the commit with its final check, and the failure policy (``rahcp_prefect.job``),
against the emulator on both tracker backends: what is in the bucket and in the tracker after."""

from __future__ import annotations

import asyncio
import hashlib
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
from rahcp_prefect.job.manifest import MANIFEST_NAME, MTIMES_NAME, parse_manifest
from rahcp_prefect.job.records import RECORDS_DIR
from rahcp_prefect.tracker import JobState, TransferStatus

OpenTracker = Callable[..., Any]
done = TransferStatus.done


def _keys(emulator: Any, bucket: str, prefix: str) -> dict[str, int]:
    answer = emulator.s3.list_objects_v2(Bucket=bucket, Prefix=prefix)
    return {item["Key"]: item["Size"] for item in answer.get("Contents", [])}


def _stage(emulator: Any, tracker: Any, bucket: str, staging: str, names: list[str]) -> None:
    """Each name staged with its own name as body, recorded done with its digests as an upload
    records them."""
    for name in names:
        body = name.encode()
        emulator.s3.put_object(Bucket=bucket, Key=staging + name, Body=body)
        tracker.mark(
            staging + name, len(body), done,
            sha256=hashlib.sha256(body).hexdigest(), md5=hashlib.md5(body).hexdigest(),
        )
    tracker.flush()


def _manifest(emulator: Any, bucket: str, prefix: str) -> dict[str, str]:
    return parse_manifest(emulator.s3.get_object(Bucket=bucket, Key=prefix + MANIFEST_NAME)["Body"].read())


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
    final = _keys(hcp_emulator, hcp_bucket, "final/")
    root = final.pop("final/" + MANIFEST_NAME)
    assert final.pop("final/" + MTIMES_NAME) == 0, "the files' times (none recorded here: an empty tag file)"
    records = [key for key in final if key.startswith("final/" + RECORDS_DIR)]
    assert len(records) == 1 and records[0].endswith("-full/" + MANIFEST_NAME), "no times recorded: no times file"
    assert final.pop(records[0]) == root > 0, "the first record lists every file, as the root manifest does"
    assert final == {"final/a.txt": 5, "final/sub/b.txt": 9}
    assert _manifest(hcp_emulator, hcp_bucket, "final/") == {
        name: hashlib.sha256(name.encode()).hexdigest() for name in ("a.txt", "sub/b.txt")
    }
    assert result.extra == {"manifest": 2, "record": records[0].removesuffix(MANIFEST_NAME)}
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

    with pytest.raises(FinalCheckError, match=r"3 file\(s\).*2 problem\(s\).*final/b.txt: missing.*final/c.txt: 11 bytes, 5 recorded"):
        await commit_job(tracker, plan, "run-1", 30, move_then_lose_one, hcp_client)
    assert MANIFEST_NAME not in str(_keys(hcp_emulator, hcp_bucket, "final/")), "no manifest for a failed check"
    assert tracker.job_info().state == JobState.committing
    assert tracker.job_info().commit_owner is None, "the commit lock is released"
    entries = tracker.entries()
    assert entries[plan.staging_prefix + "a.txt"].status == done
    assert {key: entry.status for key, entry in entries.items() if entry.status != done} == {
        plan.staging_prefix + "b.txt": TransferStatus.error,
        plan.staging_prefix + "c.txt": TransferStatus.error,
    }, "the next run sends what the check did not see"
    assert tracker.error_details()[0][1] == NOT_IN_FINAL


async def test_an_object_of_the_recorded_size_with_other_bytes_fails_the_final_check(
    opened: tuple[Any, Any], hcp_emulator: Any, hcp_client: Any, hcp_bucket: str
) -> None:
    """Replaced after the move with bytes of the same size: the listing's ETag is not the MD5 the
    upload recorded, so the job is not reported committed and the file is sent again."""
    tracker, plan = opened
    _stage(hcp_emulator, tracker, hcp_bucket, plan.staging_prefix, ["a.txt", "b.txt"])

    async def move_then_replace() -> dict[str, int]:
        moved = await _move(hcp_client, hcp_bucket, plan.staging_prefix, "final/")
        hcp_emulator.s3.put_object(Bucket=hcp_bucket, Key="final/b.txt", Body=b"B.TXT")  # same size
        return moved

    with pytest.raises(FinalCheckError, match=r"final/b.txt: ETag [0-9a-f]{32}, MD5 [0-9a-f]{32} recorded"):
        await commit_job(tracker, plan, "run-1", 30, move_then_replace, hcp_client)
    assert tracker.job_info().state == JobState.committing
    assert tracker.entries()[plan.staging_prefix + "b.txt"].status == TransferStatus.error
    assert tracker.entries()[plan.staging_prefix + "a.txt"].status == done


async def test_a_manifest_that_is_not_what_the_commit_wrote_fails_the_final_check(
    opened: tuple[Any, Any], hcp_emulator: Any, hcp_client: Any, hcp_bucket: str
) -> None:
    """Another writer replaces the manifest between the commit's write and its read-back (two
    jobs aimed at one prefix): the commit reads back what is there and refuses to report
    committed."""
    tracker, plan = opened
    _stage(hcp_emulator, tracker, hcp_bucket, plan.staging_prefix, ["a.txt", "b.txt"])
    # the first GET is the commit reading the records (none: the root manifest), the second its read-back
    held = hcp_emulator.faults.add("data", method="GET", path=rf"/final/{MANIFEST_NAME}$", delay=1.0, count=2)
    rogue = f"{'0' * 64}  a.txt\n{'1' * 64}  other.txt\n".encode()

    async def replace_while_the_read_back_waits() -> None:
        while held.hits < 2:
            await asyncio.sleep(0.02)
        await asyncio.to_thread(hcp_emulator.s3.put_object, Bucket=hcp_bucket, Key="final/" + MANIFEST_NAME, Body=rogue)

    writer = asyncio.create_task(replace_while_the_read_back_waits())
    with pytest.raises(FinalCheckError) as caught:
        await commit_job(
            tracker, plan, "run-1", 30, lambda: _move(hcp_client, hcp_bucket, plan.staging_prefix, "final/"), hcp_client
        )
    await writer
    message = str(caught.value)
    assert "manifest: final/b.txt: not in the manifest" in message
    assert "manifest: final/other.txt: in the manifest, not in the job" in message
    assert "manifest: final/a.txt: manifest says 000" in message
    assert tracker.job_info().state == JobState.committing, "the next run writes it again"


async def test_commit_without_a_manifest_writes_none(
    opened: tuple[Any, Any], hcp_emulator: Any, hcp_client: Any, hcp_bucket: str
) -> None:
    tracker, plan = opened
    _stage(hcp_emulator, tracker, hcp_bucket, plan.staging_prefix, ["a.txt"])
    result = await commit_job(
        tracker, plan, "run-1", 30, lambda: _move(hcp_client, hcp_bucket, plan.staging_prefix, "final/"), hcp_client,
        manifest=False,
    )
    assert result is not None and result.check.ok and result.extra == {}
    assert _keys(hcp_emulator, hcp_bucket, "final/") == {"final/a.txt": 5}


async def test_the_commit_counts_every_retry_of_its_client_its_login_included(
    opened: tuple[Any, Any], hcp_emulator: Any, hcp_credentials: dict[str, Any], hcp_client: Any, hcp_bucket: str
) -> None:
    """The flow opens a client for the commit: a login retried on the way counts in the run's
    API retries like the check's and the manifest's requests (the faults test caught one missing)."""
    from rahcp_prefect.client import HCPClient

    tracker, plan = opened
    _stage(hcp_emulator, tracker, hcp_bucket, plan.staging_prefix, ["a.txt"])
    login = hcp_emulator.faults.add("api", method="POST", path=r"/auth/token$", status=503, count=1)
    async with HCPClient(**hcp_credentials, retry_base_delay=0.01, max_retries=3, timeout=10.0) as client:
        await client.login()
        result = await commit_job(
            tracker, plan, "run-1", 30, lambda: _move(hcp_client, hcp_bucket, plan.staging_prefix, "final/"), client
        )
    assert login.hits == 1
    assert result is not None and result.check.ok and result.api_retries == 1


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
