"""The flows' ``rahcp.*`` events, read back from the session's Prefect API."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime, timedelta, timezone
import uuid
from pathlib import Path
from typing import Any

from prefect.client.orchestration import get_client
from prefect.events.filters import EventFilter, EventNameFilter, EventOccurredFilter, EventResourceFilter

from rahcp_prefect import events
from rahcp_prefect.flows import bulk_download, bulk_upload
from rahcp_prefect.testing.fixtures import TEST_PASSWORD

from .conftest import SavedBlocks, make_tree


async def read_job_events(job_prefix: str, expected: int, timeout: float = 90.0) -> list[Any]:
    """The ``rahcp.*`` events whose job starts with ``job_prefix``, once ``expected`` arrived
    (the server persists events in batches, so poll with a wide margin)."""
    event_filter = EventFilter(
        occurred=EventOccurredFilter(since=datetime.now(timezone.utc) - timedelta(hours=1)),
        event=EventNameFilter(prefix=["rahcp."]),
        resource=EventResourceFilter(id_prefix=[f"rahcp.job.{job_prefix}"]),
    )
    deadline = time.monotonic() + timeout
    while True:
        async with get_client() as client:
            page = await client.read_events(filter=event_filter, limit=50)
        if len(page.events) >= expected or time.monotonic() > deadline:
            return sorted(page.events, key=lambda event: event.occurred)
        await asyncio.sleep(0.5)


def _related(event: Any, role: str) -> list[str]:
    return [resource.id for resource in event.related if resource.role == role]


async def test_flows_emit_outcome_events_with_counts_and_no_secret(
    saved_blocks: SavedBlocks, hcp_emulator: Any, hcp_bucket: str, tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:8]
    files = make_tree(tmp_path / "src", 9)
    committed = await bulk_upload(
        source_dir=str(tmp_path / "src"), bucket=hcp_bucket, prefix="good/", job=f"{tag}-up", **saved_blocks.params()
    )
    rule = hcp_emulator.faults.add("data", method="PUT", path=r"top-0004\.txt", status=403, count=None)
    failed_upload = await bulk_upload(
        source_dir=str(tmp_path / "src"), bucket=hcp_bucket, prefix="bad/", job=f"{tag}-rb",
        return_state=True, **saved_blocks.params(),
    )
    hcp_emulator.faults.remove(rule)
    downloaded = await bulk_download(
        bucket=hcp_bucket, dest_dir=str(tmp_path / "dest"), prefix="good/", job=f"{tag}-down", **saved_blocks.params()
    )
    hcp_emulator.faults.add("data", method="GET", path=r"top-0002\.txt", status=403, count=None)
    failed_download = await bulk_download(
        bucket=hcp_bucket, dest_dir=str(tmp_path / "dest2"), prefix="good/", job=f"{tag}-dfail",
        return_state=True, **saved_blocks.params(),
    )
    events.emit_verify_mismatch(f"{tag}-verify", hcp_bucket, "good/", ["good/top-0000.txt", "good/top-0002.txt"])
    assert failed_upload.is_failed() and failed_download.is_failed()

    found = await read_job_events(tag, expected=6)
    by_job: dict[str, list[str]] = {}
    for event in found:
        by_job.setdefault(event.resource.id.removeprefix("rahcp.job."), []).append(event.event)
    assert by_job == {
        f"{tag}-up": [events.UPLOAD_COMMITTED],
        f"{tag}-rb": [events.UPLOAD_ROLLED_BACK, events.UPLOAD_FAILED],
        f"{tag}-down": [events.DOWNLOAD_COMPLETED],
        f"{tag}-dfail": [events.DOWNLOAD_FAILED],
        f"{tag}-verify": [events.VERIFY_MISMATCH],
    }

    commit = next(event for event in found if event.event == events.UPLOAD_COMMITTED)
    assert commit.resource["rahcp.bucket"] == hcp_bucket and commit.resource["rahcp.prefix"] == "good/"
    assert _related(commit, "bucket") == [f"rahcp.bucket.{hcp_bucket}"]
    assert _related(commit, "prefix") == [f"rahcp.prefix.{hcp_bucket}/good/"]
    assert _related(commit, "flow-run"), "the event names the flow run that emitted it"
    assert commit.payload["counts"]["ok"] == len(files) == committed["ok"]
    assert commit.payload["counts"]["committed"] == len(files)
    assert commit.payload["bytes"] == sum(len(content) for content in files.values())

    rolled_back = next(event for event in found if event.event == events.UPLOAD_ROLLED_BACK)
    assert rolled_back.payload["error"] == "BulkTransferFailed"
    assert rolled_back.payload["counts"]["errors"] == 1
    assert "top-0004.txt" in rolled_back.payload["message"]
    failure = next(event for event in found if event.event == events.UPLOAD_FAILED)
    assert failure.payload["rolled_back"] is True and failure.payload["error"] == "BulkTransferFailed"
    download_failure = next(event for event in found if event.event == events.DOWNLOAD_FAILED)
    assert download_failure.payload["counts"]["error"] == 1
    assert download_failure.payload["counts"]["done"] == len(files) + 1  # the files, the manifest and times, less one

    completed = next(event for event in found if event.event == events.DOWNLOAD_COMPLETED)
    assert completed.payload["counts"]["ok"] == downloaded["ok"] == len(files) + 2  # and the manifest and times
    assert completed.payload["dest_dir"] == str((tmp_path / "dest").resolve())
    mismatch = next(event for event in found if event.event == events.VERIFY_MISMATCH)
    assert mismatch.payload["mismatched"] == 2 and mismatch.payload["keys"][1] == "good/top-0002.txt"

    everything = json.dumps([event.model_dump(mode="json") for event in found])
    assert TEST_PASSWORD not in everything
    assert "X-Amz-Signature" not in everything and "Bearer" not in everything
