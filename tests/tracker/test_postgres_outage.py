"""The tracker database may go away for a while (issue 21): a PostgreSQL tracker waits for it,
up to its ``wait`` setting, instead of failing after the pool's 30 s; a short restart is
survived as before; an outage longer than ``wait`` fails, naming the database.

The outage is ``OutageProxy`` (``rahcp_prefect.testing.postgres``) in front of the real server.
"""

from __future__ import annotations

import time

import psycopg
import pytest

from rahcp_prefect.testing.postgres import OutageProxy
from rahcp_prefect.tracker import PostgresTracker, TrackerError, TransferStatus

pytestmark = pytest.mark.postgres


@pytest.mark.timeout(240)
def test_an_outage_longer_than_the_pools_wait_is_waited_for(
    proxied: tuple[str, OutageProxy], postgres_dsn: str, tracker_job: str
) -> None:
    """35 s down (longer than the pool's own 30 s wait, which failed the issue's 45 s outage),
    with the connection attempts failing fast: the marks are written once it is back. The pool
    reconnects with a doubling backoff (1, 2, 4 ... 32 s), so the first write after a 35 s
    outage can come near 63 s, later on a loaded machine: ``wait`` leaves room for that."""
    dsn, proxy = proxied
    tracker = PostgresTracker(dsn, job=tracker_job, wait=150, connect_timeout=2)
    try:
        tracker.mark("before", 1, TransferStatus.done)
        tracker.flush()
        back = proxy.outage(35)
        started = time.monotonic()
        tracker.mark("during", 2, TransferStatus.done)
        tracker.flush()  # waits for the database
        waited = time.monotonic() - started
        back.join()
        assert waited >= 33, f"committed after {waited:.1f} s of a 35 s outage?"
        assert tracker.done_keys() == {"before", "during"}
    finally:
        tracker.delete_job()
        tracker.close()
    with psycopg.connect(postgres_dsn) as conn:  # nothing left of the job: deleted through the tracker
        assert conn.execute("SELECT count(*) FROM rahcp_transfers WHERE job = %s", (tracker_job,)).fetchone()[0] == 0


@pytest.mark.timeout(120)
def test_a_5_s_restart_is_survived(proxied: tuple[str, OutageProxy], tracker_job: str) -> None:
    dsn, proxy = proxied
    tracker = PostgresTracker(dsn, job=tracker_job, connect_timeout=2)
    try:
        tracker.mark("a", 1, TransferStatus.done)
        tracker.flush()
        proxy.outage(5).join()
        tracker.mark("b", 2, TransferStatus.done)
        assert tracker.done_keys() == {"a", "b"}
    finally:
        tracker.delete_job()
        tracker.close()


@pytest.mark.timeout(120)
def test_an_outage_longer_than_wait_fails_naming_the_database(
    proxied: tuple[str, OutageProxy], tracker_job: str
) -> None:
    dsn, proxy = proxied
    tracker = PostgresTracker(dsn, job=tracker_job, wait=4, connect_timeout=2)
    try:
        tracker.mark("a", 1, TransferStatus.done)
        tracker.flush()
        proxy.down()
        started = time.monotonic()
        tracker.mark("b", 2, TransferStatus.done)
        with pytest.raises(TrackerError) as info:
            tracker.flush()
        elapsed = time.monotonic() - started
        assert 3 <= elapsed <= 30, elapsed
        assert "127.0.0.1" in str(info.value) and "password" not in str(info.value).lower()
        proxy.up()
        tracker.flush()  # the buffer was kept: written once it is back
        assert tracker.done_keys() == {"a", "b"}
    finally:
        proxy.up()
        tracker.delete_job()
        tracker.close()


@pytest.mark.timeout(120)
async def test_a_stop_signal_ends_a_wait_for_the_database_and_the_lease_is_still_released(
    proxied: tuple[str, OutageProxy], tracker_job: str
) -> None:
    """A SIGTERM while a run waits for an unreachable tracker (here ``wait=60``): the wait ends
    within a slice of it (``interrupts``, 0.5 s) instead of the 60 s, as ``Interrupted``, the
    buffered marks stay for the next write; once the database is back, the stopping run can
    still release its lease (the stop is looked at only while waiting)."""
    import os
    import signal
    import threading

    from rahcp_prefect import interrupts
    from rahcp_prefect.tracker import LeaseMode

    dsn, proxy = proxied
    tracker = PostgresTracker(dsn, job=tracker_job, wait=60, connect_timeout=2)
    heard: list[int] = []
    before = signal.signal(signal.SIGTERM, lambda signum, _frame: heard.append(signum))
    try:
        assert tracker.take_job_lease("run-1", 120, LeaseMode.single).held
        tracker.mark("during", 2, TransferStatus.done)
        proxy.down()
        timer = threading.Timer(2.0, os.kill, (os.getpid(), signal.SIGTERM))
        with pytest.raises(interrupts.Interrupted):  # handed on when the block ends
            with interrupts.watch_signals():
                timer.start()
                started = time.monotonic()
                with pytest.raises(interrupts.Interrupted):
                    tracker.flush()  # waits for the database until the signal
                stopped = time.monotonic() - started
        assert 1.5 < stopped < 10, f"the wait ended {stopped:.1f} s after it began (signal at 2 s)"
        assert heard == [signal.SIGTERM], "the signal was handed on to the previous handler"
        proxy.up()
        tracker.release_job_lease("run-1")
        info = tracker.job_info()
        assert info is not None and info.lease_owner is None
    finally:
        signal.signal(signal.SIGTERM, before)
        proxy.up()
        tracker.close()
