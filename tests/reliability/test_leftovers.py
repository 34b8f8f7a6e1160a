"""Nothing left behind: staging that no job row points at any more and open multipart uploads
are found through the API by ``cleanup-staging``, listed by a dry run, removed by a real one;
a rollback leaves no open upload. Every check reads the bucket through the HCP API."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from rahcp_prefect.client import HCPClient
from rahcp_prefect.client.keys import multipart_path
from rahcp_prefect.flows import BulkTransferFailed, bulk_upload, cleanup_staging
from rahcp_prefect.job import STAGING_ROOT
from rahcp_prefect.testing.prefect_fixtures import SavedBlocks
from rahcp_prefect.tracker import create_tracker
from rahcp_prefect.tracker.protocol import JobState

from .helpers import flow_artifacts

LIVE = f"{STAGING_ROOT}live-run/"
PLANTED = f"{STAGING_ROOT}0f0e0d0c-0000-4000-8000-000000000001/"


async def _staged(client: HCPClient, bucket: str) -> dict[str, list[str]]:
    """``{staging prefix: keys}`` under ``.rahcp-staging/``, through the API listing."""
    found: dict[str, list[str]] = {}
    async for item in client.s3.iter_objects(bucket, prefix=STAGING_ROOT):
        prefix = "/".join(item["Key"].split("/")[:2]) + "/"
        found.setdefault(prefix, []).append(item["Key"])
    return found


async def _open_uploads(client: HCPClient, bucket: str) -> list[str]:
    page = await client.s3.list_multipart_uploads(bucket)
    return sorted(upload["Key"] for upload in page["uploads"])


async def _open_upload(client: HCPClient, emulator: Any, bucket: str, key: str) -> None:
    """A multipart upload whose run was killed after its first part: never completed.
    Initiated through the API, which records when (moto dates every upload 2010-11-10)."""
    answer = await client.request_json("POST", multipart_path(bucket, key))
    emulator.s3.upload_part(Bucket=bucket, Key=key, UploadId=answer["upload_id"], PartNumber=1, Body=b"p" * 1024)


def _rows(artifact: Any) -> list[dict[str, Any]]:
    return list(json.loads(artifact.data) if isinstance(artifact.data, str) else artifact.data)


async def test_orphaned_staging_and_open_uploads_are_found_listed_and_removed(
    saved_blocks: SavedBlocks, hcp_emulator: Any, hcp_bucket: str, hcp_client: HCPClient, tmp_path: Path
) -> None:
    # 1. A real run stages 5 files, its commit fails for good, then its tracker is lost.
    source = tmp_path / "src"
    source.mkdir()
    for index in range(5):
        (source / f"f{index}.txt").write_bytes(b"file %d" % index)
    hcp_emulator.faults.add("api", method="POST", path=r"/copy$", status=500, count=None)
    state = await bulk_upload(source_dir=str(source), bucket=hcp_bucket, prefix="final/", return_state=True,
                              **saved_blocks.params())
    assert state.is_failed()
    hcp_emulator.faults.clear()
    (lost,) = [prefix for prefix in await _staged(hcp_client, hcp_bucket)]
    assert len((await _staged(hcp_client, hcp_bucket))[lost]) == 5
    for path in saved_blocks.tracker_path.parent.glob(saved_blocks.tracker_path.name + "*"):
        path.unlink()
    # 2. An object put straight under a staging prefix; a killed multipart upload in another.
    hcp_emulator.s3.put_object(Bucket=hcp_bucket, Key=f"{PLANTED}stray.bin", Body=b"stray")
    await _open_upload(hcp_client, hcp_emulator, hcp_bucket, f"{STAGING_ROOT}killed-run/big.bin")
    # 3. A live job (half-way through its commit) with an object and an upload of its own.
    with create_tracker(saved_blocks.tracker_path, job="live") as live:
        live.open_job(bucket=hcp_bucket, staging_prefix=LIVE, final_prefix="live/")
        live.update_job(state=JobState.committing)
    hcp_emulator.s3.put_object(Bucket=hcp_bucket, Key=f"{LIVE}kept.bin", Body=b"kept")
    await _open_upload(hcp_client, hcp_emulator, hcp_bucket, f"{LIVE}part.bin")
    hcp_emulator.s3.put_object(Bucket=hcp_bucket, Key="final-elsewhere/not-staging.bin", Body=b"x")
    before = await _staged(hcp_client, hcp_bucket)
    uploads_before = await _open_uploads(hcp_client, hcp_bucket)
    assert set(before) == {lost, PLANTED, LIVE}
    assert uploads_before == [f"{STAGING_ROOT}killed-run/big.bin", f"{LIVE}part.bin"]
    params = {"credentials_block": saved_blocks.credentials, "tracker_block": saved_blocks.tracker}

    # Younger than the cutoff: nothing is a leftover yet.
    young = await cleanup_staging(older_than_hours=1.0, dry_run=True, **params)
    assert young["leftovers"] == [] and young["jobs"] == []

    # The dry run lists the two orphaned prefixes and the killed upload, removes nothing.
    state = await cleanup_staging(older_than_hours=0.0, dry_run=True, return_state=True, **params)
    dry = await state.result()
    assert sorted((item["what"], item["staging"], item["objects"]) for item in dry["leftovers"]) == sorted([
        ("open multipart upload", f"{STAGING_ROOT}killed-run/big.bin", 0),
        ("orphaned staging", PLANTED, 1),
        ("orphaned staging", lost, 5),
    ])
    assert all(item["removed"] == 0 for item in dry["leftovers"])
    assert await _staged(hcp_client, hcp_bucket) == before
    assert await _open_uploads(hcp_client, hcp_bucket) == uploads_before
    (report,) = [a for a in await flow_artifacts(state.state_details.flow_run_id) if a.key == f"cleanup-staging-{hcp_bucket}"]
    rows = _rows(report)
    assert {row["where"] for row in rows} == {lost, PLANTED, f"{STAGING_ROOT}killed-run/big.bin"}
    assert {row["action"] for row in rows} == {"would remove"}

    # The real run removes them; the live job's staging and upload stay.
    state = await cleanup_staging(older_than_hours=0.0, return_state=True, **params)
    done = await state.result()
    assert sorted((item["staging"], item["removed"]) for item in done["leftovers"]) == sorted(
        [(f"{STAGING_ROOT}killed-run/big.bin", 0), (PLANTED, 1), (lost, 5)]
    )
    assert await _staged(hcp_client, hcp_bucket) == {LIVE: [f"{LIVE}kept.bin"]}
    assert await _open_uploads(hcp_client, hcp_bucket) == [f"{LIVE}part.bin"]
    assert [k async for k in _keys(hcp_client, hcp_bucket, "final-elsewhere/")] == ["final-elsewhere/not-staging.bin"]
    (report,) = [a for a in await flow_artifacts(state.state_details.flow_run_id) if a.key == f"cleanup-staging-{hcp_bucket}"]
    assert {row["action"] for row in _rows(report)} == {"removed"} and len(_rows(report)) == 3
    again = await cleanup_staging(older_than_hours=0.0, buckets=[hcp_bucket], **params)
    assert again["leftovers"] == []


async def _keys(client: HCPClient, bucket: str, prefix: str) -> Any:
    async for item in client.s3.iter_objects(bucket, prefix=prefix):
        yield item["Key"]


async def test_rollback_leaves_no_open_upload(
    saved_blocks: SavedBlocks, hcp_emulator: Any, hcp_bucket: str, hcp_client: HCPClient, tmp_path: Path
) -> None:
    """A killed run left a multipart upload open in the job's staging; the rerun resumes that
    staging, one file fails, the run rolls back: staging is empty and no upload is open."""
    source = tmp_path / "src"
    source.mkdir()
    for index in range(4):
        (source / f"f{index}.txt").write_bytes(b"file %d" % index)
    hcp_emulator.faults.add("data", method="PUT", path=r"/f3\.txt$", status=500, count=None)  # f3 fails for good
    job = f"bulk-upload:{hcp_bucket}/final/"
    staging = f"{STAGING_ROOT}killed-run-0000/"
    with create_tracker(saved_blocks.tracker_path, job=job) as tracker:
        tracker.open_job(bucket=hcp_bucket, staging_prefix=staging, final_prefix="final/")
    await _open_upload(hcp_client, hcp_emulator, hcp_bucket, f"{staging}big.bin")
    assert await _open_uploads(hcp_client, hcp_bucket) == [f"{staging}big.bin"]

    state = await bulk_upload(source_dir=str(source), bucket=hcp_bucket, prefix="final/", return_state=True,
                              **saved_blocks.params())
    with pytest.raises(BulkTransferFailed, match="f3.txt"):
        await state.result()
    assert await _open_uploads(hcp_client, hcp_bucket) == []
    assert await _staged(hcp_client, hcp_bucket) == {}
