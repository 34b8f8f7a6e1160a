"""Runs of one job that overlap, fail, die or lose a file after the commit, as a nightly
deployment meets them: two ``bulk-upload`` runs in separate processes on the session's Prefect
API, on a SQLite and on a PostgreSQL tracker. The emulator's faults force the timing: a gate of
slow PUTs keeps the first run busy until the second is where the test wants it, then is lifted.

Every test asserts the bucket (final prefix byte for byte, staging, open multipart uploads) and
the tracker, not only how the runs ended.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from prefect.settings import PREFECT_API_URL
from pydantic import SecretStr

from rahcp_prefect.blocks import HCPTracker
from rahcp_prefect.flows import bulk_upload
from rahcp_prefect.job import NOT_IN_FINAL, STAGING_ROOT, BulkTransferFailed, FinalCheckError
from rahcp_prefect.job.manifest import MANIFEST_NAME, MTIMES_NAME
from rahcp_prefect.testing.prefect_fixtures import SavedBlocks
from rahcp_prefect.tracker import JobState, TrackerProtocol, TransferStatus, create_tracker

from .helpers import (
    api_requests,
    bucket_hashes,
    bucket_listing,
    data_requests,
    open_multipart_uploads,
    sha256,
    without_manifest,
    without_records,
)

FILES = 240
LEASE = 8.0
BAD = "part1/f-0007.bin"  # the file the tests make fail
MANIFEST_PUT = 4  # a commit that placed files writes its record and the prefix's manifest, each a manifest and times
RUN_SCRIPT = """
import asyncio, json, sys
from rahcp_prefect.flows import bulk_upload
try:
    result = asyncio.run(bulk_upload(**json.loads(sys.argv[1])))
except Exception as exc:
    print("ERROR " + json.dumps({"type": type(exc).__name__, "message": str(exc)}), flush=True)
    sys.exit(1)
print("RESULT " + json.dumps(result), flush=True)
"""


@dataclass
class Job:
    """One upload job of a test: its flow parameters, expected final objects and tracker."""

    params: dict[str, Any]
    expected: dict[str, str]  # final key -> sha256
    target: str
    name: str

    @contextmanager
    def tracker(self) -> Iterator[TrackerProtocol]:
        tracker = create_tracker(self.target, job=self.name)
        try:
            yield tracker
        finally:
            tracker.close()

    def holder(self) -> str | None:
        with self.tracker() as tracker:
            info = tracker.job_info()
            return info.lease_owner if info else None


@pytest.fixture(params=["sqlite", "postgres"])
async def job(
    request: pytest.FixtureRequest, saved_blocks: SavedBlocks, hcp_bucket: str, tmp_path: Path
) -> Job:
    """A source tree of ``FILES`` files and a tracker block (SQLite or PostgreSQL, short lease)."""
    if request.param == "sqlite":
        target = str(saved_blocks.tracker_path)
        block = HCPTracker(sqlite_path=target, lease_seconds=LEASE)
    else:
        target = request.getfixturevalue("postgres_dsn")
        block = HCPTracker(postgres_dsn=SecretStr(target), lease_seconds=LEASE)
    await block.save(saved_blocks.tracker, overwrite=True)
    source = tmp_path / "src"
    expected: dict[str, str] = {}
    for index in range(FILES):
        rel = f"part{index % 3}/f-{index:04d}.bin"
        path = source / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        body = f"file {index}\n".encode() * (1 + index % 40)
        path.write_bytes(body)
        expected[f"final/{rel}"] = sha256(body)
    assert f"final/{BAD}" in expected
    params = {"source_dir": str(source), "bucket": hcp_bucket, "prefix": "final/", **saved_blocks.params()}
    return Job(params, expected, target, f"bulk-upload:{hcp_bucket}/final/")


class Run:
    """A ``bulk-upload`` flow run in a child process; its stderr (logs) goes to a file."""

    def __init__(self, params: dict[str, Any], log: Path) -> None:
        env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value()), "PREFECT_LOGGING_LEVEL": "WARNING"}
        self.log = log
        with log.open("w") as err:
            self.process = subprocess.Popen(
                [sys.executable, "-c", RUN_SCRIPT, json.dumps(params)],
                env=env, stdout=subprocess.PIPE, stderr=err, text=True,
            )

    def running(self) -> bool:
        return self.process.poll() is None

    def logs(self) -> str:
        return self.log.read_text(errors="replace")

    def finish(self) -> tuple[int, dict[str, Any]]:
        """Wait for the run; its exit code and its RESULT (or ERROR) line."""
        stdout, _ = self.process.communicate(timeout=300)
        lines = [line for line in stdout.splitlines() if line.startswith(("RESULT ", "ERROR "))]
        assert lines, f"the run printed no outcome (exit {self.process.returncode}): {self.logs()[-3000:]}"
        return self.process.returncode, json.loads(lines[-1].split(" ", 1)[1])


def wait_until(condition: Callable[[], Any], what: str, timeout: float = 180) -> Any:
    """Poll ``condition`` until it is truthy (the timing itself is forced by emulator faults)."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.05)
    return value


