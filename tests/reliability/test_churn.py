"""Files changing under a run are deferred, never a failure: a source written to while a run
sends it commits what did not change, names what did (``changed_during_run``, ``vanished``),
and the next run sends those.

The run is the real ``bulk-upload`` flow on the session's Prefect API; a thread rewrites and
deletes files the run scanned but has not sent yet (a data-plane delay holds the run long
enough), as a scanner writing into its output folder would.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from rahcp_prefect.flows import bulk_upload
from rahcp_prefect.job import STAGING_ROOT
from rahcp_prefect.testing.prefect_fixtures import SavedBlocks
from rahcp_prefect.tracker import JobState

from .helpers import bucket_hashes, bucket_listing, data_requests, flow_artifacts, job_tracker, sha256, without_manifest

FILES = 40
GROWN = [f"f{index:03d}.txt" for index in range(30, 35)]  # rewritten with more bytes after the scan
GONE = [f"f{index:03d}.txt" for index in range(35, 37)]  # deleted after the scan


@pytest.mark.timeout(180)
async def test_files_changing_during_a_run_are_left_for_the_next_run_and_the_rest_commits(
    saved_blocks: SavedBlocks, hcp_emulator: Any, hcp_bucket: str, tmp_path: Path
) -> None:
    source = tmp_path / "src"
    source.mkdir()
    for index in range(FILES):
        (source / f"f{index:03d}.txt").write_bytes(f"version 1 of {index}\n".encode() * 20)
    params = {"source_dir": str(source), "bucket": hcp_bucket, "prefix": "final/", **saved_blocks.params()}
    hcp_emulator.faults.add("data", method="PUT", delay=0.3, count=None)

    def churn() -> None:  # once the run is sending (its scan is done), change what it has not sent yet
        deadline = time.monotonic() + 60
        while data_requests(hcp_emulator, "PUT") < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        for name in GROWN:
            (source / name).write_bytes(b"version 2, longer\n" * 30)
        for name in GONE:
            (source / name).unlink()

    writer = threading.Thread(target=churn)
    writer.start()
    try:
        result = await bulk_upload(**params)
    finally:
        writer.join()
    hcp_emulator.faults.clear()

    unchanged = FILES - len(GROWN) - len(GONE)
    assert result["outcome"] == "committed", result
    assert result["committed"] == unchanged and result["failed"] == 0 and result["errors"] == 0
    assert (result["changed_during_run"], result["vanished"]) == (len(GROWN), len(GONE))
    staging = f"{STAGING_ROOT}"
    named = sorted(key.rsplit("/", 1)[-1] for key in result["deferred"])
    assert named == sorted(GROWN + GONE)
    expected = {
        f"final/{path.name}": sha256(path.read_bytes()) for path in source.iterdir() if path.name not in GROWN
    }
    assert without_manifest(bucket_hashes(hcp_emulator, hcp_bucket, "final/")) == expected
    assert bucket_listing(hcp_emulator, hcp_bucket, staging) == [], "staging committed: nothing deferred left in it"
    job = f"bulk-upload:{hcp_bucket}/final/"
    with job_tracker(saved_blocks.tracker_path, job) as tracker:
        info = tracker.job_info()
        assert info is not None and info.state == JobState.committed
        done = {key.rsplit("/", 1)[-1] for key in tracker.done_entries()}
        assert done == {key[len("final/"):] for key in expected}, "deferred files are not recorded done"
        assert tracker.summary().get("error", 0) == 0
    summary = "\n".join(str(a.data) for a in await flow_artifacts_of_latest(hcp_bucket))
    assert "changed while sent (left for the next run)" in summary and GROWN[0] in summary

    hcp_emulator.reset_counts()
    rerun = await bulk_upload(**params)
    assert rerun["outcome"] == "committed" and rerun["ok"] == len(GROWN)
    assert data_requests(hcp_emulator, "PUT") == len(GROWN) + 4, "only the changed files (and the record and the manifest, each with times)"
    final = without_manifest(bucket_hashes(hcp_emulator, hcp_bucket, "final/"))
    assert final == {f"final/{path.name}": sha256(path.read_bytes()) for path in source.iterdir()}


async def flow_artifacts_of_latest(bucket: str) -> list[Any]:
    """The artifacts of the newest flow run that uploaded to ``bucket``."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.sorting import FlowRunSort

    async with get_client() as client:
        runs = await client.read_flow_runs(sort=FlowRunSort.START_TIME_DESC, limit=50)
    mine = [run for run in runs if (run.parameters or {}).get("bucket") == bucket]
    return await flow_artifacts(mine[0].id)
