"""Every failure of a job, as the operator reads it: ``rahcp-prefect errors --job ...``.

The summary artifact shows the first failures; this lists all of them from the job's tracker,
keys relative to the job's prefix (never its staging path), reasons in full.
"""

from __future__ import annotations

from collections.abc import Iterator

from rahcp_prefect.tracker.protocol import TrackerProtocol

from .format import relative_key


def job_failures(tracker: TrackerProtocol) -> Iterator[tuple[str, str]]:
    """``(key relative to the job's prefix, reason)`` of every file the job holds as failed."""
    info = tracker.job_info()
    prefixes = [p for p in (info.staging_prefix, info.final_prefix) if info and p] if info else []
    for key, reason in tracker.error_details():
        yield relative_key(key, *prefixes), reason
