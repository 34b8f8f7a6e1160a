"""The job lease as a run holds it (``rahcp_prefect.job.lease``): wait or fail when busy, never
mix modes, renewed past its first lease, released at the end, lost when another run took it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest

from rahcp_prefect.job import (
    JobBusyError,
    JobLeaseLostError,
    JobModeError,
    LeaseMode,
    hold_job,
    lease_mode,
    parse_on_busy,
    parse_on_failure,
    take_job,
)

OpenTracker = Callable[..., Any]


async def test_a_second_run_waits_for_the_holder_then_takes_the_job(open_tracker: OpenTracker) -> None:
    first, second = open_tracker(), open_tracker()
    order: list[str] = []

    async def holder() -> None:
        async with hold_job(first, "run-1", LeaseMode.single, 30):
            order.append("run-1 holds")
            await asyncio.sleep(1.0)
            order.append("run-1 ends")

    task = asyncio.create_task(holder())
    while not order:
        await asyncio.sleep(0.01)
    lease = await take_job(second, "run-2", LeaseMode.single, 30, poll_seconds=0.05)
    order.append("run-2 holds")
    await task
    assert order == ["run-1 holds", "run-1 ends", "run-2 holds"]
    assert lease.waited_for == "run-1"
    assert second.job_info().lease_owner == "run-2"


async def test_on_busy_fail_names_the_holder_at_once(open_tracker: OpenTracker) -> None:
    first, second = open_tracker(), open_tracker()
    async with hold_job(first, "run-1", LeaseMode.single, 30):
        started = time.monotonic()
        with pytest.raises(JobBusyError, match=r"held by run run-1 \(single mode") as caught:
            await take_job(second, "run-2", LeaseMode.single, 30, on_busy="fail")
        assert time.monotonic() - started < 5
        assert "on_busy='fail'" in str(caught.value)
    assert first.job_info().lease_owner is None, "released at the end"


async def test_single_and_cooperative_runs_fail_at_once_whatever_on_busy(open_tracker: OpenTracker) -> None:
    first, second = open_tracker(), open_tracker()
    async with hold_job(first, "coop-1", LeaseMode.cooperative, 30):
        with pytest.raises(JobModeError, match="held by run coop-1 \\(cooperative mode.*a single run cannot share"):
            await take_job(second, "alone", LeaseMode.single, 30, on_busy="wait")
        shared = await take_job(second, "coop-2", LeaseMode.cooperative, 30, on_busy="fail")
        assert shared.mode == LeaseMode.cooperative


async def test_the_lease_is_renewed_past_its_first_term(open_tracker: OpenTracker) -> None:
    first, second = open_tracker(), open_tracker()
    async with hold_job(first, "run-1", LeaseMode.single, 0.6) as lease:
        await asyncio.sleep(1.5)  # two and a half leases
        assert not second.take_job_lease("run-2", 30).held
        lease.check()
    assert second.take_job_lease("run-2", 30).held


async def test_a_run_that_stalled_past_its_lease_knows_it_lost_the_job(open_tracker: OpenTracker) -> None:
    first, second = open_tracker(), open_tracker()
    lease = await take_job(first, "stalled", LeaseMode.single, 0.3)
    await asyncio.sleep(0.6)
    assert second.take_job_lease("next", 30).held
    assert not lease.renew()
    with pytest.raises(JobLeaseLostError, match="run stalled lost job .* to run next"):
        lease.check()


def test_options_are_checked_with_the_choices_named() -> None:
    assert parse_on_busy("fail").value == "fail"
    assert parse_on_failure("keep").value == "keep"
    with pytest.raises(ValueError, match="on_busy must be 'wait' or 'fail', got 'later'"):
        parse_on_busy("later")
    with pytest.raises(ValueError, match="on_failure must be 'rollback' or 'keep', got 'undo'"):
        parse_on_failure("undo")


def test_a_run_is_cooperative_when_asked_or_for_a_named_job_on_a_shared_tracker() -> None:
    assert lease_mode(None, named_job=True, shared_tracker=True) is LeaseMode.cooperative
    assert lease_mode(None, named_job=False, shared_tracker=True) is LeaseMode.single
    assert lease_mode(None, named_job=True, shared_tracker=False) is LeaseMode.single
    assert lease_mode(True, named_job=False, shared_tracker=False) is LeaseMode.cooperative
    assert lease_mode(False, named_job=True, shared_tracker=True) is LeaseMode.single
