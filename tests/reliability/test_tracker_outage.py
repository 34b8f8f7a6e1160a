"""PostgreSQL goes away under a running bulk upload (issue 21), as a restart or a failover takes
it: 35 s, longer than the connection pool's own 30 s wait, while the batches are sending. The
run waits for the tracker (``tracker_wait``), then commits; no file is sent twice."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from rahcp_prefect.blocks import HCPTracker
from rahcp_prefect.flows import bulk_upload
from rahcp_prefect.job import STAGING_ROOT
from rahcp_prefect.testing.postgres import OutageProxy
from rahcp_prefect.testing.prefect_fixtures import SavedBlocks

from .helpers import bucket_hashes, bucket_listing, data_requests, job_tracker, sha256, without_manifest

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(300)]

FILES = 300
OUTAGE = 35.0


def _outage_after(emulator: Any, proxy: OutageProxy, puts: int, seconds: float) -> tuple[threading.Thread, dict[str, int]]:
    """A thread that takes the database away for ``seconds`` once ``puts`` files were sent;
    ``when`` records the PUT count at which it did."""
    when: dict[str, int] = {}

    def watch() -> None:
        deadline = time.monotonic() + 120
        while data_requests(emulator, "PUT") < puts:
            if time.monotonic() > deadline:
                return
            time.sleep(0.01)
        when["puts"] = data_requests(emulator, "PUT")
        proxy.outage(seconds).join()

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread, when


async def test_a_tracker_outage_under_a_running_upload_is_waited_for_and_nothing_is_sent_twice(
    saved_blocks: SavedBlocks, hcp_emulator: Any, hcp_bucket: str, tmp_path: Path,
    proxied: tuple[str, OutageProxy],
) -> None:
    dsn, proxy = proxied
    await HCPTracker(postgres_dsn=SecretStr(dsn), tracker_wait=150).save(saved_blocks.tracker, overwrite=True)
    source = tmp_path / "src"
    source.mkdir()
    files = {f"f{index:03d}.bin": b"%03d" % index * (10 + index) for index in range(FILES)}
    for name, data in files.items():
        (source / name).write_bytes(data)
    hcp_emulator.faults.add(plane="data", method="PUT", delay=0.05, count=None)  # a run of several seconds
    watcher, when = _outage_after(hcp_emulator, proxy, puts=FILES // 3, seconds=OUTAGE)

    started = time.monotonic()
    result = await bulk_upload(
        source_dir=str(source), bucket=hcp_bucket, prefix="final/", batch_size=50, **saved_blocks.params()
    )
    elapsed = time.monotonic() - started
    watcher.join(timeout=OUTAGE + 10)

    assert when, "the database never went away: the run ended before the outage"
    assert when["puts"] < FILES, "the outage came while files were still being sent"
    assert elapsed >= OUTAGE - 2, f"the run ended {elapsed:.1f} s after it started: it cannot have waited"
    assert result["outcome"] == "committed" and result["committed"] == FILES and result["failed"] == 0
    assert data_requests(hcp_emulator, "PUT") == FILES + 4, "every file sent once, then the record and the manifest, each with times"
    stored = without_manifest(bucket_hashes(hcp_emulator, hcp_bucket, "final/"))
    assert stored == {f"final/{name}": sha256(data) for name, data in files.items()}
    assert bucket_listing(hcp_emulator, hcp_bucket, STAGING_ROOT) == [], "staging ends empty"
    with job_tracker(dsn, result["job"]) as tracker:
        assert len(tracker.done_keys()) == FILES and tracker.summary()["error"] == 0
