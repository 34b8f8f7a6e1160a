"""The checks that walk the job's records and a listing in step (``job.merge``), on both tracker
backends against the emulator: every kind of problem found, in key order, the rest counted."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from rahcp_prefect.job import plan_staging, verify_staging
from rahcp_prefect.job.errors import StagingVerificationError
from rahcp_prefect.job.merge import SHOWN, Problems, outer_join
from rahcp_prefect.tracker import TransferStatus

OpenTracker = Callable[..., Any]
done = TransferStatus.done


async def _stream(items: list[tuple[str, int]]) -> AsyncIterator[tuple[str, int]]:
    for item in items:
        yield item


async def test_outer_join_pairs_two_sorted_streams_by_key() -> None:
    left = [("a", 1), ("c", 3), ("é", 5), ("\U0001f600", 6)]
    right = [("b", 20), ("c", 30), ("z", 40), ("\U0001f600", 60)]
    joined = [row async for row in outer_join(_stream(left), iter(right))]
    assert joined == [
        ("a", 1, None), ("b", None, 20), ("c", 3, 30), ("z", None, 40), ("é", 5, None), ("\U0001f600", 6, 60),
    ]
    assert [row async for row in outer_join(_stream([]), iter(right[:1]))] == [("b", None, 20)]


def test_problems_name_the_first_and_count_the_rest() -> None:
    problems = Problems()
    assert not problems
    for index in range(SHOWN + 3):
        problems.add(f"k{index}: wrong")
    assert problems.count == SHOWN + 3 and len(problems.shown) == SHOWN
    assert problems.text().endswith("k4: wrong (and 3 more)")


async def test_the_staging_check_walks_staging_the_records_and_the_final_prefix_in_step(
    open_tracker: OpenTracker, hcp_emulator: Any, hcp_client: Any, hcp_bucket: str
) -> None:
    tracker = open_tracker()
    plan = plan_staging(tracker, hcp_bucket, "final/", "run-1")
    staging = plan.staging_prefix
    for name in ("a", "c", "d", "é"):  # staged and recorded (d with another size)
        hcp_emulator.s3.put_object(Bucket=hcp_bucket, Key=staging + name, Body=b"12")
    hcp_emulator.s3.put_object(Bucket=hcp_bucket, Key="final/b", Body=b"123")  # committed earlier
    hcp_emulator.s3.put_object(Bucket=hcp_bucket, Key="final/f", Body=b"1")  # committed, other size
    for name, size in (("a", 2), ("b", 3), ("c", 2), ("é", 2), ("d", 5), ("f", 4), ("g", 1)):
        tracker.mark(staging + name, size, done)
    tracker.mark("elsewhere/x", 1, done)  # another prefix: not this check's
    tracker.flush()
    hcp_emulator.s3.put_object(Bucket=hcp_bucket, Key=staging + "e", Body=b"1")  # staged, never recorded
    with pytest.raises(StagingVerificationError) as caught:
        await verify_staging(hcp_client, tracker, plan)
    message = str(caught.value)
    assert "failed for 4 key(s)" in message
    named = [part.split(": ", 1)[0] for part in message.split(": ", 1)[1].split("; ")]
    assert named == [staging + name for name in ("d", "e", "f", "g")]  # key order
    assert f"{staging}d: 2 bytes in staging, 5 recorded" in message
    assert f"{staging}e: in staging but not recorded as done" in message
    assert f"{staging}g: recorded as done but neither staged nor committed" in message
    for name in ("d", "e", "f", "g"):
        hcp_emulator.s3.delete_object(Bucket=hcp_bucket, Key=staging + name)
        tracker.delete(staging + name)
    tracker.flush()
    assert await verify_staging(hcp_client, tracker, plan) == 3  # a, c, é wait; b was committed


async def test_the_final_check_streams_without_the_jobs_records_in_hand(
    open_tracker: OpenTracker, hcp_emulator: Any, hcp_client: Any, hcp_bucket: str
) -> None:
    """``check_final`` merges the final listing with ``iter_done_digests``: each kind of
    problem found, an object that is not the job's ignored."""
    import hashlib

    from rahcp_prefect.job import check_final

    tracker = open_tracker()
    plan = plan_staging(tracker, hcp_bucket, "final/", "run-1")
    bodies = {"a": b"aa", "b": b"bbb", "c": b"c", "é": b"e", "z": b"zz"}
    for name, body in bodies.items():
        tracker.mark(plan.staging_prefix + name, len(body), done, md5=hashlib.md5(body).hexdigest())
    tracker.mark("elsewhere/x", 1, done)
    tracker.flush()
    hcp_emulator.s3.put_object(Bucket=hcp_bucket, Key="final/a", Body=b"aa")
    hcp_emulator.s3.put_object(Bucket=hcp_bucket, Key="final/b", Body=b"bb")  # other size
    hcp_emulator.s3.put_object(Bucket=hcp_bucket, Key="final/c", Body=b"x")  # other bytes, same size
    hcp_emulator.s3.put_object(Bucket=hcp_bucket, Key="final/extra", Body=b"1")  # not the job's
    hcp_emulator.s3.put_object(Bucket=hcp_bucket, Key="final/é", Body=b"e")
    streamed = await check_final(hcp_client, tracker, plan)
    assert streamed.checked == 5
    assert streamed.missing == ["final/z"]
    assert streamed.wrong_size == [("final/b", 2, 3)]
    assert [key for key, _, _ in streamed.wrong_md5] == ["final/c"]
    assert list(tracker.iter_done_digests(plan.staging_prefix, page_size=2))[0][1].size == 2


def test_the_audit_merges_objects_in_key_order_with_what_is_expected() -> None:
    """``StreamedAudit``: matches counted, every kind of problem named; ``InOrder`` hands over
    results that finished in any order in the order their keys came."""
    from rahcp_prefect.bulk.verify import InOrder, ObjectDigest
    from rahcp_prefect.job.audit import StreamedAudit

    expected = [("a", "AA"), ("b", "bb"), ("d", "dd"), ("e", "ee"), ("g", "gg")]
    audit = StreamedAudit(iter(expected), "tracker")
    order = InOrder(audit.hashed)
    keys = ["a", "b", "c", "e", "f"]
    for key in keys:
        order.admit(key)
    digest = {"a": "aa", "b": "xx", "c": "cc", "f": "ff"}
    for key in ["e", "c", "a", "b"]:  # finished out of order; "f" never handled
        order.done(key, ObjectDigest(1, digest[key], None) if key != "e" else None, "boom" if key == "e" else None)
    order.finish()
    report = audit.finish()
    assert (report.expected, report.matches) == (5, 1)
    assert report.mismatches == [("b", "bb", "xx")]
    assert report.missing == ["d", "g"] and report.extra == ["c", "f"]
    assert report.unreadable == {"e": "boom"} and not report.ok
