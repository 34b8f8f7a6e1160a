"""Throttling is ridden out (issue 21): 20 s of 503 ``SlowDown`` on 60 % of one plane's requests,
as HCP answers under load, costs time, never a file; the files in flight are cut so the storm
does not become a retry storm (data-plane requests stay under twice the files); the run counts
the throttled answers. ``max_bandwidth`` holds a run to its rate; a worker's defect ends the
run within seconds."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from rahcp_prefect.bulk import BulkDownloadConfig, BulkUploadConfig, bulk_download, bulk_upload
from rahcp_prefect.client import HCPClient
from rahcp_prefect.testing.counter import DATA_GET, DATA_PUT, PRESIGN, PRESIGN_BULK
from rahcp_prefect.tracker import SqliteTracker

FILES = 400
STORM = 20.0


def _tree(root: Path, count: int, size: int = 1024) -> dict[str, bytes]:
    files = {f"d{i % 7}/f{i:04d}.bin": (f"{i:08d}".encode() * (size // 8 + 1))[:size] for i in range(count)}
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return files


@pytest.fixture
async def realistic_client(hcp_credentials: dict[str, Any]) -> AsyncIterator[HCPClient]:
    """The default backoff (1 s base) and retry budget (4 retries, 300 s while throttled)."""
    async with HCPClient(**hcp_credentials, timeout=10.0) as client:
        yield client


def _storm(emulator: Any, plane: str, method: str, path: str = ".*") -> Any:
    code = "SlowDown" if plane == "data" else None
    return emulator.faults.add(
        plane, method=method, path=path, status=503, code=code, probability=0.6, count=None, duration=STORM
    )


@pytest.mark.timeout(240)
async def test_a_20_s_slowdown_storm_on_data_plane_puts_costs_no_file(
    hcp_emulator: Any, hcp_bucket: str, realistic_client: HCPClient, tmp_path: Path
) -> None:
    files = _tree(tmp_path / "src", FILES)
    storm = _storm(hcp_emulator, "data", "PUT")
    with SqliteTracker(tmp_path / "t.db", job="storm") as tracker:
        stats = await bulk_upload(
            BulkUploadConfig(client=realistic_client, bucket=hcp_bucket, source_dir=tmp_path / "src", tracker=tracker)
        )
        assert len(tracker.done_keys()) == FILES
    assert (stats.ok, stats.errors) == (FILES, 0)
    assert storm.hits > 0 and stats.throttled == storm.hits
    puts = hcp_emulator.request_counts[DATA_PUT]
    assert puts <= 2 * FILES, f"{puts} PUTs for {FILES} files: the storm became a retry storm"
    assert hcp_emulator.stored(hcp_bucket) == files


@pytest.mark.timeout(240)
async def test_a_20_s_slowdown_storm_on_data_plane_gets_costs_no_file(
    hcp_emulator: Any, hcp_bucket: str, realistic_client: HCPClient, tmp_path: Path
) -> None:
    files = _tree(tmp_path / "src", FILES)
    for rel, data in files.items():
        hcp_emulator.s3.put_object(Bucket=hcp_bucket, Key=rel, Body=data)
    hcp_emulator.reset_counts()
    storm = _storm(hcp_emulator, "data", "GET")
    with SqliteTracker(tmp_path / "t.db", job="storm") as tracker:
        stats = await bulk_download(
            BulkDownloadConfig(client=realistic_client, bucket=hcp_bucket, dest_dir=tmp_path / "dst", tracker=tracker)
        )
    assert (stats.ok, stats.errors) == (FILES, 0)
    assert storm.hits > 0 and stats.throttled == storm.hits
    gets = hcp_emulator.request_counts[DATA_GET]
    assert gets <= 2 * FILES, f"{gets} GETs for {FILES} files"
    assert {p.relative_to(tmp_path / "dst").as_posix(): p.read_bytes() for p in (tmp_path / "dst").rglob("*.bin")} == files


@pytest.mark.timeout(240)
async def test_a_20_s_storm_on_the_api_plane_costs_no_file_and_no_fan_out(
    hcp_emulator: Any, hcp_bucket: str, realistic_client: HCPClient, tmp_path: Path
) -> None:
    files = _tree(tmp_path / "src", FILES)
    storm = _storm(hcp_emulator, "api", "POST", r"/presign$")
    with SqliteTracker(tmp_path / "t.db", job="storm") as tracker:
        stats = await bulk_upload(
            BulkUploadConfig(
                client=realistic_client, bucket=hcp_bucket, source_dir=tmp_path / "src", tracker=tracker,
                presign_batch_size=50,
            )
        )
    assert (stats.ok, stats.errors) == (FILES, 0)
    assert storm.hits > 0 and stats.throttled == storm.hits
    counts = hcp_emulator.request_counts
    assert counts[PRESIGN] == 0, "a throttled bulk presign was waited for, not fanned out per file"
    assert counts[DATA_PUT] == FILES
    assert counts[PRESIGN_BULK] <= 2 * (FILES // 50) + storm.hits
    assert hcp_emulator.stored(hcp_bucket) == files


@pytest.mark.timeout(120)
async def test_max_bandwidth_holds_an_upload_and_a_download_to_its_rate(
    hcp_emulator: Any, hcp_bucket: str, hcp_credentials: dict[str, Any], tmp_path: Path
) -> None:
    """4 MB/s for 40 files of 256 KiB (10.5 MB): about 2.6 s each way, whatever the workers."""
    files = _tree(tmp_path / "src", 40, size=256 * 1024)
    total = sum(len(data) for data in files.values())
    rate = 4_000_000
    async with HCPClient(**hcp_credentials, max_bandwidth="4MB") as client:
        with SqliteTracker(tmp_path / "t.db", job="bw") as tracker:
            started = time.monotonic()
            up = await bulk_upload(
                BulkUploadConfig(client=client, bucket=hcp_bucket, source_dir=tmp_path / "src", tracker=tracker, workers=16)
            )
            up_rate = total / (time.monotonic() - started)
        with SqliteTracker(tmp_path / "d.db", job="bw") as tracker:
            started = time.monotonic()
            down = await bulk_download(
                BulkDownloadConfig(client=client, bucket=hcp_bucket, dest_dir=tmp_path / "dst", tracker=tracker, workers=16)
            )
            down_rate = total / (time.monotonic() - started)
    assert (up.ok, down.ok) == (40, 40)
    assert 0.6 * rate <= up_rate <= 1.1 * rate, up_rate  # the cap holds; a loaded machine may fall short
    assert 0.6 * rate <= down_rate <= 1.1 * rate, down_rate
    assert hcp_emulator.stored(hcp_bucket) == files


@pytest.mark.timeout(60)
async def test_a_worker_exception_ends_the_run_within_seconds(
    hcp_emulator: Any, hcp_bucket: str, hcp_client: HCPClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A data plane that answers None (a defect, not a file's failure) fails the run with that
    error at once, with the other workers cancelled and what was done kept in the tracker."""
    _tree(tmp_path / "src", 300)
    real = hcp_client.data.put_bytes
    calls = [0]

    async def sometimes_none(url: str, data: Any, **kw: Any) -> Any:
        calls[0] += 1
        return None if calls[0] > 50 else await real(url, data, **kw)

    monkeypatch.setattr(hcp_client.data, "put_bytes", sometimes_none)
    started = time.monotonic()
    with SqliteTracker(tmp_path / "t.db", job="defect") as tracker:
        with pytest.raises(AttributeError, match="etag"):
            await asyncio.wait_for(
                bulk_upload(
                    BulkUploadConfig(client=hcp_client, bucket=hcp_bucket, source_dir=tmp_path / "src", tracker=tracker)
                ),
                timeout=50,
            )
        assert time.monotonic() - started < 10
        done = len(tracker.done_keys())
    assert 1 <= done <= 50  # what went through before the defect is kept
    assert len(hcp_emulator.stored(hcp_bucket)) >= done
