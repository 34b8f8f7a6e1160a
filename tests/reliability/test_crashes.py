"""Crashes: a flow run killed -9 during upload, during commit and during download; a rerun of
the job completes it. Nothing half-committed stays visible after the rerun, and no file ever
sits under a final name unless it is complete.

Each killed run is a separate process (``python -c``) on the session's Prefect API; the rerun
runs in-process. Emulator delays slow the phase to kill (PUTs, copies, GETs) so the kill lands
half-way; the tracker's short lease lets the rerun take over the commit lock the dead run held.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from rahcp_prefect.bulk.paths import TEMP_PREFIX
from rahcp_prefect.flows import bulk_download, bulk_upload
from rahcp_prefect.flows.download import staging_dir_for
from rahcp_prefect.job import STAGING_ROOT
from rahcp_prefect.testing.prefect_fixtures import SavedBlocks
from rahcp_prefect.tracker import JobState

from .helpers import (
    bucket_hashes,
    bucket_listing,
    data_requests,
    job_tracker,
    landed_hashes,
    partial_files,
    put_objects,
    signal_flow_when,
    tree_hashes,
    with_lease,
    without_manifest,
    without_records,
)

MANIFEST_PUT = 4  # a commit ends by writing its fixity record and the prefix's manifest, each with its times
MANIFEST_GET = 1  # a download reads the prefix's manifest once (one GET, found or not; no manifest: no times)

FILES = 400
LEASE = 3.0


@pytest.fixture
async def blocks(saved_blocks: SavedBlocks) -> SavedBlocks:
    """The saved blocks with a short lease: a dead run's commit lock expires in 3 s."""
    return await with_lease(saved_blocks, LEASE)


def _source(root: Path) -> dict[str, str]:
    for index in range(FILES):
        path = root / f"part{index % 4}" / f"page-{index:04d}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(f"page {index}\n".encode() * (1 + index % 50))
    return tree_hashes(root)


def _kill_when(kind: str, params: dict[str, Any], log: Path, ready: Callable[[], bool]) -> None:
    """Run the ``kind`` flow in a child process and SIGKILL it as soon as ``ready()``."""
    code, _took = signal_flow_when(kind, params, log, ready, signal.SIGKILL)
    assert code == -signal.SIGKILL
    time.sleep(0.5)  # requests the dead run had in flight finish on the server side


def _landed(folder: Path) -> int:
    """Files under their final names in ``folder`` (safe while a run writes into it)."""
    return sum(1 for _root, _dirs, names in os.walk(folder) for name in names if not name.startswith(TEMP_PREFIX))


def _final_and_staging(emulator: Any, bucket: str) -> tuple[dict[str, int], list[tuple[str, int]]]:
    return dict(bucket_listing(emulator, bucket, "final/")), bucket_listing(emulator, bucket, STAGING_ROOT)


def _check_committed(emulator: Any, bucket: str, blocks: SavedBlocks, job: str, expected: dict[str, str]) -> None:
    """Everything in the final prefix, byte for byte, once; staging empty; tracker = store."""
    listing = bucket_listing(emulator, bucket)
    assert len(listing) == len(dict(listing)) == FILES + MANIFEST_PUT, "no duplicate, no stray object (+ the tag files)"
    listing = list(without_records(dict(listing), "final/").items())
    assert without_manifest(bucket_hashes(emulator, bucket, "final/")) == {f"final/{rel}": h for rel, h in expected.items()}
    with job_tracker(blocks.tracker_path, job) as tracker:
        info = tracker.job_info()
        assert info is not None and info.state == JobState.committed
        staging = info.staging_prefix or ""
        assert {"final/" + key[len(staging):]: size for key, size in tracker.done_entries().items()} == dict(listing)


