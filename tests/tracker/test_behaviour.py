"""The tracker's behaviour, identical on every backend (parametrised: sqlite, postgres)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from rahcp_prefect.tracker import (
    InvalidKeyError,
    JobState,
    TrackerClosedError,
    TrackerConfigError,
    TrackerProtocol,
    TransferStatus,
)

from tests.tracker.helpers import race

OpenTracker = Callable[..., Any]
done, error, pending = TransferStatus.done, TransferStatus.error, TransferStatus.pending


# -- per-key results ---------------------------------------------------------------------
def test_implements_the_protocol(tracker: TrackerProtocol) -> None:
    assert isinstance(tracker, TrackerProtocol)


def test_mark_and_query(tracker: TrackerProtocol) -> None:
    tracker.mark("a.jpg", 10, done, etag='"e-a"', verified=True, validated=True)
    tracker.mark("b.jpg", 20, done, etag='"e-b"')
    tracker.mark("c.jpg", 30, error, "SSL timeout")
    tracker.mark("d.jpg", 40, pending)

    assert tracker.done_keys() == {"a.jpg", "b.jpg"}
    assert tracker.error_entries() == [("c.jpg", 30)]
    assert tracker.error_details() == [("c.jpg", "SSL timeout")]
    assert tracker.summary() == {"pending": 1, "done": 2, "error": 1}
    assert tracker.unverified_keys() == [("b.jpg", 20, '"e-b"')]
    assert tracker.unvalidated_keys() == [("b.jpg", 20)]


def test_summary_of_an_empty_job_has_every_status(tracker: TrackerProtocol) -> None:
    assert tracker.summary() == {"pending": 0, "done": 0, "error": 0}
    assert tracker.done_keys() == set()


def test_later_mark_wins_in_buffer_and_in_database(open_tracker: OpenTracker) -> None:
    tracker = open_tracker(flush_every=1000)
    tracker.mark("k", 1, error, "first")
    tracker.mark("k", 2, done, etag="x")  # same buffer
    assert tracker.summary() == {"pending": 0, "done": 1, "error": 0}
    tracker.mark("k", 3, error, "again")  # overwrites the stored row
    assert tracker.error_entries() == [("k", 3)]
    assert tracker.error_details() == [("k", "again")]
    assert tracker.done_keys() == set()


def test_marks_are_buffered_until_flush(open_tracker: OpenTracker) -> None:
    writer = open_tracker(flush_every=1000)
    reader = open_tracker()
    for i in range(10):
        writer.mark(f"k{i}", i, done)
    assert reader.done_keys() == set(), "marks reached the database before flush"
    writer.flush()
    assert reader.done_keys() == {f"k{i}" for i in range(10)}


def test_flush_every_writes_without_flush(open_tracker: OpenTracker) -> None:
    writer = open_tracker(flush_every=5)
    reader = open_tracker()
    for i in range(12):
        writer.mark(f"k{i}", i, done)
    assert len(reader.done_keys()) == 10  # two flushes of 5; two marks still buffered
    writer.close()
    assert len(reader.done_keys()) == 12  # close flushes


def test_commit_is_a_deprecated_name_of_flush(open_tracker: OpenTracker) -> None:
    writer = open_tracker(flush_every=1000)
    reader = open_tracker()
    writer.mark("k", 1, done)
    with pytest.warns(DeprecationWarning, match=r"tracker\.flush\(\)"):
        writer.commit()
    assert reader.done_keys() == {"k"}


def test_close_makes_the_tracker_unusable(tracker: TrackerProtocol) -> None:
    tracker.close()
    tracker.close()  # idempotent
    with pytest.raises(TrackerClosedError):
        tracker.mark("k", 1, done)
    with pytest.raises(TrackerClosedError):
        tracker.summary()


def test_context_manager_flushes(open_tracker: OpenTracker) -> None:
    with open_tracker() as tracker:
        tracker.mark("k", 1, done)
    assert open_tracker().done_keys() == {"k"}


def test_delete_forgets_stored_and_buffered_marks(tracker: TrackerProtocol) -> None:
    tracker.mark("stored", 1, done)
    tracker.flush()
    tracker.mark("buffered", 1, done)
    tracker.delete("stored")
    tracker.delete("buffered")
    tracker.delete("never-there")
    assert tracker.done_keys() == set()


def test_mark_rejects_unknown_status(tracker: TrackerProtocol) -> None:
    with pytest.raises(ValueError, match="status"):
        tracker.mark("k", 1, "finished")  # type: ignore[arg-type]
    tracker.mark("k", 1, "done")  # type: ignore[arg-type]  # the enum's value is accepted
    assert tracker.done_keys() == {"k"}


def test_sizes_above_4_gib_round_trip(tracker: TrackerProtocol) -> None:
    tracker.mark("big.tar", 5 * 2**40, error, "too big")
    assert tracker.error_entries() == [("big.tar", 5 * 2**40)]


def test_reopen_sees_previous_run(open_tracker: OpenTracker) -> None:
    first = open_tracker()
    first.mark("a", 1, done)
    first.mark("b", 2, error, "x")
    first.close()
    rerun = open_tracker()
    assert rerun.done_keys() == {"a"}
    assert rerun.error_entries() == [("b", 2)]


# -- jobs --------------------------------------------------------------------------------
def test_jobs_do_not_touch_each_others_keys(open_tracker: OpenTracker, tracker_job: str) -> None:
    one = open_tracker(f"{tracker_job}-one")
    two = open_tracker(f"{tracker_job}-two")
    one.mark("same/key", 1, done)
    two.mark("same/key", 2, error, "failed in job two")
    one.mark("only/one", 3, done)
    two.delete("only/one")  # not job two's key: must not delete job one's row
    assert one.done_keys() == {"same/key", "only/one"}
    assert two.done_keys() == set()
    assert two.error_entries() == [("same/key", 2)]
    assert one.summary() == {"pending": 0, "done": 2, "error": 0}
    assert two.summary() == {"pending": 0, "done": 0, "error": 1}


def test_delete_job_removes_only_that_job(open_tracker: OpenTracker, tracker_job: str) -> None:
    one = open_tracker(f"{tracker_job}-one")
    two = open_tracker(f"{tracker_job}-two")
    for tracker in (one, two):
        tracker.mark("k", 1, done)
        tracker.update_job(state=JobState.open)
    assert one.delete_job() == 1
    assert one.done_keys() == set() and one.job_info() is None
    assert two.done_keys() == {"k"} and two.job_info() is not None


# -- claims ------------------------------------------------------------------------------
def test_register_is_idempotent(tracker: TrackerProtocol) -> None:
    assert tracker.register([("a", 1), ("b", 2), ("c", 3)]) == 3
    assert tracker.register([("a", 1), ("b", 2), ("d", 4)]) == 1
    assert tracker.summary() == {"pending": 4, "done": 0, "error": 0}


def test_register_keeps_existing_outcomes(tracker: TrackerProtocol) -> None:
    tracker.mark("a", 1, done)
    tracker.mark("b", 2, error, "x")
    assert tracker.register([("a", 1), ("b", 2), ("c", 3)]) == 1
    assert tracker.summary() == {"pending": 1, "done": 1, "error": 1}


def test_claims_hand_out_each_key_once(open_tracker: OpenTracker) -> None:
    first, second = open_tracker(), open_tracker()
    first.register((f"k{i:03}", i) for i in range(100))
    got_a = first.claim("run-a", 30, 60)
    got_b = second.claim("run-b", 100, 60)
    assert len(got_a) == 30 and len(got_b) == 70
    assert {k for k, _ in got_a}.isdisjoint(k for k, _ in got_b)
    assert dict(got_a + got_b) == {f"k{i:03}": i for i in range(100)}
    assert first.claim("run-c", 10, 60) == []


def test_done_keys_are_never_handed_out_again(tracker: TrackerProtocol) -> None:
    tracker.register([("a", 1), ("b", 2)])
    tracker.mark("a", 1, done)
    assert tracker.claim("run", 10, 0.3) == [("b", 2)]  # flushes the buffered mark first
    time.sleep(0.5)  # b's lease expires; a stays done
    assert tracker.claim("other", 10, 60) == [("b", 2)]


def test_expired_lease_makes_keys_claimable_again(open_tracker: OpenTracker) -> None:
    dead, alive = open_tracker(), open_tracker()
    dead.register([("a", 1), ("b", 2)])
    assert len(dead.claim("dead-run", 10, 0.5)) == 2
    assert alive.claim("alive-run", 10, 60) == []
    time.sleep(0.8)
    assert sorted(alive.claim("alive-run", 10, 60)) == [("a", 1), ("b", 2)]
    assert dead.renew("dead-run", 60) == 0  # it lost them: renew cannot take them back


def test_renew_keeps_keys_past_the_first_lease(open_tracker: OpenTracker) -> None:
    holder, other = open_tracker(), open_tracker()
    holder.register([("a", 1), ("b", 2), ("c", 3)])
    holder.claim("holder", 2, 0.6)
    for _ in range(3):
        time.sleep(0.3)
        assert holder.renew("holder", 0.6) == 2
    holder.mark("a", 1, done)
    assert holder.renew("holder", 0.6) == 1  # a is done: only b is still held
    assert [k for k, _ in other.claim("other", 10, 60)] == ["c"]


def test_release_gives_back_unfinished_keys(open_tracker: OpenTracker) -> None:
    holder, other = open_tracker(), open_tracker()
    holder.register([("a", 1), ("b", 2), ("c", 3)])
    assert len(holder.claim("holder", 10, 60)) == 3
    holder.mark("a", 1, done)  # buffered: release must flush it first
    assert holder.release("holder") == 2
    assert sorted(other.claim("other", 10, 60)) == [("b", 2), ("c", 3)]
    assert holder.release("holder") == 0


def test_error_keys_are_retried_after_their_lease(open_tracker: OpenTracker) -> None:
    worker, other = open_tracker(), open_tracker()
    worker.register([("bad", 1), ("good", 2)])
    worker.claim("w", 10, 0.5)
    worker.mark("bad", 1, error, "boom")
    worker.mark("good", 2, done)
    worker.flush()
    assert other.claim("o", 10, 60) == []  # still under w's lease: no hot retry loop
    time.sleep(0.7)
    assert other.claim("o", 10, 60) == [("bad", 1)]


# -- job state and the commit lock -----------------------------------------------------------
def test_job_info_before_and_after_update(tracker: TrackerProtocol) -> None:
    assert tracker.job_info() is None
    info = tracker.update_job(bucket="bkt", staging_prefix="stage/", final_prefix="final/")
    assert (info.job, info.state, info.bucket) == (tracker.job, JobState.open, "bkt")
    assert info.updated_at is not None and info.updated_at.tzinfo is not None
    info = tracker.update_job(state=JobState.committing)
    assert info.state == JobState.committing
    assert (info.bucket, info.staging_prefix, info.final_prefix) == ("bkt", "stage/", "final/")
    assert tracker.job_info() == info


def test_list_jobs_filters_by_state(open_tracker: OpenTracker, tracker_job: str) -> None:
    a = open_tracker(f"{tracker_job}-a")
    b = open_tracker(f"{tracker_job}-b")
    a.update_job(state=JobState.committed)
    b.update_job(state=JobState.committing, staging_prefix="s/")
    committing = [j.job for j in a.list_jobs(JobState.committing)]
    assert b.job in committing and a.job not in committing
    assert {a.job, b.job} <= {j.job for j in a.list_jobs()}


def test_commit_lock_has_one_holder(open_tracker: OpenTracker) -> None:
    one, two = open_tracker(), open_tracker()
    assert one.acquire_commit("run-1", 60)
    assert not two.acquire_commit("run-2", 60)
    assert one.acquire_commit("run-1", 60)  # the holder renews
    assert two.job_info().commit_owner == "run-1"
    two.release_commit("run-2")  # not the holder: no effect
    assert not two.acquire_commit("run-2", 60)
    one.release_commit("run-1")
    assert two.acquire_commit("run-2", 60)
    assert one.job_info().commit_owner == "run-2"


def test_commit_lock_expires(open_tracker: OpenTracker) -> None:
    one, two = open_tracker(), open_tracker()
    one.update_job(state=JobState.committing)
    assert one.acquire_commit("crashed-run", 0.4)
    assert not two.acquire_commit("next-run", 60)
    assert one.job_info().commit_owner == "crashed-run"
    time.sleep(0.6)
    assert one.job_info().commit_owner is None  # an expired lock has no holder
    assert two.acquire_commit("next-run", 60)
    assert two.job_info().state == JobState.committing  # the lock never changes the state


def test_commit_lock_race_has_exactly_one_winner(open_tracker: OpenTracker) -> None:
    trackers = [open_tracker() for _ in range(6)]
    wins = race(trackers, lambda tracker, owner: tracker.acquire_commit(owner, 60))
    assert len(wins) == 1
    assert trackers[0].job_info().commit_owner == wins[0]


# -- keys: unicode, refused input, huge sets ---------------------------------------------------
UNICODE_KEYS = [
    "emoji/🙂🚀👩‍👩‍👧.jpg",
    "cjk/漢字かなカナ한국어.tif",
    "rtl/שלום/مرحبا.txt",
    "combining/e\u0301 vs \u00e9",  # two different keys that look alike
    "combining/e\u0301 vs \u00e9 ",
    "controls/new\nline\ttab\rcr\x1b\x7f",
    "quotes/it's \"quoted\" `back` \\slash\\ %25 %s {}",
    "spaces/  leading and trailing  ",
    "astral/\U0001f600\U00010348\U000e0001",
    "bom/\ufeffzero\u200bwidth",
    "x" * 1024,  # S3's longest key
    "é" * 600,  # 1200 bytes of UTF-8: the limit
]


def test_unicode_keys_round_trip(open_tracker: OpenTracker) -> None:
    writer = open_tracker()
    for i, key in enumerate(UNICODE_KEYS):
        writer.mark(key, i, done if i % 2 == 0 else error, f"error of {key}", etag=key)
    writer.close()
    reader = open_tracker()
    assert reader.done_keys() == set(UNICODE_KEYS[0::2])
    assert reader.error_entries() == sorted((k, i) for i, k in enumerate(UNICODE_KEYS) if i % 2)
    assert dict(reader.error_details()) == {k: f"error of {k}" for k in UNICODE_KEYS[1::2]}
    assert {k: e for k, _, e in reader.unverified_keys()} == {k: k for k in UNICODE_KEYS[0::2]}


def test_unicode_keys_are_claimed_and_deleted(tracker: TrackerProtocol) -> None:
    assert tracker.register((k, len(k)) for k in UNICODE_KEYS) == len(UNICODE_KEYS)
    assert sorted(tracker.claim("run-🙂", 100, 60)) == sorted((k, len(k)) for k in UNICODE_KEYS)
    for key in UNICODE_KEYS:
        tracker.delete(key)
    assert tracker.summary() == {"pending": 0, "done": 0, "error": 0}


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        ("nul\x00inside", "NUL"),
        ("\x00", "NUL"),
        ("", "empty"),
        ("bad-utf8-\udcff.jpg", "UTF-8"),  # os.fsdecode of an undecodable file name
        ("x" * 1201, "bytes"),
        ("é" * 601, "bytes"),
    ],
)
def test_unstorable_keys_are_refused_clearly(tracker: TrackerProtocol, key: str, reason: str) -> None:
    for call in (
        lambda: tracker.mark(key, 1, done),
        lambda: tracker.register([("fine", 1), (key, 1)]),
        lambda: tracker.delete(key),
    ):
        with pytest.raises(InvalidKeyError, match=reason):
            call()
    tracker.flush()  # nothing bad was buffered
    assert tracker.done_keys() == set()


def test_claims_and_the_commit_lock_refuse_bad_arguments(tracker: TrackerProtocol) -> None:
    tracker.register([("k", 1)])
    with pytest.raises(InvalidKeyError, match="owner"):
        tracker.claim("", 10, 60)
    with pytest.raises(TrackerConfigError, match="limit"):
        tracker.claim("run-1", 0, 60)
    with pytest.raises(TrackerConfigError, match="lease_seconds"):
        tracker.claim("run-1", 10, -1)
    with pytest.raises(InvalidKeyError, match="owner"):
        tracker.acquire_commit("own\x00er", 60)
    with pytest.raises(TrackerConfigError, match="lease_seconds"):
        tracker.acquire_commit("run-1", 0)
    assert tracker.claim("run-1", 10, 60) == [("k", 1)], "nothing was leased by the refused calls"
    assert tracker.acquire_commit("run-1", 60)


def test_unstorable_job_names_are_refused(open_tracker: OpenTracker) -> None:
    with pytest.raises(InvalidKeyError, match="job"):
        open_tracker("job\x00name")


def test_error_text_with_nul_is_kept_not_refused(tracker: TrackerProtocol) -> None:
    tracker.mark("k", 1, error, "driver said \x00 and \udcff")
    assert tracker.error_details() == [("k", "driver said \\x00 and \\udcff")]


def test_huge_key_sets_go_in_batches(open_tracker: OpenTracker) -> None:
    tracker = open_tracker(flush_every=1000)
    observer = open_tracker()
    n = 60_000
    seen_mid_stream: list[int] = []

    def manifest():
        for i in range(n):
            if i == 40_000:  # earlier batches are already in the database: nothing is held back
                seen_mid_stream.append(observer.summary()["pending"])
            yield f"dir{i % 97}/file-{i:06}.bin", i

    assert tracker.register(manifest()) == n
    assert seen_mid_stream and seen_mid_stream[0] >= 30_000
    for i in range(0, n, 2):
        tracker.mark(f"dir{i % 97}/file-{i:06}.bin", i, done)
    for i in range(1, 20_000, 2):
        tracker.mark(f"dir{i % 97}/file-{i:06}.bin", i, error, "x")
    assert len(tracker.done_keys()) == n // 2
    assert len(tracker.error_entries()) == 10_000
    assert tracker.summary() == {"pending": 20_000, "done": 30_000, "error": 10_000}
    claimed: set[str] = set()
    while batch := tracker.claim("drain", 7_000, 60):
        claimed.update(k for k, _ in batch)
    assert len(claimed) == 30_000  # pending + error keys, each once


def test_a_forked_child_cannot_use_or_break_the_parents_tracker(tracker: TrackerProtocol) -> None:
    import os

    tracker.mark("before-fork", 1, done)
    tracker.flush()
    pid = os.fork()
    if pid == 0:  # child: refused clearly, and closing must not touch the parent's connections
        code = 4
        try:
            tracker.summary()
        except TrackerClosedError as exc:
            code = 3 if "open one tracker per process" in str(exc) else 5
        finally:
            tracker.close()
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 3
    tracker.mark("after-fork", 1, done)
    assert tracker.done_keys() == {"before-fork", "after-fork"}


def test_open_job_first_staging_wins_and_rollback_reopens(open_tracker: OpenTracker) -> None:
    first, second = open_tracker(), open_tracker()
    a = first.open_job(bucket="b", staging_prefix="stage/run-a/", final_prefix="final/")
    b = second.open_job(bucket="b", staging_prefix="stage/run-b/", final_prefix="final/")
    assert a.staging_prefix == b.staging_prefix == "stage/run-a/"
    assert b.state == JobState.open
    first.update_job(state=JobState.committed)
    again = second.open_job(bucket="b", staging_prefix="stage/run-c/", final_prefix="final/")
    assert again.staging_prefix == "stage/run-a/" and again.state == JobState.committed
    first.update_job(state=JobState.rolled_back)
    reopened = second.open_job(bucket="b", staging_prefix="stage/run-d/", final_prefix="final/")
    assert reopened.staging_prefix == "stage/run-d/" and reopened.state == JobState.open


def test_done_entries_maps_done_keys_to_sizes(tracker: TrackerProtocol) -> None:
    tracker.mark("a", 10, TransferStatus.done)
    tracker.mark("b", 20, TransferStatus.error, "boom")
    tracker.mark("c/ü", 0, TransferStatus.done)
    assert tracker.done_entries() == {"a": 10, "c/ü": 0}


# -- modification times as sent, and forgetting many keys ------------------------------------
def test_mtime_ns_is_stored_by_mark_and_register(open_tracker: OpenTracker) -> None:
    writer, reader = open_tracker(), open_tracker()
    big = 1_733_000_000_123_456_789  # a 2024 mtime in ns: past 2**53, must round-trip exactly
    writer.mark("sent.bin", 10, done, mtime_ns=big)
    writer.mark("failed.bin", 20, error, "boom", mtime_ns=big + 1)
    writer.mark("unknown.bin", 30, done)
    writer.register([("listed.bin", 40, big + 2), ("old-style.bin", 50)])
    writer.flush()
    assert reader.entries() == {
        "sent.bin": (10, big, done),
        "failed.bin": (20, big + 1, error),
        "unknown.bin": (30, None, done),
        "listed.bin": (40, big + 2, pending),
        "old-style.bin": (50, None, pending),
    }
    assert reader.entries(done) == {"sent.bin": (10, big, done), "unknown.bin": (30, None, done)}
    entry = reader.entries(done)["sent.bin"]
    assert (entry.size, entry.mtime_ns, entry.status) == (10, big, done)


def test_a_later_mark_replaces_the_mtime(tracker: TrackerProtocol) -> None:
    tracker.mark("f", 1, done, mtime_ns=100)
    tracker.flush()
    tracker.mark("f", 2, done, mtime_ns=200)  # the file changed and was sent again
    assert tracker.entries() == {"f": (2, 200, done)}
    tracker.register([("f", 3, 300)])  # register never touches a known key
    assert tracker.entries() == {"f": (2, 200, done)}


def test_mtime_must_be_an_int(tracker: TrackerProtocol) -> None:
    with pytest.raises(ValueError, match="mtime_ns"):
        tracker.mark("f", 1, done, mtime_ns=1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="mtime_ns"):
        tracker.register([("f", 1, "yesterday")])  # type: ignore[list-item]


def test_delete_keys_forgets_only_those_keys(open_tracker: OpenTracker) -> None:
    tracker = open_tracker(flush_every=10_000)
    for i in range(1200):
        tracker.mark(f"k{i:04d}", i, done)
    tracker.flush()
    tracker.mark("buffered", 1, done)
    doomed = [f"k{i:04d}" for i in range(0, 1200, 2)] + ["buffered", "never-stored"]
    assert tracker.delete_keys(iter(doomed)) == 600
    assert tracker.done_keys() == {f"k{i:04d}" for i in range(1, 1200, 2)}


def test_iter_done_pages_through_one_prefix_in_key_order(tracker: TrackerProtocol) -> None:
    done, error = TransferStatus.done, TransferStatus.error
    keys = ["p/a", "p/a-b", "p/a/b", "p/a0", "p/z z", "p/ü", "p/😀", "p0/x", "o/x"]
    for index, key in enumerate(keys):
        tracker.mark(key, index, done, mtime_ns=1_733_000_000_000_000_000 + index)
    tracker.mark("p/failed", 1, error, "boom", mtime_ns=5)
    tracker.mark("p/no-mtime", 2, done)
    got = list(tracker.iter_done("p/", page_size=2))  # pages of 2: the keyset paging is used
    expected = sorted([k for k in keys if k.startswith("p/")] + ["p/no-mtime"], key=lambda k: k.encode())
    assert [key for key, _, _ in got] == expected  # UTF-8 byte order, as S3 and the scanner
    assert ("p/ü", 5, 1_733_000_000_000_000_005) in got and ("p/no-mtime", 2, None) in got
    assert [key for key, _, _ in tracker.iter_done()][-1] == "p0/x"
    assert list(tracker.iter_done("q/")) == []
