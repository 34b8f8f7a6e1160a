"""The job tells an interruption (cancel, SIGTERM, SIGINT) from a failure, without Prefect:
an interrupted run keeps staging and its marks whatever ``on_failure`` says."""

from __future__ import annotations

import asyncio
import signal

from prefect.exceptions import TerminationSignal

from rahcp_prefect.job import interruption, kept_on_interruption
from rahcp_prefect.job.errors import RunStopped, StagingVerificationError


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


def test_a_stop_request_is_an_interruption_and_its_report_says_staging_was_kept() -> None:
    assert interruption(RunStopped("run r of job j stopped before its next batch")) == "stopped"
    what = kept_on_interruption("SIGTERM")
    assert "interrupted (SIGTERM)" in what and "only what is missing" in what and "whatever on_failure says" in what
