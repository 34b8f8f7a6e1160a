"""bulk-verify on a real Prefect API and the emulator: every object re-read and hashed, checked
against the prefix's manifest (or the job's tracker records), the summary artifact read back."""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
from prefect.client.schemas.sorting import ArtifactSort

from rahcp_prefect.client import HCPClient
from rahcp_prefect.flows.verify import FixityCheckFailed, bulk_verify
from rahcp_prefect.job.manifest import MANIFEST_NAME, parse_manifest, write_manifest
from rahcp_prefect.tracker import TransferStatus, create_tracker

from .conftest import SavedBlocks


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def _table(key: str) -> dict[str, list[Any]]:
    """The latest table artifact of ``key``, as ``{metric: [values]}``."""
    async with get_client() as client:
        found = await client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])), sort=ArtifactSort.CREATED_DESC, limit=1
        )
    assert found, key
    data = found[0].data
    rows = data if isinstance(data, list) else json.loads(data)  # type: ignore[arg-type]
    out: dict[str, list[Any]] = {}
    for row in rows:
        out.setdefault(row["metric"], []).append(row["value"])
    return out


async def _archive(hcp_credentials: dict[str, Any], bucket: str, files: dict[str, bytes]) -> None:
    async with HCPClient(**hcp_credentials) as client:
        for key, body in files.items():
            await client.s3.upload(bucket, "arch/" + key, body)
        await write_manifest(client, bucket, "arch/", {key: _sha(body) for key, body in files.items()})


async def test_an_intact_prefix_passes_and_the_summary_counts_matches(
    saved_blocks: SavedBlocks, hcp_emulator: Any, hcp_credentials: dict[str, Any], hcp_bucket: str
) -> None:
    files = {"a.txt": b"alpha", "d/b 100%.bin": os.urandom(3000), "d/ü #1.bin": b"odd name"}
    await _archive(hcp_credentials, hcp_bucket, files)
    stored = hcp_emulator.s3.get_object(Bucket=hcp_bucket, Key="arch/" + MANIFEST_NAME)["Body"].read()
    assert b"  d/b 100%25.bin\n" in stored and "  d/ü #1.bin\n".encode() in stored
    assert parse_manifest(stored) == {key: _sha(body) for key, body in files.items()}
    result = await bulk_verify(bucket=hcp_bucket, prefix="arch/", job="audit-ok", **saved_blocks.params())
    assert (result["ok"], result["against"], result["matches"], result["expected"]) == (True, "manifest", 3, 3)
    assert result["bytes"] == sum(len(body) for body in files.values())
    table = await _table("bulk-verify-audit-ok")
    assert table["outcome"] == ["ok"] and table["matches"] == [3] and "problem" not in table


async def test_an_object_replaced_in_storage_fails_the_audit_naming_it(
    saved_blocks: SavedBlocks, hcp_emulator: Any, hcp_credentials: dict[str, Any], hcp_bucket: str
) -> None:
    files = {"keep.bin": os.urandom(2000), "swapped.bin": os.urandom(2000), "gone.bin": b"gone"}
    await _archive(hcp_credentials, hcp_bucket, files)
    # same size, other bytes, straight into S3; one object deleted, one not in the manifest
    hcp_emulator.s3.put_object(Bucket=hcp_bucket, Key="arch/swapped.bin", Body=os.urandom(2000))
    hcp_emulator.s3.delete_object(Bucket=hcp_bucket, Key="arch/gone.bin")
    hcp_emulator.s3.put_object(Bucket=hcp_bucket, Key="arch/stray.bin", Body=b"stray")
    state = await bulk_verify(
        bucket=hcp_bucket, prefix="arch/", job="audit-bad", return_state=True, **saved_blocks.params()
    )
    assert state.is_failed()
    async with get_client() as client:  # the run list says what was audited, by bucket
        run = await client.read_flow_run(state.state_details.flow_run_id)  # type: ignore[union-attr]
    assert run.name == f"verify {hcp_bucket}/arch/" and {"rahcp", f"bucket:{hcp_bucket}"} <= set(run.tags)
    with pytest.raises(FixityCheckFailed) as failure:
        await state.result()  # type: ignore[union-attr]
    message = str(failure.value)
    assert "arch/swapped.bin: SHA-256" in message and "arch/gone.bin: missing" in message
    assert "arch/stray.bin: not expected" in message and "keep.bin" not in message
    table = await _table("bulk-verify-audit-bad")
    assert (table["outcome"], table["matches"], table["mismatches"], table["missing"], table["extra"]) == (
        ["failed"], [1], [1], [1], [1]
    )
    assert any(line.startswith("arch/swapped.bin: SHA-256") for line in table["problem"])


async def test_without_a_manifest_the_job_tracker_records_are_the_reference(
    saved_blocks: SavedBlocks, hcp_emulator: Any, hcp_bucket: str
) -> None:
    hcp_emulator.s3.put_object(Bucket=hcp_bucket, Key="t/x.bin", Body=b"x-bytes")
    tracker = create_tracker(saved_blocks.tracker_path, job="audit-tracker")
    try:
        tracker.mark("t/x.bin", 7, TransferStatus.done, sha256=_sha(b"x-bytes"))
        tracker.flush()
    finally:
        tracker.close()
    result = await bulk_verify(bucket=hcp_bucket, prefix="t/", job="audit-tracker", **saved_blocks.params())
    assert (result["ok"], result["against"], result["matches"]) == (True, "tracker", 1)
    state = await bulk_verify(bucket=hcp_bucket, prefix="t/", return_state=True, **saved_blocks.params())
    assert state.is_failed()  # neither a manifest nor a job: nothing to check against
    with pytest.raises(FixityCheckFailed, match="no t/manifest-sha256.txt"):
        await state.result()  # type: ignore[union-attr]
