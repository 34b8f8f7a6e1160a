"""What every bulk flow does first: load the blocks, name the job, split work into batches."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from typing import Any, TypeVar

from prefect.runtime import flow_run

from rahcp_prefect import defaults
from rahcp_prefect.block_loading import aload_block
from rahcp_prefect.blocks import HCPCredentials, HCPTracker, HCPTransferSettings
from rahcp_prefect.report.format import relative_key, without_staging

logger = logging.getLogger(__name__)

T = TypeVar("T")

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


def run_id() -> str:
    """This flow run's id (a fresh one outside a flow run, e.g. in a test)."""
    current = flow_run.get_id()
    if current:
        return str(current)
    import uuid

    return uuid.uuid4().hex


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Consecutive lists of ``size`` items, the last one shorter; lazy."""
    if size < 1:
        raise ValueError(f"batch_size must be >= 1, got {size}")
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


def first_errors(errors: list[tuple[str, str]], strip: str = "", limit: int = 3) -> str:
    """``key: message`` of the first ``limit`` errors, for an exception text that names them
    (``strip``, e.g. the staging prefix, is taken off the keys; no staging path is shown, in the
    keys or in the messages)."""
    shown = "; ".join(
        f"{relative_key(key, strip)}: {without_staging(message)[:200]}" for key, message in errors[:limit]
    )
    return shown + (f"; and {len(errors) - limit} more" if len(errors) > limit else "")


async def abatched(items: AsyncIterator[T], size: int) -> AsyncIterator[list[T]]:
    """Consecutive lists of ``size`` items of an async iterator, the last one shorter; lazy."""
    if size < 1:
        raise ValueError(f"batch_size must be >= 1, got {size}")
    batch: list[T] = []
    async for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
