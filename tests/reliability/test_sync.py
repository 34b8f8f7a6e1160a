"""Incremental sync through the flows: after a committed job, a file rewritten in place (same
size, new mtime), a grown file and an object deleted from the final prefix are sent again
through staging and committed over the old objects; unchanged files cost no data-plane
request. Downloads fetch again a local file changed after the job wrote it. SQLite and
PostgreSQL trackers."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from rahcp_prefect.blocks import HCPTracker
from rahcp_prefect.flows import bulk_download, bulk_upload
from rahcp_prefect.flows.download import staging_dir_for
from rahcp_prefect.job import STAGING_ROOT
from rahcp_prefect.testing.counter import HEAD_OBJECT as HEAD, LIST_OBJECTS as LIST
from rahcp_prefect.testing.prefect_fixtures import SavedBlocks
from rahcp_prefect.tracker import JobState, TransferStatus

from .helpers import (
    bucket_hashes,
    bucket_listing,
    data_requests,
    flow_artifacts,
    job_tracker,
    open_multipart_uploads,
    partial_files,
    put_objects,
    sha256,
    summary_metric,
    tree_hashes,
    without_manifest,
)

FILES = 40
#: The one data-plane request of a run for manifest-sha256.txt (upload: the commit writes it;
#: download: the run reads it).
MANIFEST = 4  # a commit that placed files writes its record and the prefix's manifest, each a manifest and times
MANIFEST_GET = 1  # a download of a prefix without a manifest looks for it once (and for no times)
#: An mtime surely different from any the files had (2023-11-14), forced with os.utime.
FORCED_MTIME = 1_700_000_000_123_456_789


@pytest.fixture(params=["sqlite", "postgres"])
async def tracked(request: pytest.FixtureRequest, saved_blocks: SavedBlocks) -> tuple[SavedBlocks, str]:
    """The saved blocks with the tracker on SQLite or PostgreSQL; the tracker's target."""
    if request.param == "sqlite":
        return saved_blocks, str(saved_blocks.tracker_path)
    dsn = request.getfixturevalue("postgres_dsn")
    await HCPTracker(postgres_dsn=SecretStr(dsn)).save(saved_blocks.tracker, overwrite=True)
    return saved_blocks, dsn


def _source(root: Path) -> None:
    for index in range(FILES):
        path = root / f"d{index % 3}" / f"f{index:03d}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(f"file {index}\n".encode() * (1 + index % 7))


def _final(emulator: Any, bucket: str) -> dict[str, str]:
    """``{key: sha256}`` of the final prefix, without the manifest and times the commit writes."""
    return without_manifest(bucket_hashes(emulator, bucket, "final/"))


def _expected(root: Path) -> dict[str, str]:
    return {f"final/{rel}": digest for rel, digest in tree_hashes(root).items()}


async def _run(params: dict[str, Any], **extra: Any) -> tuple[dict[str, Any], list[Any]]:
    state = await bulk_upload(**params, **extra, return_state=True)
    assert state.is_completed(), state.message
    return await state.result(), await flow_artifacts(state.state_details.flow_run_id)


async def test_rerun_sends_what_changed_in_place_grew_or_left_the_final_prefix(
    tracked: tuple[SavedBlocks, str], hcp_emulator: Any, hcp_bucket: str, tmp_path: Path
) -> None:
    blocks, target = tracked
    src = tmp_path / "src"
    _source(src)
    params = {"source_dir": str(src), "bucket": hcp_bucket, "prefix": "final/", **blocks.params()}
    first, _ = await _run(params)
    assert first["outcome"] == "committed" and first["new"] == FILES and first["committed"] == FILES
    job = first["job"]

    rewritten, grown, deleted = src / "d1" / "f001.txt", src / "d2" / "f002.txt", "final/d0/f003.txt"
    size = rewritten.stat().st_size
    rewritten.write_bytes(b"R" * size)  # rewritten in place: same size...
    os.utime(rewritten, ns=(FORCED_MTIME, FORCED_MTIME))  # ...and an mtime the record cannot hold
    grown.write_bytes(grown.read_bytes() + b"grown\n")
    hcp_emulator.s3.delete_object(Bucket=hcp_bucket, Key=deleted)

    hcp_emulator.reset_counts()
    result, artifacts = await _run(params)
    assert result["outcome"] == "committed"
    assert (result["new"], result["changed"], result["missing"], result["unchanged"]) == (0, 2, 1, FILES - 3)
    assert result["ok"] == 3 and result["errors"] == 0 and result["committed"] == 3
    # Unchanged files cost no request: 3 PUTs on the data plane, no HEAD, and a fixed number
    # of one-page listings, whatever the file count: the bucket check, the sync's (staging,
    # empty, then the final prefix), the staging check's two and the commit's.
    assert data_requests(hcp_emulator, "PUT") == 3 + MANIFEST
    assert hcp_emulator.request_counts[HEAD] == 0
    assert hcp_emulator.request_counts[LIST] <= 8
    summary = [("changed files", 2), ("missing from the bucket (sent again)", 1), ("unchanged files", FILES - 3)]
    for metric, value in summary:
        assert summary_metric(artifacts, metric) == value

    assert _final(hcp_emulator, hcp_bucket) == _expected(src), "the final prefix holds the new bytes"
    assert bucket_listing(hcp_emulator, hcp_bucket, STAGING_ROOT) == []
    assert open_multipart_uploads(hcp_emulator, hcp_bucket) == []
    with job_tracker(target, job) as tracker:
        info = tracker.job_info()
        assert info is not None and info.state == JobState.committed
        records = tracker.entries(TransferStatus.done)
        staging = info.staging_prefix or ""
        for path in (rewritten, grown):
            entry = records[staging + path.relative_to(src).as_posix()]
            stat = path.stat()
            assert (entry.size, entry.mtime_ns) == (stat.st_size, stat.st_mtime_ns)
        assert records[staging + "d1/f001.txt"].mtime_ns == FORCED_MTIME
        assert len(records) == FILES

    hcp_emulator.reset_counts()
    quiet, _ = await _run(params)  # nothing changed since: nothing sent, nothing committed
    assert (quiet["ok"], quiet["unchanged"], quiet["committed"]) == (0, FILES, 0)
    assert data_requests(hcp_emulator, "PUT") == 0, "nothing to commit: nothing written, no tag file either"


