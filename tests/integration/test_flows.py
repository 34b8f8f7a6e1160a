"""Flow tests on a real Prefect API and the emulator over a real moto S3 server."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    FlowRunFilter,
    FlowRunFilterId,
)

from rahcp_prefect.flows import bulk_download, bulk_upload, cleanup_staging
from rahcp_prefect.flows.download import staging_dir_for
from rahcp_prefect.job import STAGING_ROOT
from rahcp_prefect.testing.records import without_records
from rahcp_prefect.tracker import JobState, create_tracker

from .conftest import SavedBlocks, make_tree


async def _artifacts(flow_run_id: UUID) -> list[Any]:
    async with get_client() as client:
        return await client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )


async def _task_runs(flow_run_id: UUID) -> list[Any]:
    async with get_client() as client:
        return await client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
        )


def _job_state(blocks: SavedBlocks, job: str) -> JobState | None:
    tracker = create_tracker(blocks.tracker_path, job=job)
    try:
        info = tracker.job_info()
        return info.state if info else None
    finally:
        tracker.close()


async def test_upload_commits_everything_and_leaves_staging_empty(
    saved_blocks: SavedBlocks, hcp_emulator: Any, hcp_bucket: str, tmp_path: Path
) -> None:
    files = make_tree(tmp_path / "src", 25)
    state = await bulk_upload(
        source_dir=str(tmp_path / "src"),
        bucket=hcp_bucket,
        prefix="final/",
        batch_size=10,
        return_state=True,
        **saved_blocks.params(),
    )
    assert state.is_completed(), state
    result = await state.result()
    assert result["ok"] == 25 and result["errors"] == 0 and result["committed"] == 25

    final = hcp_emulator.stored(hcp_bucket, "final/")
    assert final.pop("final/manifest-sha256.txt")  # written by the commit (tests/integration/test_manifest.py)
    assert final.pop("final/rahcp-mtimes.txt").count(b"\n") == 25  # the files' times beside it
    assert without_records(final, "final/") == {f"final/{rel}": content for rel, content in files.items()}
    assert hcp_emulator.stored(hcp_bucket, STAGING_ROOT) == {}
    assert _job_state(saved_blocks, result["job"]) == JobState.committed

    run_id = state.state_details.flow_run_id
    artifacts = await _artifacts(run_id)
    assert sorted(artifact.type for artifact in artifacts) == ["markdown", "progress", "table"]
    status = [a for a in artifacts if a.key and a.key.startswith("job-status-")]
    assert status and status[0].data and '"done": 25' in str(status[0].data).replace("'", '"')
    progress = [a for a in artifacts if a.type == "progress"][0]
    assert float(progress.data) == pytest.approx(100.0)
    batches = [t for t in await _task_runs(run_id) if t.name.startswith("hcp-upload-batch")]
    assert len(batches) == math.ceil(25 / 10)


async def test_rerun_after_commit_uploads_only_new_files(
    saved_blocks: SavedBlocks, hcp_emulator: Any, hcp_bucket: str, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    make_tree(src, 6)
    params = dict(source_dir=str(src), bucket=hcp_bucket, prefix="p/", **saved_blocks.params())
    first = await bulk_upload(**params)
    (src / "late.txt").write_bytes(b"late arrival")
    second = await bulk_upload(**params)
    assert first["ok"] == 6
    assert second["ok"] == 1 and second["skipped"] == 6 and second["committed"] == 1
    assert hcp_emulator.stored(hcp_bucket, "p/late.txt") == {"p/late.txt": b"late arrival"}
    assert hcp_emulator.stored(hcp_bucket, STAGING_ROOT) == {}


async def test_failure_after_half_the_files_rolls_back(
    saved_blocks: SavedBlocks, hcp_emulator: Any, hcp_bucket: str, tmp_path: Path
) -> None:
    make_tree(tmp_path / "src", 20)
    hcp_emulator.s3.put_object(Bucket=hcp_bucket, Key="final/keep.txt", Body=b"already here")
    # Every PUT of the second half of the files is refused by S3 itself.
    rule = hcp_emulator.faults.add(
        "data", method="PUT", path=r"(file|top)-001\d\.", status=403, count=None
    )
    state = await bulk_upload(
        source_dir=str(tmp_path / "src"),
        bucket=hcp_bucket,
        prefix="final/",
        batch_size=5,
        return_state=True,
        **saved_blocks.params(),
    )
    assert state.is_failed(), state
    assert rule.hits >= 10
    assert hcp_emulator.stored(hcp_bucket, STAGING_ROOT) == {}
    assert hcp_emulator.stored(hcp_bucket, "final/") == {"final/keep.txt": b"already here"}
    assert _job_state(saved_blocks, f"bulk-upload:{hcp_bucket}/final/") == JobState.rolled_back
    summaries = [a for a in await _artifacts(state.state_details.flow_run_id) if a.type == "markdown"]
    assert summaries and "Rolled back: nothing changed" in str(summaries[0].data)


async def test_interrupted_commit_is_finished_by_the_next_run(
    saved_blocks: SavedBlocks, hcp_emulator: Any, hcp_bucket: str, tmp_path: Path
) -> None:
    files = make_tree(tmp_path / "src", 12)
    params = dict(source_dir=str(tmp_path / "src"), bucket=hcp_bucket, prefix="out/", **saved_blocks.params())
    # The copy of one object keeps failing: the commit stops half-way.
    hcp_emulator.faults.add("api", method="POST", path=r"top-0006\.txt/copy$", status=500, count=None)
    state = await bulk_upload(**params, return_state=True)
    assert state.is_failed(), state
    job = f"bulk-upload:{hcp_bucket}/out/"
    assert _job_state(saved_blocks, job) == JobState.committing
    assert hcp_emulator.stored(hcp_bucket, STAGING_ROOT), "staging keeps what was not committed"

    hcp_emulator.faults.clear()
    result = await bulk_upload(**params)
    assert result["outcome"] == "committed"
    out = hcp_emulator.stored(hcp_bucket, "out/")
    assert out.pop("out/manifest-sha256.txt")
    assert out.pop("out/rahcp-mtimes.txt").count(b"\n") == len(files)
    assert without_records(out, "out/") == {f"out/{rel}": c for rel, c in files.items()}
    assert hcp_emulator.stored(hcp_bucket, STAGING_ROOT) == {}
    assert _job_state(saved_blocks, job) == JobState.committed


async def test_dry_run_transfers_nothing(
    saved_blocks: SavedBlocks, hcp_emulator: Any, hcp_bucket: str, tmp_path: Path
) -> None:
    files = make_tree(tmp_path / "src", 7)
    result = await bulk_upload(
        source_dir=str(tmp_path / "src"), bucket=hcp_bucket, dry_run=True, **saved_blocks.params()
    )
    assert result["dry_run"] is True
    assert result["files"] == 7 and result["bytes"] == sum(len(c) for c in files.values())
    assert hcp_emulator.stored(hcp_bucket) == {}
    assert _job_state(saved_blocks, f"bulk-upload:{hcp_bucket}/") is None


async def test_missing_source_dir_fails_before_any_transfer(
    saved_blocks: SavedBlocks, hcp_bucket: str, tmp_path: Path
) -> None:
    state = await bulk_upload(
        source_dir=str(tmp_path / "nope"), bucket=hcp_bucket, return_state=True, **saved_blocks.params()
    )
    assert state.is_failed()
    with pytest.raises(FileNotFoundError, match="nope"):
        await state.result()


async def test_download_moves_into_place_and_failure_leaves_destination_untouched(
    saved_blocks: SavedBlocks, hcp_emulator: Any, hcp_bucket: str, tmp_path: Path
) -> None:
    for index in range(10):
        hcp_emulator.s3.put_object(Bucket=hcp_bucket, Key=f"data/f{index}.bin", Body=bytes([index]) * 100)
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "old.txt").write_bytes(b"keep me")
    params = dict(bucket=hcp_bucket, dest_dir=str(dest), prefix="data/", batch_size=3, **saved_blocks.params())

    hcp_emulator.faults.add("data", method="GET", path=r"f7\.bin", status=403, count=None)
    failed = await bulk_download(**params, return_state=True)
    assert failed.is_failed()
    assert sorted(p.name for p in dest.iterdir()) == ["old.txt"]
    assert staging_dir_for(dest.resolve()).is_dir()

    hcp_emulator.faults.clear()
    result = await bulk_download(**params)
    assert result["ok"] == 1 and result["errors"] == 0, "only the failed key is fetched again"
    assert sorted(p.name for p in dest.iterdir()) == ["f0.bin", *[f"f{i}.bin" for i in range(1, 10)], "old.txt"]
    assert all((dest / f"f{i}.bin").read_bytes() == bytes([i]) * 100 for i in range(10))
    assert not staging_dir_for(dest.resolve()).exists()


async def test_cleanup_staging_removes_what_a_crashed_run_left(
    saved_blocks: SavedBlocks, hcp_emulator: Any, hcp_bucket: str
) -> None:
    job = f"bulk-upload:{hcp_bucket}/final/"
    staging = f"{STAGING_ROOT}crashed-run/"
    for index in range(3):
        hcp_emulator.s3.put_object(Bucket=hcp_bucket, Key=f"{staging}f{index}", Body=b"x")
    tracker = create_tracker(saved_blocks.tracker_path, job=job)
    tracker.update_job(state=JobState.open, bucket=hcp_bucket, staging_prefix=staging, final_prefix="final/")
    tracker.close()

    young = await cleanup_staging(
        credentials_block=saved_blocks.credentials, tracker_block=saved_blocks.tracker, older_than_hours=1
    )
    assert young["jobs"] == [], "a job updated just now may still be running"
    result = await cleanup_staging(
        credentials_block=saved_blocks.credentials, tracker_block=saved_blocks.tracker, older_than_hours=0
    )
    assert [entry["removed"] for entry in result["jobs"]] == [3]
    assert hcp_emulator.stored(hcp_bucket, STAGING_ROOT) == {}
    assert _job_state(saved_blocks, job) == JobState.rolled_back


async def test_download_dry_run_counts_and_writes_nothing(
    saved_blocks: SavedBlocks, hcp_emulator: Any, hcp_bucket: str, tmp_path: Path
) -> None:
    for index in range(7):
        hcp_emulator.s3.put_object(Bucket=hcp_bucket, Key=f"d/k{index}", Body=b"x" * index)
    dest = tmp_path / "never"
    result = await bulk_download(
        bucket=hcp_bucket, dest_dir=str(dest), prefix="d/", dry_run=True, batch_size=2, **saved_blocks.params()
    )
    assert (result["files"], result["bytes"], result["skipped"]) == (7, sum(range(7)), 0)
    assert not dest.exists() and not staging_dir_for(dest.resolve()).exists()
    assert _job_state(saved_blocks, f"bulk-download:{hcp_bucket}/d/") is None