@pytest.mark.slow
async def test_upload_killed_half_way_is_resumed_by_the_rerun(
    blocks: SavedBlocks, hcp_emulator: Any, hcp_bucket: str, tmp_path: Path
) -> None:
    expected = _source(tmp_path / "src")
    params = {"source_dir": str(tmp_path / "src"), "bucket": hcp_bucket, "prefix": "final/", **blocks.params()}
    hcp_emulator.faults.add("data", method="PUT", delay=0.05, count=None)
    _kill_when("upload", params, tmp_path / "run.log", lambda: data_requests(hcp_emulator, "PUT") >= FILES // 3)
    hcp_emulator.faults.clear()

    final, staged = _final_and_staging(hcp_emulator, hcp_bucket)
    job = f"bulk-upload:{hcp_bucket}/final/"
    assert final == {}, "nothing is visible before the commit"
    assert FILES // 3 <= len(staged) < FILES
    with job_tracker(blocks.tracker_path, job) as tracker:
        info = tracker.job_info()
        assert info is not None and info.state == JobState.open

    hcp_emulator.reset_counts()
    result = await bulk_upload(**params)
    assert result["outcome"] == "committed" and result["committed"] == FILES
    assert result["ok"] + result["skipped"] == FILES and result["skipped"] >= len(staged)
    assert data_requests(hcp_emulator, "PUT") - MANIFEST_PUT == result["ok"] <= FILES - len(staged), "staged files not sent again"
    _check_committed(hcp_emulator, hcp_bucket, blocks, job, expected)


@pytest.mark.slow
async def test_commit_killed_half_way_is_finished_by_the_rerun(
    blocks: SavedBlocks, hcp_emulator: Any, hcp_bucket: str, tmp_path: Path
) -> None:
    expected = _source(tmp_path / "src")
    params = {"source_dir": str(tmp_path / "src"), "bucket": hcp_bucket, "prefix": "final/", **blocks.params()}
    hcp_emulator.faults.add("api", method="POST", path=r"/copy$", delay=0.05, count=None)
    _kill_when(
        "upload", params, tmp_path / "run.log",
        lambda: len(bucket_listing(hcp_emulator, hcp_bucket, "final/")) >= FILES // 3,
    )
    hcp_emulator.faults.clear()

    final, staged = _final_and_staging(hcp_emulator, hcp_bucket)
    job = f"bulk-upload:{hcp_bucket}/final/"
    assert FILES // 3 <= len(final) < FILES and len(staged) == FILES, "killed half-way through the commit"
    with job_tracker(blocks.tracker_path, job) as tracker:
        info = tracker.job_info()
        assert info is not None and info.state == JobState.committing, "the half-done commit is recorded"
        assert info.commit_owner is not None, "the dead run still holds the commit lock"

    hcp_emulator.reset_counts()
    started = time.monotonic()
    result = await bulk_upload(**params)
    assert result["outcome"] == "committed"
    assert result["ok"] == 0 and result["skipped"] == FILES, "nothing uploaded again"
    assert data_requests(hcp_emulator, "PUT") == MANIFEST_PUT, "only the record and the manifest, each with its times, written last"
    assert time.monotonic() - started < 30
    _check_committed(hcp_emulator, hcp_bucket, blocks, job, expected)


@pytest.mark.slow
async def test_download_killed_half_way_is_resumed_by_the_rerun(
    blocks: SavedBlocks, hcp_emulator: Any, hcp_bucket: str, tmp_path: Path
) -> None:
    bodies = {f"d{index % 5}/f{index:04d}.bin": os.urandom(200 + index) for index in range(FILES)}
    expected = put_objects(hcp_emulator, hcp_bucket, "data/", bodies)
    dest = tmp_path / "dest"
    staging = staging_dir_for(dest.resolve())
    params = {"bucket": hcp_bucket, "dest_dir": str(dest), "prefix": "data/", **blocks.params()}
    hcp_emulator.faults.add("data", method="GET", delay=0.05, count=None)
    _kill_when("download", params, tmp_path / "run.log", lambda: _landed(staging) >= FILES // 3)
    hcp_emulator.faults.clear()

    assert not dest.exists() or list(dest.iterdir()) == [], "the destination is untouched"
    landed = landed_hashes(staging)
    assert FILES // 3 <= len(landed) < FILES
    assert all(expected[rel] == h for rel, h in landed.items()), "a file under its final name is complete"

    hcp_emulator.reset_counts()
    result = await bulk_download(**params)
    assert result["outcome"] == "complete" and result["moved"] == FILES
    assert data_requests(hcp_emulator, "GET") - MANIFEST_GET == result["ok"] <= FILES - len(landed), "landed files not fetched again"
    assert tree_hashes(dest) == expected
    assert partial_files(tmp_path) == [] and not staging.exists()


async def test_download_takes_over_the_lock_of_a_run_killed_while_moving_files(
    blocks: SavedBlocks, hcp_emulator: Any, hcp_bucket: str, tmp_path: Path
) -> None:
    """A run killed while moving files into place leaves the job's lock behind: the next run
    waits for that lease to run out and moves the files itself (it used to report them as
    "moved by the run holding the lock" and leave them in staging)."""
    for index in range(5):
        hcp_emulator.s3.put_object(Bucket=hcp_bucket, Key=f"data/f{index}", Body=b"%d" % index)
    dest = tmp_path / "dest"
    with job_tracker(blocks.tracker_path, f"bulk-download:{hcp_bucket}/data/") as tracker:
        assert tracker.acquire_commit("killed-run", LEASE)
    result = await bulk_download(bucket=hcp_bucket, dest_dir=str(dest), prefix="data/", **blocks.params())
    assert result["outcome"] == "complete" and result["moved"] == 5
    assert sorted(p.name for p in dest.iterdir()) == [f"f{index}" for index in range(5)]
    assert not staging_dir_for(dest.resolve()).exists()