def gate(emulator: Any, delay: float = 1.0) -> Any:
    """Slow every PUT down (added after any fault on one key, which must match first)."""
    return emulator.faults.add("data", method="PUT", delay=delay, count=None)


def final_files(emulator: Any, bucket: str) -> dict[str, int]:
    """The job's files in the final prefix (the manifest, written last by a commit, left out)."""
    return without_manifest(dict(bucket_listing(emulator, bucket, "final/")))


def assert_committed(emulator: Any, bucket: str, job: Job) -> None:
    """Final prefix byte for byte (and its manifest), staging empty, no open upload; tracker
    committed, lease free."""
    hashes = bucket_hashes(emulator, bucket, "final/")
    assert hashes.pop(f"final/{MANIFEST_NAME}", None) is not None, "the commit wrote the manifest last"
    assert hashes.pop(f"final/{MTIMES_NAME}", None) is not None, "and the files' times"
    assert without_records(hashes, "final/") == job.expected
    assert bucket_listing(emulator, bucket, STAGING_ROOT) == []
    assert open_multipart_uploads(emulator, bucket) == []
    with job.tracker() as tracker:
        info = tracker.job_info()
        assert info is not None and info.state == JobState.committed
        assert info.lease_owner is None, "the lease was released"
        assert tracker.summary() == {"pending": 0, "done": FILES, "error": 0}


@pytest.mark.slow
async def test_a_run_waits_while_the_holder_fails_and_rolls_back_then_completes(
    job: Job, hcp_emulator: Any, hcp_bucket: str, tmp_path: Path
) -> None:
    hcp_emulator.faults.add("data", method="PUT", path=rf"{BAD}$", status=400, count=1)  # fails the first run
    slow = gate(hcp_emulator)
    first = Run(job.params, tmp_path / "first.log")
    holder = wait_until(job.holder, "the first run holds the job")
    second = Run(job.params, tmp_path / "second.log")
    wait_until(lambda: "waiting for it" in second.logs(), "the second run waits for the first")
    assert first.running() and job.holder() == holder
    assert f"held by run {holder}" in second.logs()
    hcp_emulator.faults.remove(slow)

    code, failure = first.finish()
    assert code == 1 and failure["type"] == "BulkTransferFailed"
    assert BAD in failure["message"] and "staging rolled back" in failure["message"]
    code, result = second.finish()
    assert code == 0, result
    assert result["outcome"] == "committed" and result["committed"] == FILES and result["failed"] == 0
    assert result["ok"] == FILES, "the rollback forgot what it deleted: the second run sent it all"
    assert_committed(hcp_emulator, hcp_bucket, job)


@pytest.mark.slow
async def test_on_busy_fail_stops_at_once_naming_the_holder_and_touches_nothing(
    job: Job, hcp_emulator: Any, hcp_bucket: str, tmp_path: Path
) -> None:
    slow = gate(hcp_emulator)
    first = Run(job.params, tmp_path / "first.log")
    holder = wait_until(job.holder, "the first run holds the job")
    wait_until(lambda: data_requests(hcp_emulator, "PUT") > 0, "the first run writes its staging")
    second = Run({**job.params, "on_busy": "fail"}, tmp_path / "second.log")
    code, failure = second.finish()
    assert first.running(), "the second run did not wait for the first"
    assert code == 1 and failure["type"] == "JobBusyError"
    assert f"held by run {holder} (single mode" in failure["message"] and "on_busy='fail'" in failure["message"]
    assert job.holder() == holder
    hcp_emulator.faults.remove(slow)

    code, result = first.finish()
    assert code == 0, result
    assert result["outcome"] == "committed" and result["committed"] == FILES
    assert data_requests(hcp_emulator, "PUT") == FILES + MANIFEST_PUT, "the second run sent nothing"
    assert_committed(hcp_emulator, hcp_bucket, job)


