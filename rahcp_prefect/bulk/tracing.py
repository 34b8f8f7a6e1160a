"""Spans of one bulk run: a job span around the pipeline (bucket, prefix, files, bytes,
errors, status) and, only while that span is recorded, one span per file (key, bytes, status).

Without OpenTelemetry or without a tracer provider the job span is a no-op and the workers get
the plain handler back: the per-file path costs nothing then. API requests made while a file
or the job is handled (presign, multipart, listing) become children of its span.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from rahcp_prefect.client.tracing import set_error, span

from .stats import TransferStats, error_text

W = TypeVar("W", bound=tuple)
FileHandler = Callable[[W, "str | None"], Awaitable["BaseException | None"]]
"""A worker's handler: transfers one item and returns its error, or None when it went through."""


class RunSpans:
    """The job span of one run; hands out per-file spans when it is being recorded."""

    def __init__(self, job: Any, bucket: str) -> None:
        self.job = job
        self.bucket = bucket
        self.recording = job.is_recording()

    def files(self, handle: FileHandler[W], name: str, size_at: int) -> FileHandler[W]:
        """``handle`` wrapped in a span per file (``item[0]`` is the key, ``item[size_at]`` the
        size); ``handle`` itself when nothing records the spans."""
        if not self.recording:
            return handle
        bucket = self.bucket

        async def traced(item: W, url: str | None) -> BaseException | None:
            attributes = {"s3.bucket": bucket, "s3.key": item[0], "s3.bytes": item[size_at]}
            with span(name, attributes) as current:
                error = await handle(item, url)
                current.set_attribute("rahcp.status", "ok" if error is None else "error")
                if error is not None:
                    set_error(current, error_text(error))
                return error

        return traced

    def finish(self, stats: TransferStats, *, failed: bool = False) -> None:
        """Record the run's counters and outcome (``ok``, ``errors`` or ``failed``) on the job span."""
        job = self.job
        job.set_attribute("rahcp.files", stats.done)
        job.set_attribute("rahcp.files.ok", stats.ok)
        job.set_attribute("rahcp.files.skipped", stats.skipped)
        job.set_attribute("rahcp.files.errors", stats.errors)
        job.set_attribute("s3.bytes", stats.bytes)
        job.set_attribute("rahcp.retries", stats.retries)
        job.set_attribute("rahcp.api_retries", stats.api_retries)
        job.set_attribute("rahcp.throttled", stats.throttled)
        status = "failed" if failed else "errors" if stats.errors else "ok"
        job.set_attribute("rahcp.status", status)
        if status == "errors":
            set_error(job, f"{stats.errors} file(s) failed")


@contextmanager
def run_spans(name: str, bucket: str, prefix: str) -> Iterator[RunSpans]:
    """The job span ``name`` (e.g. ``bulk.upload``) for a run on ``bucket``/``prefix``."""
    with span(name, {"s3.bucket": bucket, "s3.prefix": prefix}) as job:
        yield RunSpans(job, bucket)
