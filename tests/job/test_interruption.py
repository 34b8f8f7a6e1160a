"""The job tells an interruption (cancel, SIGTERM, SIGINT) from a failure, without Prefect:
an interrupted run keeps staging and its marks whatever ``on_failure`` says. A stop signal is
heard through the event loop (``rahcp_prefect.interrupts``), even when it lands inside a
garbage collector's weakref callback, and stops the synchronous waits at their safe points."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import subprocess
import sys
import time
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prefect.exceptions import TerminationSignal

from rahcp_prefect import interrupts
from rahcp_prefect.job import interruption, kept_on_interruption
from rahcp_prefect.job.folder import promote_staging
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


# -- signals heard through the event loop (rahcp_prefect.interrupts) -------------------------


class _Handed(BaseException):
    """What the recording 'previous' SIGTERM handler raises when the signal is handed on to it."""


@pytest.fixture
def previous_sigterm() -> Iterator[list[int]]:
    """A previous SIGTERM handler (as Prefect's) that records and raises ``_Handed``."""
    heard: list[int] = []

    def previous(signum: int, _frame: object) -> None:
        heard.append(signum)
        raise _Handed(signum)

    before = signal.signal(signal.SIGTERM, previous)
    try:
        yield heard
    finally:
        signal.signal(signal.SIGTERM, before)


@pytest.mark.timeout(30)
async def test_a_sigterm_cancels_the_watched_task_and_is_handed_on_at_the_end_of_the_block(
    previous_sigterm: list[int],
) -> None:
    seen: list[str | None] = []
    with pytest.raises(_Handed):
        with interrupts.watch_signals():
            try:
                os.kill(os.getpid(), signal.SIGTERM)
                await asyncio.sleep(30)
            except asyncio.CancelledError as exc:
                seen.append(interruption(exc))
                assert interrupts.received() == signal.SIGTERM
                await asyncio.sleep(0)  # the cancellation was delivered once: the run may still clean up
                raise
    assert seen == ["SIGTERM"] and previous_sigterm == [signal.SIGTERM]
    assert signal.getsignal(signal.SIGTERM) is not None and interrupts.received() is None
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]


@pytest.mark.timeout(30)
async def test_a_sigint_ends_the_block_as_keyboard_interrupt() -> None:
    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        with interrupts.watch_signals():
            with pytest.raises(asyncio.CancelledError):
                signal.raise_signal(signal.SIGINT)
                await asyncio.sleep(30)
    assert signal.getsignal(signal.SIGINT) == before


@pytest.mark.timeout(30)
async def test_a_sigint_goes_to_the_previous_sigterm_handler_when_there_is_one(previous_sigterm: list[int]) -> None:
    """As Prefect's flow engine runs a flow: its handler records the run and ends the process by
    the signal at once, SIGINT too (no wait for threads blocked on a request at exit)."""
    with pytest.raises(_Handed):
        with interrupts.watch_signals():
            with pytest.raises(asyncio.CancelledError):
                signal.raise_signal(signal.SIGINT)
                await asyncio.sleep(30)
    assert previous_sigterm == [signal.SIGINT]


def _collect_with_a_signal_in_the_weakref_callback() -> None:
    """Collect a cycle whose weakref callback raises SIGTERM in this thread: the handler runs in
    the callback's frame, inside the garbage collector."""

    class Cycle:
        me: Any = None

    def in_a_gc_callback(_ref: object) -> None:
        signal.raise_signal(signal.SIGTERM)

    garbage = Cycle()
    garbage.me = garbage
    ref = weakref.ref(garbage, in_a_gc_callback)
    del garbage
    gc.collect()
    assert ref() is None


