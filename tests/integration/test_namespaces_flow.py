"""The bulk-upload flow on HCP's namespaces (the HCP-faithful emulator, a real Prefect API):
the refusal before any upload, staging in another namespace, and retained files in the result
and the summary."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

from rahcp_prefect.flows import bulk_upload
from rahcp_prefect.flows.artifacts import summary_key
from rahcp_prefect.job import STAGING_ROOT
from rahcp_prefect.job.namespace import StagingNotAllowedError
from rahcp_prefect.job.records import is_record_key

from .conftest import SavedBlocks, make_tree


@pytest.fixture
def staging_bucket(hcp_staging_bucket: str) -> str:
    return hcp_staging_bucket


async def _summary(job: str) -> str:
    """The job's latest summary artifact (markdown)."""
    async with get_client() as client:
        found = await client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[summary_key(job)])))
    return str(sorted(found, key=lambda a: a.created)[-1].data)


@pytest.mark.timeout(180)
async def test_a_retaining_target_is_refused_before_upload_then_staged_elsewhere_and_retained_files_reported(
    saved_blocks: SavedBlocks, hcp_mode: Any, hcp_bucket: str, staging_bucket: str, tmp_path: Path
) -> None:
    hcp_mode.configure_namespace(hcp_bucket, retention="-1")
    files = make_tree(tmp_path / "src", 4)
    params = dict(source_dir=str(tmp_path / "src"), bucket=hcp_bucket, prefix="final/", **saved_blocks.params())

    state = await bulk_upload(return_state=True, **params)
    assert state.is_failed()
    with pytest.raises(StagingNotAllowedError, match="'staging_bucket' setting"):
        await state.result()
    assert hcp_mode.stored(hcp_bucket, "") == {}, "nothing was uploaded"

    overrides = {"settings_overrides": {"staging_bucket": staging_bucket}}
    first = await bulk_upload(**params, **overrides)
    assert first["outcome"] == "committed" and first["committed"] == 4 and first["retained"] == 0
    final = hcp_mode.stored(hcp_bucket, "final/")
    final.pop("final/manifest-sha256.txt"), final.pop("final/rahcp-mtimes.txt")  # the job's tag files
    final = {key: body for key, body in final.items() if not is_record_key("final/", key)}  # and its record
    assert final == {f"final/{rel}": body for rel, body in files.items()}
    assert hcp_mode.stored(staging_bucket, STAGING_ROOT) == {} and hcp_mode.stored(hcp_bucket, STAGING_ROOT) == {}

    changed = sorted(files)[0]
    path = tmp_path / "src" / changed
    path.write_bytes(b"changed bytes, another size")
    os.utime(path, ns=(1, 1))
    second = await bulk_upload(**params, **overrides)
    assert second["outcome"] == "committed", "a retained file never fails the night"
    assert second["retained"] == 1 and second["retained_files"] == [f"final/{changed}"]
    assert hcp_mode.stored(hcp_bucket, f"final/{changed}") == {f"final/{changed}": files[changed]}, "not replaced"
    assert hcp_mode.stored(staging_bucket, STAGING_ROOT) == {}
    summary = await _summary(second["job"])
    assert "Retained: 1 changed file not replaced" in summary and f"final/{changed}" in summary
