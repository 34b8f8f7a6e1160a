"""The job lease, identical on every backend: one single-mode holder, shared by cooperative runs,
renewed while held, released at the end, free again once it expires (a run that died)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from rahcp_prefect.tracker import JobState, LeaseMode, TrackerProtocol

from tests.tracker.helpers import race

OpenTracker = Callable[..., Any]
single, cooperative = LeaseMode.single, LeaseMode.cooperative


def test_a_free_job_is_taken_and_then_held(open_tracker: OpenTracker) -> None:
    one, two = open_tracker(), open_tracker()
    lease = one.take_job_lease("run-1", 60)
    assert lease.held and lease.owner == "run-1" and lease.mode == single
    assert 55 < lease.seconds_left <= 60
    info = two.job_info()
    assert (info.lease_owner, info.lease_mode, info.state) == ("run-1", single, JobState.open)
    other = two.take_job_lease("run-2", 60)
    assert not other.held
    assert (other.owner, other.mode) == ("run-1", single)  # the answer names the holder
    assert 50 < other.seconds_left <= 60


def test_the_holder_renews_and_others_cannot(open_tracker: OpenTracker) -> None:
    one, two = open_tracker(), open_tracker()
    first = one.take_job_lease("run-1", 5)
    assert one.renew_job_lease("run-1", 60)
    assert two.job_info().lease_expires > first.expires + 50
    assert not two.renew_job_lease("run-2", 60)  # not the holder
    assert not two.renew_job_lease("run-1", 60, cooperative)  # the holder, but not cooperative
    again = one.take_job_lease("run-1", 60)  # taking again is renewing
    assert again.held and again.owner == "run-1"


def test_release_frees_the_job_for_the_next_run(open_tracker: OpenTracker) -> None:
    one, two = open_tracker(), open_tracker()
    one.take_job_lease("run-1", 60)
    assert not two.release_job_lease("run-2")  # not the holder: no effect
    assert not two.take_job_lease("run-2", 60).held
    assert one.release_job_lease("run-1")
    assert one.job_info().lease_owner is None
    assert not one.renew_job_lease("run-1", 60)  # released: no longer held
    assert two.take_job_lease("run-2", 60).held


def test_an_expired_lease_is_free_and_cannot_be_renewed(open_tracker: OpenTracker) -> None:
    one, two = open_tracker(), open_tracker()
    assert one.take_job_lease("killed-run", 0.4).held
    assert not two.take_job_lease("next-run", 60).held
    time.sleep(0.7)
    info = two.job_info()
    assert (info.lease_owner, info.lease_mode, info.lease_expires) == (None, None, 0.0)
    assert not one.renew_job_lease("killed-run", 60)  # a run that stalled past its lease lost it
    taken = two.take_job_lease("next-run", 60)
    assert taken.held and taken.owner == "next-run"


def test_cooperative_runs_share_the_lease(open_tracker: OpenTracker) -> None:
    one, two = open_tracker(), open_tracker()
    a = one.take_job_lease("coop-a", 60, cooperative)
    b = two.take_job_lease("coop-b", 30, cooperative)
    assert a.held and b.held
    assert b.owner == "coop-b" and b.mode == cooperative
    assert b.expires >= a.expires  # a shorter lease never cuts the shared one
    assert one.renew_job_lease("coop-a", 60, cooperative)
    assert not one.release_job_lease("coop-a")  # shared: one run cannot free it
    assert two.job_info().lease_mode == cooperative


def test_single_and_cooperative_runs_cannot_mix(open_tracker: OpenTracker) -> None:
    one, two = open_tracker(), open_tracker()
    assert one.take_job_lease("coop", 60, cooperative).held
    refused = two.take_job_lease("alone", 60, single)
    assert not refused.held and refused.mode == cooperative and refused.owner == "coop"
    assert not two.renew_job_lease("alone", 60, single)

    three, four = open_tracker("other-" + one.job), open_tracker("other-" + one.job)
    assert three.take_job_lease("alone", 60, single).held
    refused = four.take_job_lease("coop", 60, cooperative)
    assert not refused.held and refused.mode == single and refused.owner == "alone"
    assert not three.take_job_lease("alone", 60, cooperative).held  # not even its own holder


def test_a_cooperative_lease_expires_after_the_last_renewal(open_tracker: OpenTracker) -> None:
    one, two = open_tracker(), open_tracker()
    one.take_job_lease("coop-a", 0.4, cooperative)
    time.sleep(0.7)
    assert not one.renew_job_lease("coop-a", 60, cooperative)
    assert two.take_job_lease("alone", 60).held


def test_the_lease_leaves_the_job_state_and_staging_alone(tracker: TrackerProtocol) -> None:
    tracker.open_job(bucket="b", staging_prefix="stage/", final_prefix="final/")
    tracker.update_job(state=JobState.committing)
    tracker.take_job_lease("run", 60)
    tracker.release_job_lease("run")
    info = tracker.job_info()
    assert (info.state, info.bucket, info.staging_prefix, info.final_prefix) == (
        JobState.committing, "b", "stage/", "final/"
    )


def test_lease_race_has_exactly_one_winner(open_tracker: OpenTracker) -> None:
    trackers = [open_tracker() for _ in range(6)]
    wins = race(trackers, lambda tracker, owner: tracker.take_job_lease(owner, 60).held)
    assert len(wins) == 1
    assert trackers[0].job_info().lease_owner == wins[0]


def test_lease_arguments_are_checked(tracker: TrackerProtocol) -> None:
    with pytest.raises(ValueError):
        tracker.take_job_lease("", 60)
    with pytest.raises(ValueError):
        tracker.take_job_lease("run", 0)
    with pytest.raises(ValueError):
        tracker.take_job_lease("run", 60, "exclusive")  # type: ignore[arg-type]
