"""The data plane's stall watch: a request sent in one write that gets no answer fails after the
timeout and is retried (one timer for all requests, no timer per request); a cancellation from
elsewhere stays a cancellation. First on the watch alone, then on the emulator holding a PUT."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from rahcp_prefect.client import HCPClient, PresignedTransferError
from rahcp_prefect.client.stalls import StallWatch


async def _watched(watch: StallWatch, seconds: float) -> str:
    """A request that takes ``seconds``, under ``watch`` (as the data plane uses it)."""
    task = watch.start()
    try:
        await asyncio.sleep(seconds)
    except BaseException as exc:
        watch.finish(task, exc)
        raise
    watch.finish(task)
    return "answered"


@pytest.mark.timeout(30)
async def test_a_silent_request_fails_with_a_timeout_between_the_timeout_and_a_quarter_more() -> None:
    watch = StallWatch(0.4)
    started = time.monotonic()
    with pytest.raises(TimeoutError, match="no answer within 0.4 s"):
        await _watched(watch, 60)
    assert 0.4 <= time.monotonic() - started < 0.9
    assert watch.stalls == 1
    assert asyncio.current_task().cancelling() == 0  # the cancellation it used is taken back


@pytest.mark.timeout(30)
async def test_answered_requests_pass_and_leave_no_timer_behind() -> None:
    watch = StallWatch(0.4)
    assert await asyncio.gather(*(_watched(watch, 0.01) for _ in range(50))) == ["answered"] * 50
    await asyncio.sleep(0.25)  # the timer looked once more, found nothing and was not re-armed
    assert watch._timer is None and not watch._due and watch.stalls == 0


@pytest.mark.timeout(30)
async def test_a_cancellation_from_elsewhere_stays_a_cancellation() -> None:
    watch = StallWatch(5)
    request = asyncio.ensure_future(_watched(watch, 60))
    await asyncio.sleep(0.05)
    request.cancel()
    with pytest.raises(asyncio.CancelledError):
        await request
    assert watch.stalls == 0 and not watch._due


@pytest.mark.timeout(30)
async def test_a_cancellation_meeting_the_watchs_own_stays_a_cancellation() -> None:
    """The run is cancelled in the same moment the watch gives up on the request: the run's
    cancellation wins (no TimeoutError that a retry loop would swallow)."""
    watch = StallWatch(0.2)
    request = asyncio.ensure_future(_watched(watch, 60))
    while not watch.stalls:  # the watch has just cancelled it; it has not run since
        await asyncio.sleep(0)
    request.cancel()
    with pytest.raises(asyncio.CancelledError):
        await request


def test_the_timeout_must_be_positive() -> None:
    with pytest.raises(ValueError, match="timeout must be > 0"):
        StallWatch(0)


@pytest.mark.timeout(60)
async def test_a_put_the_store_never_answers_is_retried_after_the_timeout_and_lands_once(
    hcp_credentials: dict, hcp_emulator: Any, hcp_bucket: str
) -> None:
    """The emulator holds the first PUT (it never answers); the data plane gives up on it after
    its timeout, sends it again and the object is stored."""
    async with HCPClient(**hcp_credentials, timeout=1.0, retry_base_delay=0.01, max_retries=2) as client:
        url = await client.s3.presign_put(hcp_bucket, "held")
        rule = hcp_emulator.faults.add("data", method="PUT", path=r"/held$", hold=True, count=1)
        started = time.monotonic()
        sent = await client.data.put_bytes(url, b"payload", what=f"{hcp_bucket}/held")
        elapsed = time.monotonic() - started
        rule.release()  # the held request is dropped, never stored late
        assert 1.0 <= elapsed < 5
        assert client.data.retries == 1 and client.data.stalls.stalls == 1
    stored = hcp_emulator.s3.get_object(Bucket=hcp_bucket, Key="held")
    assert stored["Body"].read() == b"payload" and stored["ETag"] == sent.etag


@pytest.mark.timeout(60)
async def test_a_store_that_never_answers_fails_the_put_naming_the_timeout(
    hcp_credentials: dict, hcp_emulator: Any, hcp_bucket: str
) -> None:
    async with HCPClient(**hcp_credentials, timeout=0.5, retry_base_delay=0.01, max_retries=2) as client:
        url = await client.s3.presign_put(hcp_bucket, "never")
        rule = hcp_emulator.faults.add("data", method="PUT", path=r"/never$", hold=True, count=None)
        started = time.monotonic()
        with pytest.raises(PresignedTransferError, match="no answer within 0.5 s") as info:
            await client.data.put_bytes(url, b"payload", what=f"{hcp_bucket}/never")
        elapsed = time.monotonic() - started
        rule.release()
        assert "X-Amz" not in str(info.value)
        assert 1.5 <= elapsed < 10  # three attempts of 0.5 s at least
        assert client.data.stalls.stalls == 3


@pytest.mark.timeout(60)
async def test_a_small_get_the_store_never_answers_is_watched_and_retried(
    hcp_credentials: dict, hcp_emulator: Any, hcp_bucket: str
) -> None:
    """A GET whose expected size fits one chunk is watched like a one-write PUT (no timer per
    read): held by the emulator, it is given up after the timeout and fetched again. Without a
    size (or above a chunk) it keeps aiohttp's per-read timeout, which also ends a silent
    answer but follows a long stream's progress."""
    hcp_emulator.s3.put_object(Bucket=hcp_bucket, Key="held", Body=b"payload")
    async with HCPClient(**hcp_credentials, timeout=1.0, retry_base_delay=0.01, max_retries=2) as client:
        url = await client.s3.presign_get(hcp_bucket, "held")
        for size, watched in ((7, 1), (None, 0)):
            stalls, retries = client.data.stalls.stalls, client.data.retries
            rule = hcp_emulator.faults.add("data", method="GET", path=r"/held$", hold=True, count=1)
            started = time.monotonic()
            body = await client.data.get_bytes(url, what=f"{hcp_bucket}/held", size=size)
            elapsed = time.monotonic() - started
            rule.release()
            assert body == b"payload" and 1.0 <= elapsed < 5
            assert client.data.retries - retries == 1
            assert client.data.stalls.stalls - stalls == watched
