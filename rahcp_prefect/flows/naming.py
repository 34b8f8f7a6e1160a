"""Runs you can read in a list: flow run names from the parameters and tags per bucket.

``upload /data/scans -> archive/2026/`` instead of ``amigurumi-axolotl``: the names are
``flow_run_name`` callables reading the run's parameters, the tags (``rahcp``,
``bucket:<name>``) are added to the flow run when it starts, so the run list filters by bucket.
"""

from __future__ import annotations

import logging
from typing import Any
from uuid import UUID

from prefect.runtime import flow_run

logger = logging.getLogger(__name__)

RUN_TAG = "rahcp"


def _parameters() -> dict[str, Any]:
    return dict(flow_run.parameters or {})


def _dry(parameters: dict[str, Any]) -> str:
    return " (dry run)" if parameters.get("dry_run") else ""


def upload_run_name() -> str:
    """``upload /data/scans -> archive/2026/``."""
    p = _parameters()
    return f"upload {p.get('source_dir', '?')} -> {p.get('bucket', '?')}/{p.get('prefix', '')}{_dry(p)}"


def download_run_name() -> str:
    """``download archive/2026/ -> /data/restore``."""
    p = _parameters()
    return f"download {p.get('bucket', '?')}/{p.get('prefix', '')} -> {p.get('dest_dir', '?')}{_dry(p)}"


def parallel_run_name() -> str:
    """``upload x4 /data/scans -> archive/2026/``."""
    p = _parameters()
    return f"upload x{p.get('runs', 2)} {p.get('source_dir', '?')} -> {p.get('bucket', '?')}/{p.get('prefix', '')}"


def verify_run_name() -> str:
    """``verify archive/2026/``."""
    p = _parameters()
    return f"verify {p.get('bucket', '?')}/{p.get('prefix', '')}"


def cleanup_run_name() -> str:
    """``cleanup-staging older than 24 h`` (or of one job)."""
    p = _parameters()
    what = f"of {p['job']}" if p.get("job") else "of every job"
    return f"cleanup-staging {what} idle {p.get('older_than_hours', 24.0):g} h{_dry(p)}"


def run_tags(*buckets: str | None) -> list[str]:
    """``["rahcp", "bucket:<name>"...]``."""
    return [RUN_TAG] + [f"bucket:{bucket}" for bucket in buckets if bucket]


async def tag_run(*buckets: str | None) -> None:
    """Add ``run_tags(buckets)`` to the current flow run (kept: its deployment's own tags).
    Tags are for finding runs: a failure to set them is logged, never fatal."""
    run_id = flow_run.get_id()
    if not run_id:
        return
    from prefect.client.orchestration import get_client

    try:
        async with get_client() as client:
            current = await client.read_flow_run(UUID(run_id))
            wanted = list(dict.fromkeys([*(current.tags or []), *run_tags(*buckets)]))
            if wanted != list(current.tags or []):
                await client.update_flow_run(UUID(run_id), tags=wanted)
    except Exception as exc:
        logger.warning("could not tag flow run %s: %s", run_id, exc)


def run_link(flow_run_id: object) -> str:
    """The Prefect UI page of a flow run (``PREFECT_UI_URL``, derived from the API URL when
    unset), or the run id when no UI is known."""
    from prefect.settings import PREFECT_UI_URL

    ui = PREFECT_UI_URL.value()
    return f"{ui.rstrip('/')}/runs/flow-run/{flow_run_id}" if ui else f"flow run {flow_run_id}"
