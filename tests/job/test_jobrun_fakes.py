"""``JobRun`` on its own: both directions driven by a fake batch runner (the engine called
directly, no Prefect task) and a fake view (phases, progress and summaries recorded), against
the emulator and a real tracker. What a flow adds is wiring; this is the run's logic."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from rahcp_prefect.bulk import BulkDownloadConfig, BulkUploadConfig, bulk_download, bulk_upload
from rahcp_prefect.job import Batch, BulkTransferFailed, DownloadStaging, JobRun, UploadStaging
from rahcp_prefect.job.manifest import MANIFEST_NAME, MTIMES_NAME
from rahcp_prefect.job.policy import OnFailure
from rahcp_prefect.tracker import JobState, LeaseMode, TransferStatus, create_tracker

FILES = {"a.txt": b"alpha", "sub/b.bin": b"\x00\x01" * 300, "sub/deeper/c.txt": b"c" * 17, "é.txt": b"accent"}


@dataclass
class Entry:
    files: int = 0
    bytes: int = 0


class FakeProgress:
    def __init__(self) -> None:
        self.batches: list[tuple[int, int]] = []

    def batch_finished(self, handled: int, size: int) -> None:
        self.batches.append((handled, size))

    def on_batch_progress(self, *args: Any) -> None:
        pass


@dataclass
class FakeView:
    """``job.run.RunView`` without Prefect: what the run showed, kept for the test to read."""

    key_prefixes: tuple[str, ...] = ("",)
    progress: FakeProgress = field(default_factory=FakeProgress)
    phases: dict[str, Entry] = field(default_factory=dict)
    started: bool = False
    summaries: list[tuple[str, dict[str, Any], str | None]] = field(default_factory=list)
    committed: list[tuple[int, int]] = field(default_factory=list)

    @contextmanager
    def phase(self, name: str, files: int = 0, size: int = 0) -> Iterator[Entry]:
        entry = self.phases[name] = Entry(files, size)
        yield entry

    def commit_progress(self, total: int) -> Callable[[int, int], Any]:
        return lambda moved, size: self.committed.append((moved, size))

    async def start(self) -> None:
        self.started = True

    async def publish_summary(
        self, outcome: str, result: Any, errors: Any = (), error_count: int | None = None, reason: str | None = None
    ) -> None:
        self.summaries.append((outcome, dict(result), reason))


def _stats(stats: Any) -> dict[str, Any]:
    """What a batch task returns, from the engine's stats (``tasks.stats_dict``'s counters)."""
    return {name: getattr(stats, name) for name in ("ok", "skipped", "errors", "done", "bytes", "retries")}


def _run(tracker: Any, client: Any, staging: Any, send: Any, view: FakeView, owner: str) -> JobRun:
    return JobRun(tracker, client, staging, send, view, owner, LeaseMode.single, 30.0, logging.getLogger("test"), batch_size=2)


def _tree(root: Path) -> Path:
    for rel, body in FILES.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(body)
    return root


@pytest.mark.timeout(120)
async def test_an_upload_then_a_download_run_without_prefect(
    tmp_path: Path, hcp_emulator: Any, hcp_client: Any, hcp_bucket: str
) -> None:
    source = _tree(tmp_path / "src")
    db = tmp_path / "tracker.db"
    sent: list[int] = []

    async def upload(batch: Batch) -> dict[str, Any]:
        sent.append(len(batch.entries))
        config = BulkUploadConfig(
            client=batch.client, bucket=batch.bucket, source_dir=source, tracker=up_tracker, prefix=batch.staging,
            entries=batch.entries, skip_existing=batch.skip_existing, skip_done=False,
        )
        return _stats(await bulk_upload(config))

    up_tracker = create_tracker(db, job="up")
    view = FakeView()
    staging = UploadStaging(bucket=hcp_bucket, prefix="arch/", source=source)
    try:
        outcome, held = await _run(up_tracker, hcp_client, staging, upload, view, "run-up").execute()
        assert (outcome, held) == ("committed", True)
        assert sorted(sent) == [2, 2], "four files in batches of two"
        assert view.started and set(view.phases) >= {"scan", "transfer", "verify", "commit"}
        assert (view.phases["scan"].files, view.phases["transfer"].files) == (4, 4)
        assert view.committed and view.committed[-1][0] == 4
        assert up_tracker.job_info().state == JobState.committed
    finally:
        up_tracker.close()
    final = {k: v for k, v in hcp_emulator.stored(hcp_bucket, "arch/").items()}
    for rel, body in FILES.items():
        assert final["arch/" + rel] == body
    assert hcp_emulator.stored(hcp_bucket, ".rahcp-staging/") == {}

    dest = tmp_path / "dest"
    down_tracker = create_tracker(db, job="down")

    async def download(batch: Batch) -> dict[str, Any]:
        config = BulkDownloadConfig(
            client=batch.client, bucket=hcp_bucket, dest_dir=Path(batch.staging), tracker=down_tracker,
            prefix="arch/", entries=batch.entries, skip_done=batch.skip_done, manifest=batch.manifest,
            mtimes=batch.mtimes,
        )
        return _stats(await bulk_download(config))

    view = FakeView()
    try:
        run = _run(down_tracker, hcp_client, DownloadStaging(bucket=hcp_bucket, prefix="arch/", dest=dest), download, view, "run-down")
        outcome, held = await run.execute()
        assert held and run.totals.moved == len(FILES) + 2, "the files, the manifest and the times"
    finally:
        down_tracker.close()
    for rel, body in FILES.items():
        assert (dest / rel).read_bytes() == body
    assert (dest / MANIFEST_NAME).exists() and (dest / MTIMES_NAME).exists()


@pytest.mark.timeout(120)
async def test_a_failed_batch_rolls_back_through_the_run_and_says_so_in_one_summary(
    tmp_path: Path, hcp_emulator: Any, hcp_client: Any, hcp_bucket: str
) -> None:
    """The failure policy lives in ``JobRun._fail``: a batch that reports a failed file rolls
    staging back (``on_failure="rollback"``), the view gets one summary, nothing is final."""
    source = _tree(tmp_path / "src")
    tracker = create_tracker(tmp_path / "tracker.db", job="up")

    async def half_fails(batch: Batch) -> dict[str, Any]:
        config = BulkUploadConfig(
            client=batch.client, bucket=batch.bucket, source_dir=source, tracker=tracker, prefix=batch.staging,
            entries=batch.entries[:1], skip_done=False,
        )
        stats = _stats(await bulk_upload(config))
        for rel, size, *_mtime in batch.entries[1:]:  # the engine "failed" the rest of the batch
            tracker.mark(batch.staging + rel, size, TransferStatus.error, "refused by the fake")
        tracker.flush()
        return {**stats, "errors": stats["errors"] + len(batch.entries) - 1}

    view = FakeView()
    staging = UploadStaging(bucket=hcp_bucket, prefix="arch/", source=source, policy=OnFailure.rollback)
    try:
        with pytest.raises(BulkTransferFailed, match="2 file\\(s\\) failed to upload.*refused by the fake"):
            await _run(tracker, hcp_client, staging, half_fails, view, "run-1").execute()
        ((outcome, result, reason),) = view.summaries
        assert outcome == "rolled back" and result["committed"] == 0 and "BulkTransferFailed" in (reason or "")
    finally:
        tracker.close()
    assert hcp_emulator.stored(hcp_bucket, "") == {}, "staging rolled back, nothing final"
