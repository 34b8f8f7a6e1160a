"""The job tells an interruption (cancel, SIGTERM, SIGINT) from a failure, without Prefect:
an interrupted run keeps staging and its marks whatever ``on_failure`` says."""

from __future__ import annotations

import asyncio
import signal

import pytest
from prefect.exceptions import TerminationSignal

from rahcp_prefect.job import OnFailure, StopCause, interruption, kept_on_interruption
from rahcp_prefect.job.errors import StagingVerificationError


def test_signals_and_cancellation_are_interruptions() -> None:
    assert interruption(TerminationSignal(signal.SIGTERM)) == "SIGTERM"
    assert interruption(TerminationSignal(signal.SIGINT)) == "SIGINT"
    assert interruption(KeyboardInterrupt()) == "SIGINT"
    assert interruption(asyncio.CancelledError()) == "cancelled"
    assert interruption(SystemExit(0)) == "exit"
    assert interruption(BaseExceptionGroup("workers", [ValueError("x"), asyncio.CancelledError()])) == "cancelled"


def test_failures_are_not_interruptions() -> None:
    assert interruption(None) is None
    assert interruption(ValueError("bad")) is None
    assert interruption(StagingVerificationError("staging check failed")) is None
    assert interruption(ExceptionGroup("workers", [ValueError("x"), OSError("y")])) is None
    try:  # asyncio.wait_for's timeout carries a CancelledError as its context: still a failure
        try:
            raise asyncio.CancelledError()
        except asyncio.CancelledError:
            raise TimeoutError("timed out") from None
    except TimeoutError as exc:
        assert isinstance(exc.__context__, asyncio.CancelledError)
        assert interruption(exc) is None


@pytest.mark.parametrize("policy", ["rollback", "keep"])
def test_an_interrupted_run_keeps_staging_whatever_on_failure_says(policy: str) -> None:
    report = kept_on_interruption(policy, TerminationSignal(signal.SIGTERM))
    assert report is not None and report.staging == "kept" and report.interrupted == "SIGTERM"
    assert report.policy == OnFailure(policy)
    assert report.fields() == {"on_failure": policy, "staging": "kept", "interrupted": "SIGTERM"}
    assert "interrupted (SIGTERM)" in report.describe() and "only what is missing" in report.describe()
    assert kept_on_interruption(policy, RuntimeError("a file failed")) is None, "a failure: the policy applies"


async def test_stop_cause_notes_the_first_exception_before_outer_handlers_run() -> None:
    stop = StopCause()
    seen_by_outer: list[BaseException | None] = []

    class Outer:  # stands for Prefect's transaction, whose rollback hooks run in its __aexit__
        async def __aenter__(self) -> None:
            return None

        async def __aexit__(self, *exc: object) -> None:
            seen_by_outer.append(stop.exc)

    with pytest.raises(asyncio.CancelledError):
        async with Outer(), stop.noting():
            raise asyncio.CancelledError()
    assert isinstance(seen_by_outer[0], asyncio.CancelledError)
    async with stop.noting():
        pass
    assert isinstance(stop.exc, asyncio.CancelledError), "kept once noted"
