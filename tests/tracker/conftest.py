"""Tracker fixtures: every behavioural test runs once per backend (SQLite file, real PostgreSQL)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from rahcp_prefect.tracker import TrackerProtocol, create_tracker

BACKENDS = ["sqlite", "postgres"]
OpenTracker = Callable[..., Any]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def target(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """Where the tracker lives: a fresh SQLite file, or the test PostgreSQL."""
    if backend == "sqlite":
        return str(tmp_path / "tracker.db")
    return request.getfixturevalue("postgres_dsn")


@pytest.fixture
def open_tracker(target: str, tracker_job: str, backend: str) -> Iterator[OpenTracker]:
    """Open trackers on ``target`` (default job: this test's unique job); all purged afterwards."""
    opened: list[Any] = []

    def _open(job: str | None = None, **options: Any) -> Any:
        tracker = create_tracker(target, job=job or tracker_job, **options)
        opened.append(tracker)
        return tracker

    yield _open
    for tracker in opened:
        tracker.close()
    if backend == "postgres":  # leave no rows behind in the shared database
        for job in {tracker.job for tracker in opened}:
            with create_tracker(target, job=job) as cleaner:  # type: ignore[attr-defined]
                cleaner.delete_job()


@pytest.fixture
def tracker(open_tracker: OpenTracker) -> TrackerProtocol:
    """One tracker on this test's job."""
    return open_tracker()

