"""Cooperative draining ends even when this run leaves keys pending (files it deferred)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from rahcp_prefect.job import drain_job
from rahcp_prefect.tracker import TransferStatus, create_tracker


@pytest.mark.timeout(30)
async def test_drain_ends_when_what_stays_pending_is_what_this_run_deferred(tmp_path: Path) -> None:
    tracker = create_tracker(tmp_path / "t.db", job="coop")
    try:
        tracker.register([("a", 1), ("b", 2), ("c", 3)])
        tracker.flush()

        async def run_batch(claimed: list[tuple[str, int]]) -> dict[str, Any]:
            for key, size in claimed:
                if key != "b":  # "b" changed while it was sent: deferred, left pending
                    tracker.mark(key, size, TransferStatus.done)
            tracker.flush()
            return {"ok": len(claimed) - 1, "changed_during_run": 1, "deferred": ["b"]}

        totals = await drain_job(tracker, "run-1", run_batch, batch_size=10, lease_seconds=5, poll_seconds=0.05)
        assert totals["ok"] == 2 and totals["changed_during_run"] == 1 and totals["deferred"] == ["b"]
        summary = tracker.summary()
        assert (summary.get("pending"), summary.get("done")) == (1, 2), "b is the next run's"
    finally:
        tracker.close()
