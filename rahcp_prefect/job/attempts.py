"""A retried batch never sends again what staging already holds.

A batch's first attempt trusts the run's plan: the sync decided which files to send, so it
neither reads the job's records nor lists staging again. When that attempt fails after some
files reached staging but before the tracker recorded them (the tracker was away: its flush
failed, the batch task failed, the orchestrator ran it again), the plan is stale: every later
attempt reads the job's records and lists the batch's part of staging (one listing request
per 1,000 keys, against one PUT per file), and adopts a staged object of the file's size as
done instead of sending it again.
"""

from __future__ import annotations

from typing import NamedTuple


class BatchChecks(NamedTuple):
    """What a batch attempt checks before sending: the job's records (``skip_done``) and the
    listing of its staging (``skip_existing``)."""

    skip_existing: bool
    skip_done: bool


def batch_checks(attempt: int, *, skip_existing: bool, skip_done: bool) -> BatchChecks:
    """The checks of attempt ``attempt`` (1 = the first) of a batch asked for ``skip_existing``
    and ``skip_done``: as asked the first time, both on for every retry."""
    if attempt < 1:
        raise ValueError(f"attempt must be >= 1, got {attempt}")
    if attempt == 1:
        return BatchChecks(skip_existing, skip_done)
    return BatchChecks(True, True)
