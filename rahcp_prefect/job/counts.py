"""A run's counters: every one present (zero when a run got no work), summed batch by batch."""

from __future__ import annotations

from typing import Any

from rahcp_prefect.bulk.stats import DEFERRED_NAMED

COUNTERS = ("ok", "skipped", "errors", "done", "bytes", "retries", "api_retries", "throttled", "verified", "unverified")
DEFERRALS = ("changed_during_run", "vanished")
"""Files left for the next run because they changed or vanished while sent: reported when
there are any (named in ``deferred``), never a failure."""


def new_counts() -> dict[str, Any]:
    """Every counter at zero, so a run that got no work still reports each of them."""
    return dict.fromkeys(COUNTERS, 0)


def add_counts(total: dict[str, Any], batch: dict[str, Any]) -> dict[str, Any]:
    """Sum the counters of one batch summary into ``total`` (in place) and return it."""
    for name in COUNTERS:
        total[name] = total.get(name, 0) + int(batch.get(name, 0))
    for name in DEFERRALS:
        if batch.get(name):
            total[name] = total.get(name, 0) + int(batch[name])
    if batch.get("deferred"):
        named: list[str] = total.setdefault("deferred", [])
        named.extend(batch["deferred"][: max(0, DEFERRED_NAMED - len(named))])
    return total
