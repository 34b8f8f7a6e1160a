"""One bulk run, the part upload and download share: presigned items through the worker pool
inside the job span, then the final counters; a failed or cancelled run keeps what was done."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any, TypeVar

from .concurrency import AdaptiveWindow
from .pipeline import run_pipeline
from .presigner import Presigner
from .stats import Recorder, TransferStats, throttled_count
from .tracing import FileHandler, run_spans

logger = logging.getLogger(__name__)

W = TypeVar("W", bound=tuple)


async def run_job(
    name: str,
    cfg: Any,
    rec: Recorder,
    presigner: Presigner[W],
    items: AsyncIterator[W],
    handle: FileHandler[W],
    size_at: int,
) -> TransferStats:
    """Run ``items`` through ``presigner`` and ``cfg.workers`` workers under the span ``name``
    (file spans ``<name>.file``, the size at ``item[size_at]``); returns the final stats.
    The files in flight follow the store: cut while it throttles, back up to ``cfg.workers``."""
    client = cfg.client
    window = AdaptiveWindow(cfg.workers, lambda: throttled_count(client))
    with run_spans(name, cfg.bucket, cfg.prefix) as spans:
        traced = window.gate(spans.files(handle, f"{name}.file", size_at=size_at))
        try:
            await run_pipeline(presigner.pairs(items), traced, workers=cfg.workers, queue_depth=cfg.queue_depth)
        except BaseException:
            _flush_quietly(cfg.tracker)
            spans.finish(rec.snapshot(), failed=True)
            raise
        stats = rec.finish()
        spans.finish(stats)
    if window.cuts:
        logger.info(
            "%s: the store throttled %d requests; files in flight were cut %d times (lowest %.1f of %d)",
            name, stats.throttled, window.cuts, window.lowest, cfg.workers,
        )
    return stats


def _flush_quietly(tracker: Any) -> None:
    """Keep what was done on a failed or cancelled run (the error being raised wins)."""
    try:
        tracker.flush()
    except Exception:
        logger.exception("tracker commit failed while the run was failing")