async def test_skip_existing_false_sends_every_file_again(
    saved_blocks: SavedBlocks, hcp_emulator: Any, hcp_bucket: str, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    _source(src)
    params = {"source_dir": str(src), "bucket": hcp_bucket, "prefix": "final/", **saved_blocks.params()}
    await _run(params)
    hcp_emulator.reset_counts()
    result, _ = await _run(params, skip_existing=False)
    assert result["outcome"] == "committed" and result["ok"] == FILES == result["committed"]
    assert result["unchanged"] == FILES, "counted as what they are, sent because asked"
    assert data_requests(hcp_emulator, "PUT") == FILES, "the same bytes again: no line changed, nothing recorded"
    assert hcp_emulator.request_counts[LIST] <= 6  # no sync listing: the checks', the commit's and its records
    assert _final(hcp_emulator, hcp_bucket) == _expected(src)
    assert bucket_listing(hcp_emulator, hcp_bucket, STAGING_ROOT) == []


async def test_a_rerun_after_an_uncommitted_change_sends_it_once_and_commits_it(
    saved_blocks: SavedBlocks, hcp_emulator: Any, hcp_bucket: str, tmp_path: Path
) -> None:
    """A changed file staged by a run that failed before its commit (one file's PUTs keep
    failing): the final prefix keeps the old bytes; the next run sends it and commits it."""
    src = tmp_path / "src"
    _source(src)
    params = {"source_dir": str(src), "bucket": hcp_bucket, "prefix": "final/", **saved_blocks.params()}
    await _run(params)
    changed = src / "d0" / "f000.txt"
    changed.write_bytes(b"changed\n")
    (src / "d1" / "f004.txt").write_bytes(b"changed too\n")
    hcp_emulator.faults.add("data", method="PUT", path=r"f004\.txt", status=500, count=None)
    state = await bulk_upload(**params, return_state=True)
    assert state.is_failed()
    hcp_emulator.faults.clear()
    assert bucket_hashes(hcp_emulator, hcp_bucket, "final/")["final/d0/f000.txt"] != sha256(b"changed\n")
    result, _ = await _run(params)
    assert result["outcome"] == "committed" and result["errors"] == 0
    assert _final(hcp_emulator, hcp_bucket) == _expected(src)
    assert bucket_listing(hcp_emulator, hcp_bucket, STAGING_ROOT) == []


async def test_download_fetches_again_a_local_file_changed_after_the_job_wrote_it(
    tracked: tuple[SavedBlocks, str], hcp_emulator: Any, hcp_bucket: str, tmp_path: Path
) -> None:
    blocks, target = tracked
    bodies = {f"d{index % 2}/o{index:03d}.bin": f"object {index}\n".encode() * (1 + index % 5) for index in range(FILES)}
    expected = put_objects(hcp_emulator, hcp_bucket, "data/", bodies)
    dest = tmp_path / "dest"
    params = {"bucket": hcp_bucket, "dest_dir": str(dest), "prefix": "data/", **blocks.params()}
    first = await bulk_download(**params)
    assert first["outcome"] == "complete" and first["ok"] == FILES and first["new"] == FILES

    edited, truncated, touched, removed = (dest / rel for rel in ["d0/o000.bin", "d1/o001.bin", "d0/o002.bin", "d1/o003.bin"])
    edited.write_bytes(b"E" * edited.stat().st_size)  # same size, new content
    os.utime(edited, ns=(FORCED_MTIME, FORCED_MTIME))
    truncated.write_bytes(b"x")
    os.utime(touched, ns=(FORCED_MTIME, FORCED_MTIME))  # same bytes, but not as the job wrote it
    removed.unlink()

    hcp_emulator.reset_counts()
    again = await bulk_download(**params)
    assert again["outcome"] == "complete"
    assert (again["new"], again["changed"], again["missing"], again["unchanged"]) == (0, 3, 1, FILES - 4)
    # 4 files, plus the one read of the prefix's manifest-sha256.txt (absent here) a run makes
    assert again["ok"] == 4 and data_requests(hcp_emulator, "GET") == 4 + MANIFEST_GET, "unchanged files are not fetched"
    assert tree_hashes(dest) == expected
    assert partial_files(tmp_path) == [] and not staging_dir_for(dest.resolve()).exists()
    with job_tracker(target, first["job"]) as tracker:
        records = tracker.entries(TransferStatus.done)
        for path in (edited, truncated, touched, removed):
            entry = records["data/" + path.relative_to(dest).as_posix()]
            assert (entry.size, entry.mtime_ns) == (path.stat().st_size, path.stat().st_mtime_ns)

    hcp_emulator.reset_counts()
    quiet = await bulk_download(**params)
    assert (quiet["ok"], quiet["unchanged"]) == (0, FILES) and data_requests(hcp_emulator, "GET") <= MANIFEST_GET
