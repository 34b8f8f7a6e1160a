"""Each pipeline of ``flows/`` runs against the emulator and a real Prefect API; the bucket, the
restored folder and the audit's findings are checked, not only the run's state."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from prefect.events.filters import EventFilter, EventNameFilter, EventOccurredFilter, EventResourceFilter
from prefect.server.utilities.user_templates import render_user_template_sync

from rahcp_prefect.events import UPLOAD_COMMITTED
from rahcp_prefect.flows import bulk_upload
from rahcp_prefect.job.manifest import MANIFEST_NAME, MTIMES_NAME
from rahcp_prefect.job.records import RECORDS_DIR
from rahcp_prefect.testing.prefect_fixtures import make_tree

from .conftest import load_flows_file

pytestmark = pytest.mark.timeout(300)


def _keys(hcp_emulator: Any, bucket: str, prefix: str) -> set[str]:
    listed = hcp_emulator.s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
    return {item["Key"] for item in listed}


def _next_night(source: Path, files: dict[str, bytes]) -> dict[str, bytes]:
    """What changes at the source between two nights: one file rewritten, one added."""
    changed = sorted(files)[0]
    files = {**files, changed: b"rewritten on day 2\n" + files[changed], "added/on-day-2.txt": b"new on day 2\n"}
    for rel in (changed, "added/on-day-2.txt"):
        (source / rel).parent.mkdir(parents=True, exist_ok=True)
        (source / rel).write_bytes(files[rel])
    return files


def _assert_prefix_holds(hcp_emulator: Any, bucket: str, prefix: str, files: dict[str, bytes], extra: set[str]) -> None:
    """The final prefix holds exactly the source's files, byte for byte, plus ``extra`` names
    (the job's tag files, objects a pipeline writes of its own); no staging is left."""
    keys = _keys(hcp_emulator, bucket, prefix)
    records = {key for key in keys if key.startswith(prefix + RECORDS_DIR)}
    assert records, "each commit's own fixity record is kept under the prefix"
    assert keys - records == {prefix + rel for rel in files} | {prefix + name for name in extra}
    for rel, content in files.items():
        assert hcp_emulator.s3.get_object(Bucket=bucket, Key=prefix + rel)["Body"].read() == content, rel
    assert not _keys(hcp_emulator, bucket, ".rahcp-staging/")


TAG_FILES = {MANIFEST_NAME, MTIMES_NAME}


async def test_nightly_archive_runs_two_nights_on_an_hcp_namespace(
    default_blocks: Path, hcp_emulator: Any, hcp_bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the flow restores into ./restore, as the README runs it
    files = make_tree(tmp_path / "scans", 7)
    flows = load_flows_file("nightly_archive")
    for night in (1, 2):  # night 2: MANIFEST.txt exists and the namespace refuses overwrites (409)
        result = await flows.nightly_archive("scans", hcp_bucket, "2026/")
        assert result["outcome"] == "committed", (night, result)
        _assert_prefix_holds(hcp_emulator, hcp_bucket, "2026/", files, TAG_FILES | {"MANIFEST.txt"})
        for rel, content in files.items():
            assert (tmp_path / "restore" / rel).read_bytes() == content
        assert (tmp_path / "restore" / "MANIFEST.txt").read_bytes() == b"uploaded by nightly_archive\n"
        if night == 1:
            assert result["ok"] == len(files)
            files = _next_night(tmp_path / "scans", files)
        else:
            assert result["ok"] == 2  # the changed and the added file, nothing else


def test_nightly_archive_sync_runs_two_nights(
    default_blocks: Path, hcp_emulator: Any, hcp_bucket: str, tmp_path: Path
) -> None:
    files = make_tree(tmp_path / "scans", 5)
    flows = load_flows_file("nightly_archive_sync")
    for night in (1, 2):
        count = flows.nightly_archive_sync(str(tmp_path / "scans"), hcp_bucket, "sync/")
        _assert_prefix_holds(hcp_emulator, hcp_bucket, "sync/", files, TAG_FILES)
        listed = _keys(hcp_emulator, hcp_bucket, "sync/")  # the files, the tag files, each commit's record
        assert count == len(listed) == len(files) + len(TAG_FILES) + 2 * night, night
        if night == 1:
            files = _next_night(tmp_path / "scans", files)


async def test_archive_with_audit_runs_two_nights_and_fails_on_an_object_not_archived(
    default_blocks: Path, hcp_emulator: Any, hcp_bucket: str, tmp_path: Path
) -> None:
    files = make_tree(tmp_path / "scans", 9)
    flows = load_flows_file("archive_with_audit")
    for night in (1, 2):
        result = await flows.archive_with_audit(str(tmp_path / "scans"), hcp_bucket, "audited/")
        assert result["uploaded"]["ok"] == (len(files) if night == 1 else 2)
        assert result["audit"]["ok"] and result["audit"]["matches"] == result["audit"]["expected"] == len(files)
        assert result["audit"]["against"] == "manifest"
        _assert_prefix_holds(hcp_emulator, hcp_bucket, "audited/", files, TAG_FILES)
        if night == 1:
            files = _next_night(tmp_path / "scans", files)

    # an object the archive never sent: the rerun uploads nothing new, the audit names it
    hcp_emulator.s3.put_object(Bucket=hcp_bucket, Key="audited/stray.txt", Body=b"not archived")
    state = await flows.archive_with_audit(str(tmp_path / "scans"), hcp_bucket, "audited/", return_state=True)
    assert state.is_failed()
    assert "1 extra" in str(state.message), state.message


async def _committed_event(job: str, timeout: float = 90.0, not_in: set[str] = frozenset()) -> Any:  # type: ignore[assignment]
    """A ``rahcp.upload.committed`` event of ``job`` not ``not_in`` (ids), read back from the Prefect API."""
    event_filter = EventFilter(
        occurred=EventOccurredFilter(since=datetime.now(timezone.utc) - timedelta(hours=1)),
        event=EventNameFilter(name=[UPLOAD_COMMITTED]),
        resource=EventResourceFilter(id=[f"rahcp.job.{job}"]),
    )
    deadline = time.monotonic() + timeout
    while True:
        async with get_client() as client:
            page = await client.read_events(filter=event_filter, limit=5)
        fresh = [event for event in page.events if str(event.id) not in not_in]
        if fresh or time.monotonic() > deadline:
            assert fresh, f"no new {UPLOAD_COMMITTED} event for job {job}"
            return fresh[0]
        await asyncio.sleep(0.5)


async def test_verify_on_commit_audits_the_prefix_its_trigger_names_two_nights(
    default_blocks: Path, hcp_emulator: Any, hcp_bucket: str, tmp_path: Path
) -> None:
    files = make_tree(tmp_path / "scans", 6)
    job = f"follow-{uuid.uuid4().hex[:8]}"
    flows = load_flows_file("verify_on_commit")
    seen: set[str] = set()
    for night in (1, 2):
        await bulk_upload(source_dir=str(tmp_path / "scans"), bucket=hcp_bucket, prefix="scans/", job=job,
                          credentials_block="hcp", settings_block="hcp-settings", tracker_block="hcp-tracker")
        event = await _committed_event(job, not_in=seen)
        seen.add(str(event.id))
        trigger = flows.on_commit("scans/")
        assert event.event in trigger.expect and trigger.match.includes([event.resource])
        assert not flows.on_commit("other/").match.includes([event.resource])
        # the run the trigger starts gets these parameters, rendered from the event by Prefect's templating
        parameters = {name: render_user_template_sync(template, {"event": event})
                      for name, template in trigger.parameters.items()}
        assert parameters == {"bucket": hcp_bucket, "prefix": "scans/"}
        audit = await flows.verify_on_commit(**parameters)
        assert audit["ok"] and audit["matches"] == audit["expected"] == len(files), night
        _assert_prefix_holds(hcp_emulator, hcp_bucket, "scans/", files, TAG_FILES)
        if night == 1:
            files = _next_night(tmp_path / "scans", files)
