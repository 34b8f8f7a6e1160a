"""One bulk run, the part upload and download share: presigned items through the worker pool
inside the job span, then the final counters; a failed or cancelled run keeps what was done."""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator
from typing import Any, TypeVar

from rahcp_prefect.client.concurrency import AdaptiveWindow, client_signals

from .pipeline import run_pipeline
from .presigner import Presigner
from .stats import Recorder, TransferStats
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
    """Run ``items`` through ``presigner`` and the workers under the span ``name`` (file spans
    ``<name>.file``, the size at ``item[size_at]``); returns the final stats. The files in
    flight follow the store: ``cfg.workers`` at first, more while throughput rises with them
    (up to ``cfg.max_workers``), fewer while it throttles or fails; the stats keep the range."""
    window = AdaptiveWindow(cfg.workers, client_signals(cfg.client), cap=cfg.max_workers)
    with run_spans(name, cfg.bucket, cfg.prefix) as spans:
        traced = spans.files(handle, f"{name}.file", size_at=size_at)
        try:
            await run_pipeline(
                presigner.batches(items), traced, workers=cfg.workers, queue_depth=cfg.queue_depth,
                window=window, size_at=size_at,
            )
        except BaseException:
            _flush_quietly(cfg.tracker)
            spans.finish(rec.snapshot(), failed=True)
            raise
        stats = rec.finish(window=(math.floor(window.lowest), math.ceil(window.highest)))
        spans.finish(stats)
    if window.cuts or window.probes:
        logger.info(
            "%s: files in flight %s (started at %d, cap %d; %d cut(s), %d throttled request(s), %d probe(s))",
            name, window.range_text(), cfg.workers, window.cap, window.cuts, stats.throttled, window.probes,
        )
    return stats


def _flush_quietly(tracker: Any) -> None:
    """Keep what was done on a failed or cancelled run (the error being raised wins)."""
    try:
        tracker.flush()
    except Exception:
        logger.exception("tracker commit failed while the run was failing")
