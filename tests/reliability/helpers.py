"""Checks shared by the reliability tests: content hashes of trees and buckets, tracker views,
and what a flow run left in Prefect (logs, artifacts)."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from uuid import UUID

from rahcp_prefect.bulk.paths import TEMP_PREFIX
from rahcp_prefect.job.manifest import MANIFEST_NAME
from rahcp_prefect.job.mtimes import TAG_FILES
from rahcp_prefect.testing.records import without_records  # noqa: F401 (shared by the tests)
from rahcp_prefect.tracker import TrackerProtocol, create_tracker


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def tree_hashes(root: Path) -> dict[str, str]:
    """``{relative/path: sha256}`` of every file under ``root`` (temporary files included)."""
    out: dict[str, str] = {}
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            path = Path(dirpath) / name
            out[path.relative_to(root).as_posix()] = sha256(path.read_bytes())
    return out


def landed_hashes(staging: Path) -> dict[str, str]:
    """``{relative/path: sha256}`` of the files a download completed in its staging folder
    (under their final names: the partial ``TEMP_PREFIX`` files left out)."""
    return {rel: digest for rel, digest in tree_hashes(staging).items() if not Path(rel).name.startswith(TEMP_PREFIX)}


def bucket_listing(emulator: Any, bucket: str, prefix: str = "") -> list[tuple[str, int]]:
    """``(key, size)`` of every object under ``prefix``, in listing order (duplicates kept)."""
    found: list[tuple[str, int]] = []
    for page in emulator.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        found.extend((item["Key"], item["Size"]) for item in page.get("Contents", []))
    return found


def put_objects(emulator: Any, bucket: str, prefix: str, bodies: dict[str, bytes]) -> dict[str, str]:
    """Write ``bodies`` (relative path -> bytes) under ``prefix`` straight into S3, as another
    tool would; returns ``{relative/path: sha256}``, what a download must land."""
    for rel, body in bodies.items():
        emulator.s3.put_object(Bucket=bucket, Key=prefix + rel, Body=body)
    return {rel: sha256(body) for rel, body in bodies.items()}


def without_manifest(objects: dict[str, Any]) -> dict[str, Any]:
    """``objects`` (key -> anything) without the job manifests and times a commit writes last."""
    return {key: value for key, value in objects.items() if key.rpartition("/")[2] not in TAG_FILES}


def bucket_hashes(emulator: Any, bucket: str, prefix: str = "") -> dict[str, str]:
    """``{key: sha256}`` of every object under ``prefix`` (read through the emulator's boto3)."""
    s3 = emulator.s3
    return {
        key: sha256(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        for key, _size in bucket_listing(emulator, bucket, prefix)
    }


def open_multipart_uploads(emulator: Any, bucket: str) -> list[str]:
    """Keys of multipart uploads neither completed nor aborted."""
    answer = emulator.s3.list_multipart_uploads(Bucket=bucket)
    return [upload["Key"] for upload in answer.get("Uploads", [])]


def partial_files(root: Path) -> list[str]:
    """Temporary download files (``.rahcp-part.*``) anywhere under ``root``."""
    return [str(path) for path in root.rglob(f"{TEMP_PREFIX}*")] if root.exists() else []


@contextmanager
def job_tracker(target: str | Path, job: str) -> Iterator[TrackerProtocol]:
    tracker = create_tracker(target, job=job)
    try:
        yield tracker
    finally:
        tracker.close()


def data_requests(emulator: Any, method: str | None = None) -> int:
    """Requests clients sent straight to S3 (presigned URLs), optionally of one method."""
    return sum(
        n for (plane, verb, _route), n in emulator.request_counts.items()
        if plane == "data" and (method is None or verb == method)
    )


def api_requests(emulator: Any) -> int:
    return sum(n for (plane, _verb, _route), n in emulator.request_counts.items() if plane == "api")


async def flow_artifacts(flow_run_id: UUID) -> list[Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    async with get_client() as client:
        return await client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )


async def flow_logs(flow_run_id: UUID) -> list[str]:
    """The messages the flow run logged, read back from the Prefect API (flushed first)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.logging.handlers import APILogHandler

    await APILogHandler.aflush()
    async with get_client() as client:
        logs = await client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
    return [log.message for log in logs]


def summary_metric(artifacts: list[Any], metric: str) -> Any:
    """The value of count ``metric`` (its words, e.g. ``"transfers retried"``) in the run's
    markdown summary artifact (key ``summary-<job>``), as an int when it is a number."""
    import re

    for artifact in artifacts:
        if artifact.type == "markdown" and artifact.key and artifact.key.startswith("summary-"):
            for label, value in re.findall(r"^\| ([^|]+?) \| ([^|]+?) \|$", str(artifact.data), re.M):
                if label == metric:
                    digits = value.replace(",", "")
                    return int(digits) if digits.isdigit() else value
    raise AssertionError(f"no summary artifact with {metric!r} among {[a.key for a in artifacts]}")


FLOW_SCRIPT = """
import asyncio, faulthandler, json, signal, sys
faulthandler.register(signal.SIGUSR1, all_threads=True)  # a run slow to stop shows where it waits
from rahcp_prefect.flows import bulk_download, bulk_upload
flow = {"upload": bulk_upload, "download": bulk_download}[sys.argv[1]]
print("RESULT " + json.dumps(asyncio.run(flow(**json.loads(sys.argv[2])))), flush=True)
"""


def signal_flow_when(
    kind: str, params: dict[str, Any], log: Path, ready: Callable[[], bool], sig: int, wait: float = 30.0,
    *, script: str = FLOW_SCRIPT, args: tuple[str, ...] = (), send: Callable[[], None] | None = None,
    dump_after: float = 5.0,
) -> tuple[int, float]:
    """Run the ``kind`` flow (``upload``/``download``) in a child process on this session's
    Prefect API, output to ``log``, and send it ``sig`` as soon as ``ready()`` (or call ``send``
    instead); returns its exit code and the seconds it took to exit after the signal (killed
    after ``wait``). ``script`` runs the flow (``FLOW_SCRIPT``), with ``args`` after the two of it.
    A run still there ``dump_after`` seconds after the signal is sent SIGUSR1: ``FLOW_SCRIPT``
    writes every thread's stack to the log then, so a slow stop shows where it waited."""
    from prefect.settings import PREFECT_API_URL

    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value()), "PREFECT_LOGGING_LEVEL": "INFO"}
    with log.open("w") as out:
        child = subprocess.Popen(
            [sys.executable, "-c", script, kind, json.dumps(params), *args], env=env, stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 120
            while not ready():
                assert child.poll() is None, f"the run ended before the signal: {log.read_text()[-3000:]}"
                assert time.monotonic() < deadline, "the run never reached the point to signal it"
                time.sleep(0.05)
            if send is None:
                child.send_signal(sig)
            else:
                send()
            sent = time.monotonic()
            try:
                child.wait(min(dump_after, wait))
            except subprocess.TimeoutExpired:
                if sig != signal.SIGKILL and "faulthandler.register" in script:
                    child.send_signal(signal.SIGUSR1)
                child.wait(max(0.0, wait - (time.monotonic() - sent)))
            return child.returncode, time.monotonic() - sent
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()


async def with_lease(blocks: Any, seconds: float) -> Any:
    """``blocks`` (``SavedBlocks``) with its SQLite tracker block saved again with ``lease_seconds``."""
    from rahcp_prefect.blocks import HCPTracker

    await HCPTracker(sqlite_path=str(blocks.tracker_path), lease_seconds=seconds).save(blocks.tracker, overwrite=True)
    return blocks
