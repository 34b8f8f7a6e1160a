"""What a bulk run shows the operator in Prefect: progress by phase, the summary, job status.

Every artifact is keyed from the job name (``summary-<job>``, ``progress-<job>``,
``job-status-<job>``, ``dry-run-<job>``; ``cleanup-staging-<bucket>``), so the Artifacts page
keeps one card per job with its history across nights, never one card per run id. The text is
rendered by ``rahcp_prefect.report`` (Prefect-free) from the run's result fields.

Artifacts never carry a secret: they are built from counters, keys, endpoints without user info
or query, and error texts the SDK has already redacted.
"""

from __future__ import annotations

import asyncio
import logging
import shlex
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from time import monotonic
from typing import TYPE_CHECKING, Any
from uuid import UUID

from prefect import get_run_logger
from prefect.artifacts import (
    acreate_markdown_artifact,
    acreate_progress_artifact,
    acreate_table_artifact,
    aupdate_progress_artifact,
)

from rahcp_prefect.bulk import TransferStats
from rahcp_prefect.report.format import (
    artifact_key,
    format_bytes,
    format_count,
    plural,
    progress_line,
    public_url,
    relative_key,
)
from rahcp_prefect.report.phases import Phase, PhaseTimer
from rahcp_prefect.report.summary import RunFacts, code, render_summary
from rahcp_prefect.report.throttle import FIRST_FAILURES, FailureLog

if TYPE_CHECKING:
    from rahcp_prefect.blocks import HCPTracker
    from rahcp_prefect.flows.common import FlowBlocks

logger = logging.getLogger(__name__)

__all__ = [
    "ProgressReporter",
    "RunView",
    "artifact_key",
    "errors_command",
    "publish_dry_run",
    "publish_job_status",
    "summary_key",
]


def summary_key(job: str) -> str:
    """The key of a job's summary artifact: one history per job."""
    return artifact_key(f"summary-{job}")


def progress_key(job: str) -> str:
    return artifact_key(f"progress-{job}")


def errors_command(job: str, tracker_block: str | None) -> str:
    """The command that lists every failure of ``job`` (with reasons, keys relative)."""
    where = f" --tracker-block {shlex.quote(tracker_block)}" if tracker_block else ""
    return f"rahcp-prefect errors --job {shlex.quote(job)}{where}"


def describe_tracker(block: HCPTracker, name: str | None) -> str:
    """Where a job's tracker lives, for people: the block name and its SQLite file or
    PostgreSQL host and database (never the DSN's user or password)."""
    if block.postgres_dsn is not None:
        where = "PostgreSQL " + public_url(block.postgres_dsn.get_secret_value()).split("://", 1)[-1]
    else:
        where = f"SQLite {block.sqlite_path or '~/.rahcp/tracker.db'}"
    return f"block {code(name)} ({where})" if name else where


