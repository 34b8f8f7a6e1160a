"""``statuses_of``: the statuses of a batch of keys, on both backends (buffered marks included)."""

from __future__ import annotations

from rahcp_prefect.tracker import TransferStatus
from rahcp_prefect.tracker.tables import DELETE_BATCH
from rahcp_prefect.tracker.protocol import TrackerProtocol


def test_statuses_of_answers_for_the_keys_asked_only(tracker: TrackerProtocol) -> None:
    keys = [f"k/{index:04d}é" for index in range(DELETE_BATCH + 7)]  # more than one chunk
    tracker.register([(key, 1) for key in keys])
    tracker.mark(keys[0], 1, TransferStatus.done)  # still buffered: flushed before the answer
    tracker.mark(keys[-1], 1, TransferStatus.error, "boom")
    found = tracker.statuses_of(iter([*keys, "not/there"]))
    assert len(found) == len(keys) and "not/there" not in found
    assert found[keys[0]] is TransferStatus.done and found[keys[-1]] is TransferStatus.error
    assert found[keys[1]] is TransferStatus.pending
    assert tracker.statuses_of([]) == {}
