"""A run logs in once: the JobRun's client serves the preflight, every batch task, the
verification, the commit's moves and the final check (the emulator counts the logins)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from rahcp_prefect.flows import bulk_download, bulk_upload
from rahcp_prefect.testing.counter import LOGIN

from .conftest import SavedBlocks, make_tree


@pytest.mark.timeout(300)
async def test_a_bulk_upload_of_three_batches_then_its_download_log_in_once_each(
    saved_blocks: SavedBlocks, hcp_emulator: Any, hcp_bucket: str, tmp_path: Path
) -> None:
    files = make_tree(tmp_path / "src", 6)
    hcp_emulator.reset_counts()
    up = await bulk_upload(
        source_dir=str(tmp_path / "src"), bucket=hcp_bucket, prefix="final/", batch_size=2, **saved_blocks.params()
    )
    assert up["outcome"] == "committed" and up["committed"] == 6
    assert hcp_emulator.request_counts[LOGIN] == 1, "one login for 3 batches, the verification and the commit"

    hcp_emulator.reset_counts()
    down = await bulk_download(
        bucket=hcp_bucket, dest_dir=str(tmp_path / "dest"), prefix="final/", batch_size=2, **saved_blocks.params()
    )
    assert down["outcome"] == "complete" and down["moved"] == 8  # the 6 files and the job's tag files (manifest, times)
    assert hcp_emulator.request_counts[LOGIN] == 1, "one login for the listings, the manifest and 3 batches"
    assert {rel: (tmp_path / "dest" / rel).read_bytes() for rel in files} == files
