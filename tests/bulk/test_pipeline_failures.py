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


# -- a run always ends (issue 21, item 5) ---------------------------------------------------


@pytest.mark.timeout(30)
async def test_worker_exception_fails_the_pipeline_promptly() -> None:
    """A handler that raises ends every worker; the producer, blocked on a full queue, is woken
    and the run fails with that error instead of waiting forever."""
    from rahcp_prefect.bulk.pipeline import run_pipeline

    produced: list[int] = []
    closed = asyncio.Event()

    async def pairs():
        try:
            for i in range(10_000):
                produced.append(i)
                yield [((i,), None)]
        finally:
            closed.set()

    async def handle(item: tuple[int], url: str | None) -> None:
        await asyncio.sleep(0)
        raise AttributeError(f"'str' object has no attribute 'etag' (item {item[0]})")

    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(AttributeError, match="etag"):
        await run_pipeline(pairs(), handle, workers=3, queue_depth=2)
    assert loop.time() - started < 5
    assert closed.is_set()  # the source was closed, not left reading ahead
    assert len(produced) < 100  # stopped at once, not after the whole source
    assert asyncio.current_task().cancelling() == 0  # the cancellation used to wake it is gone


@pytest.mark.timeout(30)
async def test_worker_exception_after_source_end_fails_the_pipeline() -> None:
    """A worker that raises while the producer already waits for the workers to finish."""
    from rahcp_prefect.bulk.pipeline import run_pipeline

    async def pairs():
        for i in range(3):
            yield [((i,), None)]

    async def handle(item: tuple[int], url: str | None) -> None:
        await asyncio.sleep(0.05 * item[0])
        if item[0] == 2:
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await run_pipeline(pairs(), handle, workers=3, queue_depth=1)


@pytest.mark.timeout(60)
async def test_data_plane_returning_none_fails_the_upload_within_seconds(
    hcp_emulator, hcp_bucket, hcp_client, tracker, tmp_path, monkeypatch
) -> None:
    """A defect outside the per-file ``try`` (here: a data plane answering None, which the
    real parts cannot produce) fails the run with its error, promptly, and keeps the marks."""
    src = tmp_path / "src"
    make_tree(src, {f"f{i:03d}": content(i, 20) for i in range(300)})

    async def broken_put_bytes(url, data, *, what, **kw):
        return None

    monkeypatch.setattr(hcp_client.data, "put_bytes", broken_put_bytes)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(AttributeError, match="etag"):
        await bulk_upload(
            BulkUploadConfig(client=hcp_client, bucket=hcp_bucket, source_dir=src, tracker=tracker, workers=4,
                             queue_depth=2, presign_batch_size=20)
        )
    assert loop.time() - started < 10
