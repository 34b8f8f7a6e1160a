"""Failures beyond one file: a failing bulk presign, a failing listing, a cancelled run."""

from __future__ import annotations

import asyncio

import pytest

from rahcp_prefect.bulk import (
    BulkDownloadConfig,
    BulkUploadConfig,
    TransferStats,
    bulk_download,
    bulk_upload,
)
from rahcp_prefect.client.errors import HCPError
from rahcp_prefect.testing.counter import PRESIGN as PRESIGN_ONE

from .conftest import content, make_tree


async def test_failed_bulk_presign_falls_back_to_single(hcp_emulator, hcp_bucket, hcp_client, tracker, tmp_path) -> None:
    src = tmp_path / "src"
    files = make_tree(src, {f"f{i}": content(i, 20) for i in range(5)})
    hcp_emulator.faults.add(plane="api", method="POST", path=r"/objects/presign$", status=500, count=None)
    stats = await bulk_upload(BulkUploadConfig(client=hcp_client, bucket=hcp_bucket, source_dir=src, tracker=tracker))
    assert (stats.ok, stats.errors) == (5, 0)
    assert hcp_emulator.request_counts[PRESIGN_ONE] == 5  # each file signed on its own
    assert hcp_emulator.stored(hcp_bucket) == files


async def test_failing_listing_fails_the_run(hcp_emulator, hcp_bucket, hcp_client, tracker, tmp_path) -> None:
    hcp_emulator.s3.put_object(Bucket=hcp_bucket, Key="k", Body=b"1")
    hcp_emulator.faults.add(plane="api", method="GET", path=r"/objects$", status=500, count=None)
    with pytest.raises(HCPError):
        await bulk_download(BulkDownloadConfig(client=hcp_client, bucket=hcp_bucket, dest_dir=tmp_path / "d", tracker=tracker))


async def test_cancelled_run_keeps_what_it_did(hcp_emulator, hcp_bucket, hcp_client, tracker, tmp_path) -> None:
    src = tmp_path / "src"
    make_tree(src, {f"f{i:03d}": content(i, 20) for i in range(200)})
    hcp_emulator.faults.add(plane="data", method="PUT", delay=0.05, count=None)
    seen: list[int] = []
    started = asyncio.Event()

    def progress(s: TransferStats) -> None:
        seen.append(s.ok)
        if s.ok >= 10:
            started.set()

    run = asyncio.create_task(
        bulk_upload(
            BulkUploadConfig(client=hcp_client, bucket=hcp_bucket, source_dir=src, tracker=tracker, workers=4,
                             on_progress=progress, progress_interval=0)
        )
    )
    await asyncio.wait_for(started.wait(), 30)
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    # Another connection sees the marks: they were flushed on the way out, not left buffered
    # (flush_every=50 would otherwise hold up to 49 of them).
    from rahcp_prefect.tracker import SqliteTracker

    with SqliteTracker(tmp_path / "tracker.db", job="test") as reader:
        assert len(reader.done_keys()) >= seen[-1] >= 10
