"""Cooperative draining ends even when this run leaves keys pending (files it deferred, or
files that wait for their retention's next try), and no claim hands out a waiting retained file."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from rahcp_prefect.job import drain_job
from rahcp_prefect.tracker import TransferStatus, create_tracker
from rahcp_prefect.tracker.retained import RetainedFile


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


STAGED = ".rahcp-staging/run-1/"


def test_a_claim_leaves_a_retained_file_out_until_its_next_try(open_tracker: Any) -> None:
    """A file whose archived object refused its new bytes (retention, hold) waits in the
    tracker (``error``, its next try noted): no cooperative run claims it before that time."""
    tracker = open_tracker()
    other = open_tracker(job=tracker.job + "-other")
    keys = [STAGED + name for name in ("a.txt", "b.txt", "c.txt")]
    tracker.register([(key, 1) for key in keys])
    tracker.mark(keys[1], 1, TransferStatus.error, "retained")
    tracker.flush()
    ahead = time.time() + 3600
    tracker.note_retained([(keys[1], RetainedFile(ahead, 1, ahead))])
    other.note_retained([(keys[0], RetainedFile(ahead, 1, ahead))])  # another job's: no say here

    assert sorted(key for key, _ in tracker.claim("run-2", 10, 60)) == [keys[0], keys[2]]
    assert tracker.claim("run-3", 10, 60) == [], "the retained file waits, the others are leased"

    tracker.note_retained([(keys[1], RetainedFile(None, 2, time.time() - 1))])  # its next try has come
    assert tracker.claim("run-3", 10, 60) == [(keys[1], 1)]


@pytest.mark.timeout(30)
async def test_drain_ends_when_what_stays_pending_waits_for_its_retention(open_tracker: Any) -> None:
    """A key registered pending by one run while another noted it retained is claimed by no
    one before its next try: the draining run ends instead of waiting for it."""
    tracker = open_tracker()
    keys = [STAGED + "a.txt", STAGED + "b.txt"]
    tracker.register([(key, 1) for key in keys])
    tracker.flush()
    ahead = time.time() + 3600
    tracker.note_retained([(keys[1], RetainedFile(ahead, 1, ahead))])
    sent: list[str] = []

    async def run_batch(claimed: list[tuple[str, int]]) -> dict[str, Any]:
        for key, size in claimed:
            sent.append(key)
            tracker.mark(key, size, TransferStatus.done)
        tracker.flush()
        return {"ok": len(claimed)}

    totals = await drain_job(tracker, "run-1", run_batch, batch_size=10, lease_seconds=5, poll_seconds=0.05)
    assert sent == [keys[0]] and totals["ok"] == 1
    assert tracker.statuses_of(keys) == {keys[0]: TransferStatus.done, keys[1]: TransferStatus.pending}