class ProgressReporter:
    """Keeps one progress artifact current, phase by phase (engine callbacks are sync).

    The bar shows the current phase's share; the description says which phase, files and
    bytes done of the total, the rate and the time left. Updates go out one at a time (never
    reordered), and a failed update never fails the transfer.
    """

    def __init__(self, title: str, phases: Sequence[str] = ("transfer", "commit")) -> None:
        self.title = title
        self.phases = list(phases)
        self.phase = ""
        self.total = 0
        self.total_bytes = 0
        self.finished_before = 0  # files handled by batches of this phase that already ended
        self.bytes_before = 0
        self.done = 0
        self.bytes_done = 0
        self._phase_started = monotonic()
        self._artifact_id: UUID | None = None
        self._wanted: tuple[float, str] | None = None
        self._sent: tuple[float, str] | None = None
        self._sender: asyncio.Task[None] | None = None

    async def start(self, key: str) -> None:
        """Create the artifact at 0 %."""
        self._artifact_id = await acreate_progress_artifact(
            progress=0.0, key=artifact_key(key), description=f"{self.title}: starting"
        )

    def begin(self, phase: str, total_files: int, total_bytes: int = 0) -> None:
        """A new phase starts: its own totals, counters back to zero."""
        self.phase, self.total, self.total_bytes = phase, max(total_files, 0), max(total_bytes, 0)
        self.finished_before = self.bytes_before = self.done = self.bytes_done = 0
        self._phase_started = monotonic()
        self._publish()

    def percent(self, done: int) -> float:
        """Share of the phase's ``total`` handled, 0-100 (100 when there was nothing to do)."""
        if self.total == 0:
            return 100.0
        return min(100.0, 100.0 * done / self.total)

    def describe(self) -> str:
        """The phase's progress in words (also the commit's log line)."""
        step = f" ({self.phases.index(self.phase) + 1} of {len(self.phases)})" if self.phase in self.phases else ""
        return f"{self.title}, " + progress_line(
            f"{self.phase}{step}",
            self.done,
            self.total,
            monotonic() - self._phase_started,
            bytes_done=self.bytes_done,
            bytes_total=self.total_bytes,
            unit="objects" if self.phase == "commit" else "files",
        )

    def on_batch_progress(self, stats: TransferStats) -> None:
        """Engine ``on_progress`` callback: already throttled by ``progress_interval``."""
        self.update(self.finished_before + stats.done, self.bytes_before + stats.bytes)

    def batch_finished(self, handled: int, sent_bytes: int = 0) -> None:
        """Count a finished batch and publish the new total."""
        self.finished_before += handled
        self.bytes_before += sent_bytes
        self.update(self.finished_before, self.bytes_before)

    def update(self, done: int, bytes_done: int = 0) -> None:
        """``done`` files (and bytes) of the current phase are through."""
        self.done, self.bytes_done = done, bytes_done
        self._publish()

    def finish(self, text: str) -> None:
        """The run ended: the bar full (or where it stopped) with the outcome in words."""
        self._want(self.percent(self.done) if self.phase != "commit" else 100.0, f"{self.title}: {text}")

    def _publish(self) -> None:
        self._want(self.percent(self.done), self.describe())

    def _want(self, percent: float, description: str) -> None:
        """Ask for this to be shown; one sender at a time, so updates never arrive reordered."""
        if self._artifact_id is None:
            return
        self._wanted = (percent, description)
        if self._sender is None or self._sender.done():
            self._sender = asyncio.get_running_loop().create_task(self._send())

    async def _send(self) -> None:
        assert self._artifact_id is not None
        while self._wanted is not None and self._wanted != self._sent:
            value = self._wanted
            try:
                await aupdate_progress_artifact(self._artifact_id, progress=value[0], description=value[1])
            except Exception as exc:  # progress is informative: never fail the transfer for it
                logger.warning("progress artifact update failed: %s", exc)
                return
            self._sent = value

    async def close(self) -> None:
        """Wait until the latest progress is published."""
        while self._sender is not None and not self._sender.done():
            await self._sender


class RunView:
    """Everything one bulk run shows the operator: phases timed, progress by phase,
    failures logged in a way that scales, and the summary at the end.

    The flows call ``phase(...)`` around each phase, hand ``failures`` to the engine as its
    ``on_error`` and ``progress``'s callbacks as ``on_progress``, and ``publish_summary`` once.
    """

    def __init__(
        self,
        direction: str,
        job: str,
        bucket: str,
        prefix: str,
        endpoint: str,
        *,
        progress_interval: float = 5.0,
        log_interval: float = 60.0,
        tracker: str | None = None,
        tracker_block: str | None = None,
        source: str | None = None,
        dest_dir: str | None = None,
    ) -> None:
        self.direction, self.job, self.bucket, self.prefix = direction, job, bucket, prefix
        self.endpoint = public_url(endpoint)
        self.source, self.dest_dir, self.tracker = source, dest_dir, tracker
        self.key_prefixes: tuple[str, ...] = (prefix,)
        self.timer = PhaseTimer()
        self.progress_interval, self.log_interval = progress_interval, log_interval
        self.published = False
        self.full_list = errors_command(job, tracker_block)
        self.progress = ProgressReporter(f"bulk-{direction} {bucket}/{prefix}")
        self.failures = FailureLog(
            get_run_logger(), interval=log_interval, display=self.display_key, full_list=self.full_list
        )

    @classmethod
    def for_flow(
        cls,
        direction: str,
        job: str,
        bucket: str,
        prefix: str,
        blocks: FlowBlocks,
        tracker_block: str | None,
        *,
        source: str | None = None,
        dest_dir: str | None = None,
    ) -> RunView:
        """The view of a bulk flow run, from its loaded blocks."""
        return cls(
            direction,
            job,
            bucket,
            prefix,
            blocks.credentials.endpoint,
            progress_interval=blocks.settings.progress_interval,
            log_interval=blocks.settings.log_interval,
            tracker=describe_tracker(blocks.tracker, tracker_block),
            tracker_block=tracker_block,
            source=source,
            dest_dir=dest_dir,
        )

    def display_key(self, key: str) -> str:
        """A key as the operator reads it: relative to the prefix, never a staging path."""
        return relative_key(key, *self.key_prefixes)

    async def start(self) -> None:
        await self.progress.start(progress_key(self.job))

    @contextmanager
    def phase(self, name: str, files: int = 0, size: int = 0) -> Iterator[Phase]:
        """Time phase ``name`` and show it in the progress artifact (``files``/``size``: the
        phase's totals when known up front; set ``.files``/``.bytes`` on the phase otherwise)."""
        with self.timer.phase(name) as entry:
            entry.files, entry.bytes = files, size
            if name in self.progress.phases:
                self.progress.begin(name, files, size)
            yield entry

    def commit_progress(self, total: int) -> CommitProgress:
        """The commit's ``on_progress(moved, bytes)`` callback: progress artifact and a log line
        every ``log_interval``."""
        return CommitProgress(self.progress, total, self.progress_interval, self.log_interval)

    def phases(self) -> dict[str, dict[str, Any]]:
        """The timed phases, for the run's result (``result["phases"]``)."""
        return self.timer.as_dict()

    async def publish_summary(
        self,
        outcome: str,
        result: Mapping[str, Any],
        errors: Sequence[tuple[str, str]] = (),
        error_count: int | None = None,
        reason: str | None = None,
    ) -> None:
        """The markdown summary under ``summary-<job>``; the progress artifact's last word."""
        self.published = True
        self.failures.close()
        facts = RunFacts(
            direction=self.direction,
            job=self.job,
            bucket=self.bucket,
            prefix=self.prefix,
            endpoint=self.endpoint,
            outcome=outcome,
            result=result,
            source=self.source,
            dest_dir=self.dest_dir,
            phases=self.timer.as_dict(),
            elapsed=self.timer.elapsed,
            errors=list(errors[:FIRST_FAILURES]),
            error_count=error_count,
            key_prefixes=self.key_prefixes,
            reason=reason,
            tracker=self.tracker,
            full_list=self.full_list,
        )
        self.progress.finish(outcome)
        await self.progress.close()
        await acreate_markdown_artifact(
            markdown=render_summary(facts),
            key=summary_key(self.job),
            description=f"bulk-{self.direction} {self.bucket}/{self.prefix}: {outcome}",
        )


    async def publish_failure(self, exc: BaseException, result: Mapping[str, Any] | None = None) -> None:
        """The summary of a run that failed before it could publish one (a missing bucket, a
        commit that stopped half-way...); never raises over the run's own error."""
        if self.published:
            return
        outcome = "commit interrupted" if self.timer.last == "commit" and self.direction == "upload" else "failed"
        try:
            await self.publish_summary(outcome, result or {}, reason=f"{type(exc).__name__}: {exc}")
        except Exception as problem:  # the run's own error is the one to report
            logger.warning("could not publish the summary of a failed run: %s", problem)