@pytest.mark.timeout(30)
def test_a_raising_sigterm_handler_loses_its_signal_in_a_gc_weakref_callback(previous_sigterm: list[int]) -> None:
    """Why the signal must not depend on an exception: raised in a weakref callback, it is
    dropped ("Exception ignored in ...", Python's unraisable hook) and never reaches the run."""
    dropped: list[type[BaseException] | None] = []
    hook, sys.unraisablehook = sys.unraisablehook, lambda unraisable: dropped.append(unraisable.exc_type)
    try:
        _collect_with_a_signal_in_the_weakref_callback()  # no _Handed reaches us
    finally:
        sys.unraisablehook = hook
    assert previous_sigterm == [signal.SIGTERM] and dropped == [_Handed]


@pytest.mark.timeout(30)
async def test_a_sigterm_in_a_gc_weakref_callback_still_ends_the_watched_run(previous_sigterm: list[int]) -> None:
    ended: list[str | None] = []
    with pytest.raises(_Handed):
        with interrupts.watch_signals():
            try:
                _collect_with_a_signal_in_the_weakref_callback()
                await asyncio.sleep(30)
            except asyncio.CancelledError as exc:
                ended.append(interruption(exc))
                raise
    assert ended == ["SIGTERM"] and previous_sigterm == [signal.SIGTERM]


@pytest.mark.timeout(30)
async def test_a_signal_stops_a_synchronous_wait_and_the_promotion_between_two_files(
    previous_sigterm: list[int], tmp_path: Path
) -> None:
    """The safe points of code that holds the event loop (a tracker's retry wait, a download's
    move into place): they raise ``Interrupted`` once the signal arrived; what was not moved
    stays in staging for the next run."""
    staging, dest = tmp_path / "staging", tmp_path / "dest"
    for index in range(5):
        (staging / "d").mkdir(parents=True, exist_ok=True)
        (staging / "d" / f"f{index}").write_text(str(index))
    with pytest.raises(_Handed):
        with interrupts.watch_signals():
            signal.raise_signal(signal.SIGTERM)
            started = time.monotonic()
            with pytest.raises(interrupts.Interrupted) as stopped:
                interrupts.sleep(30)
            assert time.monotonic() - started < 1 and interruption(stopped.value) == "SIGTERM"
            with pytest.raises(interrupts.Interrupted):
                promote_staging(staging, dest)
            assert sorted(p.name for p in (staging / "d").iterdir()) == [f"f{i}" for i in range(5)]
    promoted = promote_staging(staging, dest)  # the next run moves them
    assert promoted.moved == 5 and not staging.exists()


WAKE_SCRIPT = """
import asyncio, os, signal, threading, time
from rahcp_prefect import interrupts

def deliver_here():
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})  # this thread takes the signal
    time.sleep(0.5)
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(30)

async def main():
    with interrupts.watch_signals():
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})  # not the main thread: the kernel picks another
        threading.Thread(target=deliver_here, daemon=True).start()
        try:
            await asyncio.Event().wait()  # no timer due: the loop sleeps until something wakes it
        except asyncio.CancelledError:
            print("CANCELLED", flush=True)
            raise

try:
    asyncio.run(main())
except interrupts.Interrupted:
    print("INTERRUPTED", flush=True)
"""


@pytest.mark.timeout(60)
def test_a_signal_the_kernel_gives_another_thread_still_wakes_the_sleeping_loop() -> None:
    """A process-wide signal may be delivered to any thread: Python runs the handler in the main
    thread only once that thread runs again, and a loop asleep in ``epoll_wait`` with no timer
    due would not, until its next timer (10 s in a CI run's commit). The watch wakes the loop
    through the signal wakeup fd, as asyncio's own ``add_signal_handler`` does."""
    started = time.monotonic()
    try:
        done = subprocess.run([sys.executable, "-c", WAKE_SCRIPT], capture_output=True, text=True, timeout=15)
    except subprocess.TimeoutExpired:
        pytest.fail("the loop slept through the signal for 15 s")
    took = time.monotonic() - started
    assert done.stdout.split() == ["CANCELLED", "INTERRUPTED"], done.stdout + done.stderr
    assert took < 10, f"{took:.1f} s"
