"""``cleanup-staging`` takes a job through ``job.lease`` like any run: a job another run took
after the cleanup listed it is left alone, and that run's lease is not released by the cleanup."""

from __future__ import annotations

from typing import Any

import pytest

from rahcp_prefect.blocks import HCPTracker
from rahcp_prefect.flows import cleanup_staging
from rahcp_prefect.job import STAGING_ROOT
from rahcp_prefect.tracker import JobState, create_tracker

from .conftest import SavedBlocks


async def test_a_job_taken_after_the_listing_is_left_alone(
    saved_blocks: SavedBlocks, hcp_emulator: Any, hcp_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = f"bulk-upload:{hcp_bucket}/final/"
    staging = f"{STAGING_ROOT}crashed-run/"
    for index in range(3):
        hcp_emulator.s3.put_object(Bucket=hcp_bucket, Key=f"{staging}f{index}", Body=b"x")
    tracker = create_tracker(saved_blocks.tracker_path, job=job)
    tracker.update_job(state=JobState.open, bucket=hcp_bucket, staging_prefix=staging, final_prefix="final/")
    tracker.close()
    real = HCPTracker.get_tracker

    def taken_meanwhile(self: HCPTracker, name: str) -> Any:
        opened = real(self, name)
        if name == job:  # another run starts between the cleanup's listing and its take
            assert opened.take_job_lease("other-run", 60.0).held
        return opened

    monkeypatch.setattr(HCPTracker, "get_tracker", taken_meanwhile)
    result = await cleanup_staging(
        credentials_block=saved_blocks.credentials, tracker_block=saved_blocks.tracker, older_than_hours=0
    )
    monkeypatch.undo()
    assert result["jobs"] == []
    assert len(hcp_emulator.stored(hcp_bucket, staging)) == 3, "the other run's staging is untouched"
    tracker = create_tracker(saved_blocks.tracker_path, job=job)
    try:
        info = tracker.job_info()
        assert info is not None and info.lease_owner == "other-run" and info.state == JobState.open
    finally:
        tracker.close()
