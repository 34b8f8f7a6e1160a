"""Two runs of one download job at once (a nightly schedule that overlaps a manual run): the
job lease makes the second wait; it then finds every file in place and fetches nothing."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from rahcp_prefect.flows import bulk_download
from rahcp_prefect.flows.download import staging_dir_for
from rahcp_prefect.testing.prefect_fixtures import SavedBlocks

from .helpers import data_requests, put_objects, tree_hashes

FILES = 40


@pytest.mark.timeout(180)
async def test_two_downloads_of_one_job_at_once_fetch_every_object_once(
    saved_blocks: SavedBlocks, hcp_emulator: Any, hcp_bucket: str, tmp_path: Path
) -> None:
    bodies = {f"f{index:03d}.txt": f"object {index}\n".encode() * (1 + index % 30) for index in range(FILES)}
    expected = put_objects(hcp_emulator, hcp_bucket, "data/", bodies)
    dest = tmp_path / "dest"
    params = {"bucket": hcp_bucket, "dest_dir": str(dest), "prefix": "data/", **saved_blocks.params()}
    hcp_emulator.faults.add("data", method="GET", delay=0.1, count=None)  # the first is still fetching

    first, second = await asyncio.gather(bulk_download(**params), bulk_download(**params))

    results = sorted((first, second), key=lambda result: result["moved"])
    assert [r["outcome"] for r in results] == ["complete", "complete"]
    assert (results[0]["moved"], results[0]["ok"], results[0]["unchanged"]) == (0, 0, FILES), "the second waited"
    assert (results[1]["moved"], results[1]["ok"]) == (FILES, FILES)
    assert data_requests(hcp_emulator, "GET") == FILES + 2, "every object once, and each run looked for the manifest"
    assert tree_hashes(dest) == expected and not staging_dir_for(dest.resolve()).exists()
