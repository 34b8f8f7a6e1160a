"""Prefect events for the outcomes of a transfer job, so Automations can react to them.

Every event has the job as its resource (``rahcp.job.<job>``, labelled with ``rahcp.bucket``
and ``rahcp.prefix`` so a trigger can match one prefix), the bucket and the prefix as related
resources, and in its payload the counts and bytes of the run (numbers only), plus the error's
type and redacted message on failure. No secret goes in: blocks and URLs never reach an event.

- ``rahcp.upload.committed``: a run committed staging to the final prefix
- ``rahcp.upload.rolled_back``: a run deleted its staging after a failure (final prefix untouched)
- ``rahcp.upload.failed``: a run failed (``rolled_back`` says whether staging was deleted)
- ``rahcp.download.completed``: every object is in the destination folder
- ``rahcp.download.failed``: a run failed; the destination is untouched
- ``rahcp.verify.mismatch``: ``bulk-verify`` found objects whose bytes differ from the record

The flows call one function here per outcome; emitting never fails a run (a Prefect without
events, or an events client that cannot connect, only loses the event).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from prefect.events import Event, emit_event

from rahcp_prefect.client.redaction import redact_text
from rahcp_prefect.tracker.protocol import JobState, TrackerProtocol

logger = logging.getLogger(__name__)

UPLOAD_COMMITTED = "rahcp.upload.committed"
UPLOAD_ROLLED_BACK = "rahcp.upload.rolled_back"
UPLOAD_FAILED = "rahcp.upload.failed"
DOWNLOAD_COMPLETED = "rahcp.download.completed"
DOWNLOAD_FAILED = "rahcp.download.failed"
VERIFY_MISMATCH = "rahcp.verify.mismatch"

_MESSAGE_LIMIT = 500
_KEYS_LIMIT = 20


def job_resource(job: str, bucket: str, prefix: str) -> dict[str, str]:
    """The event resource of a job: ``rahcp.job.<job>`` labelled with its bucket and prefix."""
    return {
        "prefect.resource.id": f"rahcp.job.{job}",
        "prefect.resource.name": job,
        "rahcp.bucket": bucket,
        "rahcp.prefix": prefix,
    }


def related_resources(bucket: str, prefix: str) -> list[dict[str, str]]:
    """The bucket (``rahcp.bucket.<bucket>``) and the prefix (``rahcp.prefix.<bucket>/<prefix>``)."""
    return [
        {"prefect.resource.id": f"rahcp.bucket.{bucket}", "prefect.resource.role": "bucket",
         "prefect.resource.name": bucket},
        {"prefect.resource.id": f"rahcp.prefix.{bucket}/{prefix}", "prefect.resource.role": "prefix",
         "prefect.resource.name": prefix},
    ]


def counts_of(totals: Mapping[str, Any] | None) -> dict[str, int | float]:
    """The numeric fields of a run's result (``ok``, ``errors``, ``bytes``, ``committed``...)."""
    return {
        name: value
        for name, value in (totals or {}).items()
        if isinstance(value, (int, float)) and not isinstance(value, bool)
    }


def emit_job_event(
    event: str,
    job: str,
    bucket: str,
    prefix: str,
    totals: Mapping[str, Any] | None = None,
    error: BaseException | None = None,
    **details: Any,
) -> Event | None:
    """Emit ``event`` for ``job``: counts from ``totals``, the error's type and redacted message,
    and ``details`` (plain values) in the payload. Returns the event, or None if not sent."""
    counts = counts_of(totals)
    payload: dict[str, Any] = {
        "job": job, "bucket": bucket, "prefix": prefix,
        "counts": counts, "bytes": int(counts.get("bytes", 0)), **details,
    }
    if error is not None:
        payload["error"] = type(error).__name__
        payload["message"] = redact_text(str(error))[:_MESSAGE_LIMIT]
    try:
        return emit_event(
            event, resource=job_resource(job, bucket, prefix),
            related=related_resources(bucket, prefix), payload=payload,
        )
    except Exception:  # an event is a notification: it must never fail the transfer
        logger.warning("Could not emit %s for job %s", event, job, exc_info=True)
        return None


def upload_committed(job: str, bucket: str, prefix: str, totals: Mapping[str, Any]) -> Event | None:
    """``rahcp.upload.committed``: staging moved to ``bucket/prefix``."""
    return emit_job_event(UPLOAD_COMMITTED, job, bucket, prefix, totals)


def upload_rolled_back(
    job: str, bucket: str, prefix: str, totals: Mapping[str, Any], error: BaseException
) -> Event | None:
    """``rahcp.upload.rolled_back``: staging deleted after ``error`` (the run then also ends
    with ``rahcp.upload.failed``)."""
    return emit_job_event(UPLOAD_ROLLED_BACK, job, bucket, prefix, totals, error)


def upload_failed(
    job: str, bucket: str, prefix: str, tracker: TrackerProtocol, error: BaseException
) -> Event | None:
    """``rahcp.upload.failed``: the run failed, after a rollback (``rolled_back``: the job's
    keys were forgotten with its staging) or with staging kept for the next run of the job
    (the job's counts per status: ``pending``, ``done``, ``error``)."""
    info = tracker.job_info()
    rolled_back = info is not None and info.state == JobState.rolled_back
    return emit_job_event(UPLOAD_FAILED, job, bucket, prefix, tracker.summary(), error, rolled_back=rolled_back)


def download_completed(
    job: str, bucket: str, prefix: str, totals: Mapping[str, Any], dest_dir: str
) -> Event | None:
    """``rahcp.download.completed``: every object of ``bucket/prefix`` is in ``dest_dir``."""
    return emit_job_event(DOWNLOAD_COMPLETED, job, bucket, prefix, totals, dest_dir=dest_dir)


def download_failed(
    job: str, bucket: str, prefix: str, tracker: TrackerProtocol, error: BaseException
) -> Event | None:
    """``rahcp.download.failed``: the run failed, the destination is untouched (the job's
    counts per status: ``pending``, ``done``, ``error``)."""
    return emit_job_event(DOWNLOAD_FAILED, job, bucket, prefix, tracker.summary(), error)


def emit_verify_mismatch(
    job: str,
    bucket: str,
    prefix: str,
    mismatched: Sequence[str],
    totals: Mapping[str, Any] | None = None,
) -> Event | None:
    """``rahcp.verify.mismatch``: ``mismatched`` keys differ from what was recorded (the count,
    and the first 20 keys, go in the payload)."""
    return emit_job_event(
        VERIFY_MISMATCH, job, bucket, prefix, totals,
        mismatched=len(mismatched), keys=list(mismatched[:_KEYS_LIMIT]),
    )
