"""What every bulk flow does: load the blocks, name the job, run it as a ``JobRun`` and report.

The job's steps live in ``rahcp_prefect.job`` (no Prefect there); this module wires them to
Prefect: the run's logger, its id, its artifacts (summary, job status, dry run) and events.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect import get_run_logger
from prefect.runtime import deployment, flow_run

from rahcp_prefect import defaults
from rahcp_prefect.block_loading import aload_block
from rahcp_prefect.blocks import HCPCredentials, HCPTracker, HCPTransferSettings
from rahcp_prefect.bulk.validation import local_folder
from rahcp_prefect.flows.artifacts import RunView, publish_dry_run, publish_job_status
from rahcp_prefect.flows.naming import tag_run
from rahcp_prefect.flows.signals import watch_flow_signals
from rahcp_prefect.job import BatchRunner, BulkTransferFailed, JobRun, LeaseMode, Staging, lease_mode, parse_on_busy
from rahcp_prefect.tracker.protocol import TrackerProtocol

logger = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = defaults.BATCH_SIZE


@dataclass
class FlowBlocks:
    """The blocks a bulk flow runs with, settings already overridden for this run."""

    credentials: HCPCredentials
    settings: HCPTransferSettings
    tracker: HCPTracker


async def load_blocks(
    credentials_block: str,
    settings_block: str | None,
    tracker_block: str | None,
    settings_overrides: dict[str, Any] | None,
) -> FlowBlocks:
    """Load blocks by name; no settings block means defaults, no tracker block a local SQLite."""
    credentials = await aload_block(HCPCredentials, credentials_block)
    settings = (
        await aload_block(HCPTransferSettings, settings_block) if settings_block else HCPTransferSettings()
    )
    tracker = await aload_block(HCPTracker, tracker_block) if tracker_block else HCPTracker()
    return FlowBlocks(credentials, settings.with_overrides(settings_overrides), tracker)


def job_name(kind: str, bucket: str, prefix: str, job: str | None) -> str:
    """The tracker job: the name given, else ``<kind>:<bucket>/<prefix>``."""
    if job is not None:
        if not job.strip():
            raise ValueError("job must not be blank")
        return job
    return f"{kind}:{bucket}/{prefix}"


def folder_parameter(name: str, value: Any) -> Path:
    """A local folder parameter as an absolute path; a relative one in a deployment's run
    (the worker's temporary folder) is refused naming ``name`` (``local_folder``)."""
    return local_folder(name, value, in_deployment=deployment.get_id() is not None)


def run_id() -> str:
    """This flow run's id (a fresh one outside a flow run, e.g. in a test)."""
    current = flow_run.get_id()
    if current:
        return str(current)
    import uuid

    return uuid.uuid4().hex


DRY_RUN_SAMPLE = 50
FailedEvent = Callable[[RunView, "JobRun | None", TrackerProtocol, BaseException], Any]
"""Emits a failed run's events: ``(its view, the run, its tracker, the error)``; ``run`` is None
when the client could not log in."""


@asynccontextmanager
async def job_run(
    blocks: FlowBlocks, view: RunView, staging: Staging, send: BatchRunner, on_failed: FailedEvent, *,
    cooperative: bool | None, named: bool, on_busy: str, batch_size: int,
) -> AsyncIterator[JobRun]:
    """The flow run's ``JobRun``: its tracker, its one client (one login for the run) and its
    lease options; a failure emits ``on_failed`` and the summary before it is raised.

    SIGTERM and SIGINT are heard through the event loop while it runs (``watch_flow_signals``): the
    run's task is cancelled, the job ends as an interruption (staging and done marks kept, the
    commit lock and the lease released), and the signal is handed on to Prefect's handler here."""
    mode = lease_mode(cooperative, named, blocks.tracker.is_shared)
    with watch_flow_signals():
        tracker = blocks.tracker.get_tracker(view.job)
        await tag_run(view.bucket)
        run: JobRun | None = None
        try:
            async with blocks.credentials.get_client(blocks.settings) as client:
                run = JobRun(
                    tracker, client, staging, send, view, run_id(), mode, blocks.tracker.lease_seconds,
                    get_run_logger(), parse_on_busy(on_busy), batch_size,
                )
                yield run
        except Exception as exc:
            on_failed(view, run, tracker, exc)
            if mode is LeaseMode.cooperative and isinstance(exc, BulkTransferFailed):
                await publish_job_status(view.job, tracker.summary())
            await view.publish_failure(exc)
            raise
        finally:
            tracker.close()


async def preview(run: JobRun, view: RunView, **extra: Any) -> dict[str, Any]:
    """A dry run: what a real run would transfer, as an artifact and the result; nothing moves."""
    files, size, sample, counts = await run.staging.preview(run, DRY_RUN_SAMPLE)
    skipped = counts.unchanged if run.staging.verb == "download" else None
    await publish_dry_run(view.direction, run.job, view.bucket, view.prefix, sample, files, size, skipped)
    get_run_logger().info("Dry run: %d %s(s), %d bytes would be %sed", files, run.staging.noun, size, run.staging.verb)
    found = {"skipped": skipped} if skipped is not None else {"scan_errors": len(run.scan_errors)}
    return {
        "job": run.job, "dry_run": True, "files": files, "bytes": size, **found, **counts.as_dict(),
        **run.totals.found(), **extra,
    }


async def finish(
    run: JobRun, view: RunView, outcome: str, held: bool, errors: list[tuple[str, str]] | None = None, **extra: Any
) -> dict[str, Any]:
    """The summary (naming ``errors``: what a run that ended could not do) and the job's
    status of a run that ended, and its result."""
    totals = run.totals.as_dict()
    await view.publish_summary(outcome if held else "left to another run", totals, errors or ())
    await publish_job_status(run.job, run.tracker.summary(), run.totals.deleted_at_source)
    get_run_logger().info("bulk-%s %s: %s, %s", view.direction, run.job, outcome, totals)
    return {**totals, "job": run.job, **extra, "outcome": outcome, "elapsed": round(view.timer.elapsed, 3),
            "phases": view.phases()}
