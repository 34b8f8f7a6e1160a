"""The job's options a run is given: how it shares the job, what to do when the job is busy,
and when files fail."""

from __future__ import annotations

from enum import Enum
from typing import TypeVar

from rahcp_prefect.tracker.protocol import LeaseMode

E = TypeVar("E", bound=Enum)


class OnBusy(str, Enum):
    """Another single-mode run holds the job: wait for it (default) or fail at once."""

    wait = "wait"
    fail = "fail"


class OnFailure(str, Enum):
    """Some files failed: delete this job's staging (default) or keep it for the next run."""

    rollback = "rollback"
    keep = "keep"


def lease_mode(cooperative: bool | None, named_job: bool, shared_tracker: bool) -> LeaseMode:
    """The mode a run takes its job in: ``cooperative`` when the caller chose; by default
    cooperative only for a job the caller named on a shared (PostgreSQL) tracker, where other
    runs can find and join it."""
    if cooperative is None:
        cooperative = named_job and shared_tracker
    return LeaseMode.cooperative if cooperative else LeaseMode.single


def parse_on_busy(value: OnBusy | str) -> OnBusy:
    """``value`` as an ``OnBusy``; anything else is a ``ValueError`` naming the choices."""
    return _parse(OnBusy, "on_busy", value)


def parse_on_failure(value: OnFailure | str) -> OnFailure:
    """``value`` as an ``OnFailure``; anything else is a ``ValueError`` naming the choices."""
    return _parse(OnFailure, "on_failure", value)


def _parse(kind: type[E], name: str, value: object) -> E:
    try:
        return kind(value)
    except ValueError:
        choices = " or ".join(repr(member.value) for member in kind)
        raise ValueError(f"{name} must be {choices}, got {value!r}") from None
