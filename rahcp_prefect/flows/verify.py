"""The ``bulk-verify`` flow: re-read every object of a prefix and check it against the manifest.

Digital-preservation practice re-checks an archive's fixity on a schedule: this flow streams
every object under ``bucket/prefix`` through the engine's worker pool on presigned GETs,
hashes it (SHA-256) and discards the bytes, then compares with the prefix's
``manifest-sha256.txt`` (or, without one, the job's tracker records). Its summary artifact,
``bulk-verify-<job or bucket-prefix>``, counts matches, mismatches, missing and extra objects
and names the first of each; the run fails when anything does not match.
"""

from __future__ import annotations

from functools import partial
from time import monotonic
from typing import Any, Literal

from prefect import flow, get_run_logger
from prefect.artifacts import acreate_table_artifact

from rahcp_prefect import defaults
from rahcp_prefect.bulk.validation import check_bucket
from rahcp_prefect.events import emit_verify_mismatch
from rahcp_prefect.bulk.verify import hash_objects
from rahcp_prefect.flows.artifacts import artifact_key
from rahcp_prefect.flows.common import load_blocks
from rahcp_prefect.flows.naming import tag_run, verify_run_name
from rahcp_prefect.job.audit import FIRST_NAMED, AuditReport, StreamedAudit, expected_from_tracker
from rahcp_prefect.job.manifest import manifest_key
from rahcp_prefect.job.mtimes import mtimes_outside_manifest
from rahcp_prefect.job.records import RECORDS_DIR, Fixity, is_record_key, read_fixity
from rahcp_prefect.errors import RahcpError

Against = Literal["auto", "manifest", "tracker"]


class FixityCheckFailed(RahcpError, RuntimeError):
    """bulk-verify found objects that do not match (named in the message and the artifact)."""


@flow(name="bulk-verify", flow_run_name=verify_run_name, log_prints=False)
async def bulk_verify(
    bucket: str,
    prefix: str = "",
    credentials_block: str = "hcp",
    settings_block: str | None = None,
    tracker_block: str | None = None,
    job: str | None = None,
    against: Against = "auto",
    workers: int = defaults.WORKERS,
) -> dict[str, Any]:
    """Hash every object under ``bucket/prefix`` and check it against the manifest.

    Args:
        bucket: The bucket to audit.
        prefix: The final prefix of the job (where ``manifest-sha256.txt`` lives).
        credentials_block: Name of an ``HCPCredentials`` block.
        settings_block: Name of an ``HCPTransferSettings`` block (defaults when empty).
        tracker_block: Name of an ``HCPTracker`` block, for ``against="tracker"``.
        job: The tracker job whose records to check against (without a manifest); also names
            the artifact.
        against: ``manifest``, ``tracker``, or ``auto`` (the manifest when there is one, else
            the tracker when ``job`` is given).
        workers: Objects read at once.
    """
    check_bucket(bucket)
    if against not in ("auto", "manifest", "tracker"):
        raise ValueError(f"against must be 'auto', 'manifest' or 'tracker', not {against!r}")
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    logger = get_run_logger()
    blocks = await load_blocks(credentials_block, settings_block, tracker_block, None)
    await tag_run(bucket)
    started = monotonic()
    manifest_at = manifest_key(prefix)
    async with blocks.credentials.get_client(blocks.settings) as client:
        fixity = await read_fixity(client, bucket, prefix) if against != "tracker" else None
        expected = fixity.digests if fixity is not None and fixity.found else None
        unrecorded: list[str] = []
        tracker = None
        if expected is None:
            if against == "manifest" or job is None:
                raise FixityCheckFailed(
                    f"bulk-verify: no fixity record ({bucket}/{prefix}{RECORDS_DIR}) and no {manifest_at} in bucket {bucket!r}"
                    + ("" if against == "manifest" else " and no job given to check against its tracker records")
                )
            tracker = blocks.tracker.get_tracker(job)
        try:  # the tracker's records are read in step with the objects, a page at a time
            if tracker is None:
                audit = StreamedAudit(sorted((expected or {}).items()), "manifest")
            else:
                audit = StreamedAudit(expected_from_tracker(tracker, unrecorded), "tracker")
            skip = partial(is_record_key, prefix)  # the job's own files (records, tag files), not its payload
            hashed = await hash_objects(client, bucket, prefix=prefix, skip=skip, workers=workers, on_hashed=audit.hashed)
        finally:
            if tracker is not None:
                tracker.close()
        tag_problems = _times_outside(fixity, bucket, prefix) if tracker is None else []
    report = audit.finish()
    source = report.source
    report.tag_files = tag_problems
    report.unrecorded = unrecorded
    elapsed = monotonic() - started
    name = job or f"{bucket}-{prefix}"
    await _publish(name, bucket, prefix, report, hashed.bytes, elapsed)
    result = {
        "bucket": bucket,
        "prefix": prefix,
        "against": source,
        "expected": report.expected,
        "matches": report.matches,
        "mismatches": len(report.mismatches),
        "missing": len(report.missing),
        "extra": len(report.extra),
        "unreadable": len(report.unreadable),
        "unrecorded": len(report.unrecorded),
        "bytes": hashed.bytes,
        "retries": hashed.retries,
        "elapsed": round(elapsed, 3),
        "ok": report.ok,
    }
    if not report.ok:
        bad = [key for key, _want, _found in report.mismatches] + report.missing + report.extra + sorted(report.unreadable)
        emit_verify_mismatch(name, bucket, prefix, bad, result)
        raise FixityCheckFailed(f"bulk-verify {bucket}/{prefix}: {report.summary()}")
    logger.info("bulk-verify %s/%s: %s", bucket, prefix, report.summary())
    return result


def _times_outside(fixity: Fixity | None, bucket: str, prefix: str) -> list[str]:
    """Files the records give a time but no SHA-256 (a tag file of another commit)."""
    if fixity is None:
        return []
    relative = {key[len(prefix):]: mtime for key, mtime in fixity.mtimes.items()}
    return mtimes_outside_manifest(relative, (key[len(prefix):] for key in fixity.digests), f"{bucket}/{prefix}")


async def _publish(name: str, bucket: str, prefix: str, report: AuditReport, nbytes: int, elapsed: float) -> None:
    rows: list[dict[str, Any]] = [
        {"metric": "outcome", "value": "ok" if report.ok else "failed"},
        {"metric": "checked against", "value": report.source},
        {"metric": "objects expected", "value": report.expected},
        {"metric": "matches", "value": report.matches},
        {"metric": "mismatches", "value": len(report.mismatches)},
        {"metric": "missing", "value": len(report.missing)},
        {"metric": "extra", "value": len(report.extra)},
        {"metric": "unreadable", "value": len(report.unreadable)},
        {"metric": "bytes read", "value": nbytes},
        {"metric": "elapsed s", "value": round(elapsed, 2)},
    ]
    rows += [{"metric": "problem", "value": line[:300]} for line in report.problems()[:FIRST_NAMED]]
    await acreate_table_artifact(
        table=rows, key=artifact_key(f"bulk-verify-{name}"), description=f"bulk-verify {bucket}/{prefix}"
    )