class CommitProgress:
    """``on_progress(moved, moved_bytes)`` of ``S3Ops.commit_staging``: keeps the progress
    artifact moving and logs a line every ``interval`` seconds (hours-long commits)."""

    def __init__(self, progress: ProgressReporter, total: int, update_interval: float, log_interval: float) -> None:
        self.progress = progress
        self.total = total
        self.update_interval = update_interval
        self.log_interval = log_interval
        self._next_log = monotonic() + log_interval
        self._next_update = 0.0

    def __call__(self, moved: int, moved_bytes: int) -> None:
        now = monotonic()
        if now >= self._next_update or moved >= self.total:
            self._next_update = now + self.update_interval
            self.progress.update(moved, moved_bytes)
        if now >= self._next_log:
            self._next_log = now + self.log_interval
            self.progress.done, self.progress.bytes_done = moved, moved_bytes
            get_run_logger().info("%s", self.progress.describe())


async def publish_job_status(job: str, counts: dict[str, int], deleted_at_source: int | None = None) -> None:
    """A table of the job's done/pending/error counts (and, for an upload, how many of its
    files the source no longer has), keyed by job so it has one history."""
    rows: list[dict[str, Any]] = [{"job": job, **{state: counts.get(state, 0) for state in ("done", "pending", "error")}}]
    if deleted_at_source is not None:
        rows[0]["deleted_at_source"] = deleted_at_source
    await acreate_table_artifact(
        table=rows, key=artifact_key(f"job-status-{job}"), description=f"Job status of {job}"
    )


async def publish_dry_run(
    direction: str,
    job: str,
    bucket: str,
    prefix: str,
    sample: Sequence[tuple[str, int]],
    count: int,
    total_bytes: int,
    skipped: int | None = None,
) -> None:
    """What a real run would transfer, under ``dry-run-<job>``: the totals in words and the
    first files (keys relative to the prefix, sizes in binary units)."""
    verb = "upload to" if direction == "upload" else "download from"
    rows = [
        {"file": relative_key(key, prefix), "size": format_bytes(size), "bytes": size} for key, size in sample
    ]
    if not rows:
        rows = [{"file": "(nothing to transfer)", "size": "0 B", "bytes": 0}]
    unchanged = f", {format_count(skipped)} already done" if skipped else ""
    await acreate_table_artifact(
        table=rows,
        key=artifact_key(f"dry-run-{job}"),
        description=(
            f"Dry run of {job}: would {verb} {bucket}/{prefix} {plural(count, 'file')} "
            f"({format_bytes(total_bytes)}){unchanged}; first {len(sample)} shown"
        ),
    )
