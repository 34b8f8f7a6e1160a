"""The ``bulk-upload-parallel`` flow: fan one upload job out over N runs of a deployment.

Each child is a run of the ``bulk-upload/cooperative`` deployment (so any worker of its pool,
on any machine, may take it; ``bulk-upload/default`` runs one at a time) with the same job and ``cooperative=True``: they share the job's manifest
through the PostgreSQL tracker, claim batches, and exactly one of them commits. This flow waits
for the children and reports the job as the tracker sees it.
"""

from __future__ import annotations

import asyncio
from typing import Any

from prefect import flow, get_run_logger
from prefect.deployments import arun_deployment

from rahcp_prefect.bulk.validation import check_count, check_job_inputs
from rahcp_prefect.flows.naming import parallel_run_name, tag_run
from rahcp_prefect.flows.artifacts import publish_job_status
from rahcp_prefect.flows.common import folder_parameter, job_name, load_blocks
from rahcp_prefect.tracker.protocol import JobState
from rahcp_prefect.errors import RahcpError


class FanOutFailed(RahcpError, RuntimeError):
    """The job did not end committed: some child runs failed and the tracker holds errors."""


@flow(name="bulk-upload-parallel", flow_run_name=parallel_run_name, log_prints=False)
async def bulk_upload_parallel(
    source_dir: str,
    bucket: str,
    prefix: str = "",
    runs: int = 2,
    deployment: str = "bulk-upload/cooperative",
    credentials_block: str = "hcp",
    settings_block: str | None = "hcp-settings",
    tracker_block: str = "hcp-tracker",
    job: str | None = None,
    settings_overrides: dict[str, Any] | None = None,
    batch_size: int = 1000,
    timeout_seconds: float | None = None,
) -> dict[str, Any]:
    """Start ``runs`` cooperating runs of the ``bulk-upload`` deployment on one job.

    Args:
        source_dir: Folder to upload; every worker that may run a child must see it.
        bucket: Target bucket.
        prefix: Final key prefix.
        runs: How many cooperating runs to start.
        deployment: The ``bulk-upload`` deployment to run (``flow-name/deployment-name``);
            it must allow several runs at once (``bulk-upload/default`` runs one at a time).
        credentials_block: Name of an ``HCPCredentials`` block.
        settings_block: Name of an ``HCPTransferSettings`` block.
        tracker_block: Name of an ``HCPTracker`` block; must be PostgreSQL to share the job.
        job: Tracker job name; defaults to ``bulk-upload:<bucket>/<prefix>``.
        settings_overrides: Per-run overrides of transfer settings.
        batch_size: Files claimed per batch.
        timeout_seconds: Give up waiting for the children after this long (None: wait).
    """
    check_job_inputs(bucket, prefix, batch_size)
    check_count("runs", runs)
    logger = get_run_logger()
    blocks = await load_blocks(credentials_block, None, tracker_block, None)
    if not blocks.tracker.is_shared:
        raise ValueError(
            f"tracker block {tracker_block!r} is SQLite: parallel runs need a PostgreSQL tracker to share a job"
        )
    job = job_name("bulk-upload", bucket, prefix, job)
    await tag_run(bucket)
    parameters = {
        "source_dir": str(folder_parameter("source_dir", source_dir)),  # the children run elsewhere
        "bucket": bucket,
        "prefix": prefix,
        "credentials_block": credentials_block,
        "settings_block": settings_block,
        "tracker_block": tracker_block,
        "settings_overrides": settings_overrides,
        "job": job,
        "batch_size": batch_size,
        "cooperative": True,
    }
    children = await asyncio.gather(
        *(
            arun_deployment(
                deployment,
                parameters=parameters,
                flow_run_name=f"{job} [{index + 1}/{runs}]",
                timeout=timeout_seconds,
                poll_interval=2,
            )
            for index in range(runs)
        )
    )
    states = [{"flow_run": str(child.id), "state": child.state.name if child.state else "unknown"} for child in children]
    tracker = blocks.tracker.get_tracker(job)
    try:
        counts = tracker.summary()
        info = tracker.job_info()
    finally:
        tracker.close()
    await publish_job_status(job, counts)
    committed = info is not None and info.state == JobState.committed
    logger.info("Job %s: %s; children: %s", job, counts, states)
    if not committed:
        raise FanOutFailed(f"job {job} is {info.state.value if info else 'unknown'} with {counts}: children {states}")
    return {"job": job, "runs": states, **counts, "state": JobState.committed.value}