@pytest.mark.slow
async def test_the_next_run_takes_over_the_lease_of_a_run_killed_holding_it(
    job: Job, hcp_emulator: Any, hcp_bucket: str, tmp_path: Path
) -> None:
    slow = gate(hcp_emulator, delay=0.3)
    first = Run(job.params, tmp_path / "first.log")
    holder = wait_until(job.holder, "the first run holds the job")
    wait_until(lambda: data_requests(hcp_emulator, "PUT") >= FILES // 3, "a third of the files went out")
    first.process.send_signal(signal.SIGKILL)
    first.process.wait(30)
    hcp_emulator.faults.remove(slow)
    with job.tracker() as tracker:
        info = tracker.job_info()
        assert info is not None and info.lease_owner == holder, "the dead run's lease still runs"
    time.sleep(0.5)  # requests the dead run had in flight finish on the server side
    staged = len(bucket_listing(hcp_emulator, hcp_bucket, STAGING_ROOT))
    assert 0 < staged < FILES

    hcp_emulator.reset_counts()
    state = await bulk_upload(**job.params, return_state=True)
    result = await state.result()
    assert result["outcome"] == "committed" and result["committed"] == FILES
    assert data_requests(hcp_emulator, "PUT") - MANIFEST_PUT == result["ok"] <= FILES - staged, "staged files not sent again"
    assert any(f"held by run {holder}" in text for text in await _run_logs(state)), "it waited for the lease"
    assert_committed(hcp_emulator, hcp_bucket, job)


async def test_the_final_check_catches_a_file_gone_after_the_commit_and_the_job_stays_committing(
    job: Job, hcp_emulator: Any, hcp_bucket: str
) -> None:
    # the commit deletes its staged sources last: hold that request while a final object goes
    hold = hcp_emulator.faults.add("api", method="POST", path=r"/objects/delete$", delay=3.0, count=1)
    run = asyncio.create_task(bulk_upload(**job.params))
    while hold.hits == 0:
        assert not run.done(), "the run ended before its commit deleted staging"
        await asyncio.sleep(0.02)
    hcp_emulator.s3.delete_object(Bucket=hcp_bucket, Key=f"final/{BAD}")
    with pytest.raises(FinalCheckError, match=rf"the {FILES} file\(s\).*1 problem\(s\) \(final/{BAD}: missing\).*stays 'committing'"):
        await run

    final = dict(bucket_listing(hcp_emulator, hcp_bucket, "final/"))
    assert len(final) == FILES - 1 and f"final/{BAD}" not in final, "no manifest: the commit did not finish"
    assert bucket_listing(hcp_emulator, hcp_bucket, STAGING_ROOT) == []
    assert open_multipart_uploads(hcp_emulator, hcp_bucket) == []
    with job.tracker() as tracker:
        info = tracker.job_info()
        assert info is not None and info.state == JobState.committing and info.lease_owner is None
        assert tracker.summary() == {"pending": 0, "done": FILES - 1, "error": 1}
        assert [message for key, message in tracker.error_details() if key.endswith(BAD)] == [NOT_IN_FINAL]

    hcp_emulator.reset_counts()  # the next run sends the missing file again and commits
    result = await bulk_upload(**job.params)
    assert result["outcome"] == "committed" and result["committed"] == 1 and result["ok"] == 1
    assert data_requests(hcp_emulator, "PUT") == 1 + MANIFEST_PUT
    assert_committed(hcp_emulator, hcp_bucket, job)


async def test_on_failure_keep_leaves_staging_and_the_next_run_sends_only_what_failed(
    job: Job, hcp_emulator: Any, hcp_bucket: str
) -> None:
    hcp_emulator.faults.add("data", method="PUT", path=rf"{BAD}$", status=400, count=None)  # fails every time
    with pytest.raises(BulkTransferFailed, match=rf"1 file\(s\) failed.*{BAD}.*staging kept \({FILES - 1} object") as caught:
        await bulk_upload(**job.params, on_failure="keep")
    report = caught.value.result
    assert (report["outcome"], report["staging"], report["staged"], report["failed"]) == ("kept", "kept", FILES - 1, 1)
    assert bucket_listing(hcp_emulator, hcp_bucket, "final/") == [], "final prefix untouched"
    assert len(bucket_listing(hcp_emulator, hcp_bucket, STAGING_ROOT)) == FILES - 1
    assert open_multipart_uploads(hcp_emulator, hcp_bucket) == []
    with job.tracker() as tracker:
        assert tracker.summary() == {"pending": 0, "done": FILES - 1, "error": 1}
        assert tracker.job_info().state == JobState.open
        assert [key for key, _ in tracker.error_entries()][0].endswith(BAD)

    hcp_emulator.faults.clear()  # the fix
    hcp_emulator.reset_counts()
    result = await bulk_upload(**job.params)
    assert data_requests(hcp_emulator, "PUT") == 1 + MANIFEST_PUT, "only the file that failed was sent"
    assert result["ok"] == 1 and result["committed"] == FILES and result["outcome"] == "committed"
    assert_committed(hcp_emulator, hcp_bucket, job)


async def test_on_busy_and_on_failure_are_checked_before_any_request(job: Job, hcp_emulator: Any) -> None:
    from prefect.exceptions import ParameterTypeError

    for bad in ({"on_busy": "later"}, {"on_failure": "undo"}):
        with pytest.raises(ParameterTypeError, match=next(iter(bad))):
            await bulk_upload(**job.params, **bad)
    assert api_requests(hcp_emulator) == data_requests(hcp_emulator) == 0, "refused before any request"
    with job.tracker() as tracker:
        assert tracker.job_info() is None and tracker.summary()["done"] == 0


async def _run_logs(state: Any) -> list[str]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.logging.handlers import APILogHandler

    await APILogHandler.aflush()
    async with get_client() as client:
        logs = await client.read_logs(
            log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[state.state_details.flow_run_id]))
        )
    return [log.message for log in logs]


