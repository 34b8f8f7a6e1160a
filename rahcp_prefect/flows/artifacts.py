"""What a bulk run shows in Prefect: a throttled progress artifact and a summary table.

Artifacts never carry a secret: they are built from counters, keys and error texts that the
SDK has already redacted.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from uuid import UUID

from prefect.artifacts import (
    acreate_progress_artifact,
    acreate_table_artifact,
    aupdate_progress_artifact,
)

from rahcp_prefect.bulk import TransferStats

logger = logging.getLogger(__name__)

FIRST_ERRORS = 10


def artifact_key(text: str) -> str:
    """A Prefect artifact key (lowercase letters, digits, dashes) derived from ``text``."""
    cleaned = "".join(c if c.isalnum() else "-" for c in text.lower())
    return "-".join(part for part in cleaned.split("-") if part)[:100] or "rahcp"


class ProgressReporter:
    """Keeps one progress artifact current while batches run (engine callbacks are sync)."""

    def __init__(self, total_files: int, description: str) -> None:
        self.total = max(total_files, 0)
        self.description = description
        self.finished_before = 0  # files handled by batches that already ended
        self._artifact_id: UUID | None = None
        self._wanted: float | None = None
        self._sent: float | None = None
        self._sender: asyncio.Task[None] | None = None

    async def start(self, key: str) -> None:
        """Create the artifact at 0 %."""
        self._artifact_id = await acreate_progress_artifact(
            progress=0.0, key=artifact_key(key), description=self.description
        )

    def percent(self, done: int) -> float:
        """Share of ``total`` handled, 0-100 (100 when there was nothing to do)."""
        if self.total == 0:
            return 100.0
        return min(100.0, 100.0 * done / self.total)

    def on_batch_progress(self, stats: TransferStats) -> None:
        """Engine ``on_progress`` callback: already throttled by ``progress_interval``."""
        self._update(self.finished_before + stats.done)

    def batch_finished(self, handled: int) -> None:
        """Count a finished batch and publish the new total."""
        self.finished_before += handled
        self._update(self.finished_before)

    def _update(self, done: int) -> None:
        """Ask for ``done`` to be shown; one sender at a time, so updates never arrive reordered."""
        if self._artifact_id is None:
            return
        self._wanted = self.percent(done)
        if self._sender is None or self._sender.done():
            self._sender = asyncio.get_running_loop().create_task(self._send())

    async def _send(self) -> None:
        assert self._artifact_id is not None
        while self._wanted is not None and self._wanted != self._sent:
            value = self._wanted
            try:
                await aupdate_progress_artifact(self._artifact_id, progress=value)
            except Exception as exc:  # progress is informative: never fail the transfer for it
                logger.warning("progress artifact update failed: %s", exc)
                return
            self._sent = value

    async def close(self) -> None:
        """Wait until the latest progress is published."""
        if self._sender is not None:
            await self._sender


#: The incremental sync's counts (bulk/sync.py), shown when the run reports them.
SYNC_ROWS = (
    ("new", "files new"),
    ("changed", "files changed (sent again)"),
    ("missing", "files missing from the bucket (sent again)"),
    ("unchanged", "files unchanged"),
)


async def publish_summary(
    key: str,
    title: str,
    totals: dict[str, Any],
    elapsed: float,
    errors: list[tuple[str, str]],
    outcome: str,
) -> None:
    """The run's table artifact: counters, throughput, elapsed and the first errors."""
    mib = totals.get("bytes", 0) / (1024 * 1024)
    rows: list[dict[str, Any]] = [
        {"metric": "outcome", "value": outcome},
        {"metric": "files transferred", "value": totals.get("ok", 0)},
        {"metric": "files skipped", "value": totals.get("skipped", 0)},
        {"metric": "files verified (checksum)", "value": totals.get("verified", 0)},
        {"metric": "files unverified", "value": totals.get("unverified", 0)},
        {"metric": "errors", "value": totals.get("errors", 0)},
        {"metric": "bytes", "value": totals.get("bytes", 0)},
        {"metric": "MB/s", "value": round(mib / elapsed, 2) if elapsed > 0 else 0.0},
        {"metric": "elapsed s", "value": round(elapsed, 2)},
        {"metric": "retries", "value": totals.get("retries", 0)},
        {"metric": "API retries", "value": totals.get("api_retries", 0)},
    ]
    rows.extend({"metric": label, "value": totals[name]} for name, label in SYNC_ROWS if name in totals)
    for error_key, message in errors[:FIRST_ERRORS]:
        rows.append({"metric": f"error: {error_key}", "value": message[:300]})
    await acreate_table_artifact(table=rows, key=artifact_key(key), description=title)


async def publish_job_status(job: str, counts: dict[str, int]) -> None:
    """A table of the job's done/pending/error counts, keyed by job so it has one history."""
    rows = [{"job": job, **{state: counts.get(state, 0) for state in ("done", "pending", "error")}}]
    await acreate_table_artifact(
        table=rows, key=artifact_key(f"job-status-{job}"), description=f"Job status of {job}"
    )
