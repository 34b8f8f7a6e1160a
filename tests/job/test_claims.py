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


@pytest.mark.timeout(30)
async def test_drain_tries_each_key_once_and_remembers_only_what_is_not_done(tmp_path: Path) -> None:
    """A failed key is claimable again (status error) but this run never retries it; a deferred
    one stays pending. What the run remembers is those two keys, not the 30 it sent."""
    from rahcp_prefect.job import claims

    tracker = create_tracker(tmp_path / "t.db", job="coop")
    seen: list[str] = []
    remembered: list[int] = []
    real = tracker.statuses_of

    def statuses_of(keys: Any) -> dict[str, TransferStatus]:
        asked = list(keys)
        remembered.append(len(asked))
        return real(asked)

    try:
        tracker.register([(f"k{index:02d}", 1) for index in range(30)])
        tracker.flush()
        tracker.statuses_of = statuses_of  # type: ignore[method-assign]

        async def run_batch(claimed: list[tuple[str, int]]) -> dict[str, Any]:
            for key, size in claimed:
                seen.append(key)
                if key == "k03":
                    tracker.mark(key, size, TransferStatus.error, "refused")
                elif key != "k07":  # k07 deferred: left pending
                    tracker.mark(key, size, TransferStatus.done)
            tracker.flush()
            return {"ok": len(claimed)}

        await claims.drain_job(tracker, "run-1", run_batch, batch_size=8, lease_seconds=5, poll_seconds=0.05)
        assert sorted(seen) == sorted(set(seen)) and len(seen) == 30, "each key tried once"
        assert tracker.statuses_of(["k03", "k07", "k00", "nope"]) == {
            "k03": TransferStatus.error, "k07": TransferStatus.pending, "k00": TransferStatus.done,
        }
        assert max(remembered[:-1]) <= 8, "asked about one batch at a time, then about the 2 not done"
    finally:
        tracker.close()