async def test_a_rollback_forgets_only_what_it_staged_so_the_run_after_the_fix_sends_only_that(
    job: Job, hcp_emulator: Any, hcp_bucket: str
) -> None:
    """The rollback used to forget the whole job: the run after a fix sent every file again."""
    first = await bulk_upload(**job.params)
    assert first["committed"] == FILES
    source = Path(job.params["source_dir"])
    for name in ("new-a.bin", "new-b.bin"):
        (source / name).write_bytes(name.encode() * 10)
        job.expected[f"final/{name}"] = sha256(name.encode() * 10)
    hcp_emulator.faults.add("data", method="PUT", path=r"new-b\.bin$", status=400, count=None)
    with pytest.raises(BulkTransferFailed, match=r"staging rolled back \(1 object\(s\) deleted, 1 mark") as caught:
        await bulk_upload(**job.params)
    assert (caught.value.result["staging"], caught.value.result["forgotten"]) == ("deleted", 1)
    assert bucket_listing(hcp_emulator, hcp_bucket, STAGING_ROOT) == []
    assert len(final_files(hcp_emulator, hcp_bucket)) == FILES, "final prefix untouched"
    with job.tracker() as tracker:
        assert tracker.summary() == {"pending": 0, "done": FILES, "error": 1}, "committed records kept"
        assert tracker.job_info().state == JobState.rolled_back

    hcp_emulator.faults.clear()
    hcp_emulator.reset_counts()
    result = await bulk_upload(**job.params)
    assert data_requests(hcp_emulator, "PUT") == 2 + MANIFEST_PUT and result["ok"] == 2, "only the two new files"
    assert result["committed"] == 2 and result["outcome"] == "committed"
    hashes = bucket_hashes(hcp_emulator, hcp_bucket, "final/")
    assert hashes.pop(f"final/{MANIFEST_NAME}", None) is not None and hashes.pop(f"final/{MTIMES_NAME}", None)
    assert without_records(hashes, "final/") == job.expected
    assert bucket_listing(hcp_emulator, hcp_bucket, STAGING_ROOT) == []
    with job.tracker() as tracker:
        assert tracker.summary() == {"pending": 0, "done": FILES + 2, "error": 0}
        assert tracker.job_info().state == JobState.committed
