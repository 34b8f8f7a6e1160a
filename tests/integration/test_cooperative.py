"""Many flow runs, one job: 3 bulk-upload runs in separate processes share a job through the
PostgreSQL tracker; every file lands exactly once, one run commits, and a run killed -9
half-way loses nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from prefect.settings import PREFECT_API_URL
from pydantic import SecretStr

from rahcp_prefect.blocks import HCPTracker
from rahcp_prefect.job import STAGING_ROOT
from rahcp_prefect.job.manifest import MANIFEST_NAME, MTIMES_NAME
from rahcp_prefect.job.records import is_record_key
from rahcp_prefect.tracker import JobState, create_tracker

from .conftest import SavedBlocks

FILES = 3000
RUN_SCRIPT = """
import asyncio, json, sys
from rahcp_prefect.flows import bulk_upload
params = json.loads(sys.argv[1])
result = asyncio.run(bulk_upload(**params))
print("RESULT " + json.dumps(result))
"""


def _make_files(root: Path) -> dict[str, int]:
    sizes: dict[str, int] = {}
    for index in range(FILES):
        rel = f"box{index % 20:02d}/scan-{index:05d}.tif"
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"%05d" % index * (1 + index % 7))
        sizes[rel] = path.stat().st_size
    return sizes


@pytest.fixture
async def shared_blocks(saved_blocks: SavedBlocks, postgres_dsn: str) -> SavedBlocks:
    """The saved blocks, with the tracker block pointing at the shared PostgreSQL (short leases)."""
    await HCPTracker(postgres_dsn=SecretStr(postgres_dsn), lease_seconds=6).save(saved_blocks.tracker, overwrite=True)
    return saved_blocks


def _shared_job(name: str, tmp_path: Path, bucket: str, blocks: SavedBlocks) -> tuple[dict[str, int], dict[str, Any]]:
    """``FILES`` files under ``tmp_path/src`` (their sizes) and the bulk-upload parameters of a
    new job ``<name>-<random>`` sending them to ``final/``, which every run of the test shares."""
    sizes = _make_files(tmp_path / "src")
    params = {"source_dir": str(tmp_path / "src"), "bucket": bucket, "prefix": "final/",
              "job": f"{name}-{uuid.uuid4().hex[:8]}", "batch_size": 100, **blocks.params()}
    return sizes, params


def _start_runs(count: int, params: dict[str, Any], logs: Path) -> list[subprocess.Popen[str]]:
    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value()), "PREFECT_LOGGING_LEVEL": "WARNING"}
    runs = []
    for index in range(count):
        out = (logs / f"run{index}.log").open("w")
        runs.append(
            subprocess.Popen(
                [sys.executable, "-c", RUN_SCRIPT, json.dumps(params)],
                env=env, stdout=subprocess.PIPE, stderr=out, text=True,
            )
        )
    return runs


def _results(runs: list[subprocess.Popen[str]], skip: set[int] = frozenset()) -> list[dict[str, Any]]:
    results = []
    for index, run in enumerate(runs):
        stdout, _ = run.communicate(timeout=400)
        if index in skip:
            continue
        assert run.returncode == 0, f"run {index} failed: {stdout[-2000:]}"
        line = [text for text in stdout.splitlines() if text.startswith("RESULT ")][-1]
        results.append(json.loads(line[len("RESULT "):]))
    return results


def _check_job_landed_once(emulator: Any, bucket: str, dsn: str, job: str, sizes: dict[str, int]) -> None:
    s3 = emulator.s3
    final: dict[str, int] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="final/"):
        final.update({item["Key"]: item["Size"] for item in page.get("Contents", [])})
    assert final.pop(f"final/{MANIFEST_NAME}", None) is not None, "the commit wrote the manifest last"
    assert final.pop(f"final/{MTIMES_NAME}", None) is not None, "and the files' times"
    records = [key for key in final if is_record_key("final/", key)]
    assert len(records) == 2, "and the commit's record (a manifest and times)"
    assert {k: v for k, v in final.items() if k not in records} == {f"final/{rel}": size for rel, size in sizes.items()}
    assert s3.list_objects_v2(Bucket=bucket, Prefix=STAGING_ROOT).get("KeyCount", 0) == 0
    tracker = create_tracker(dsn, job=job)
    try:
        assert tracker.summary() == {"pending": 0, "done": FILES, "error": 0}
        info = tracker.job_info()
        assert info is not None and info.state == JobState.committed
    finally:
        tracker.delete_job()
        tracker.close()


def _copies(emulator: Any) -> int:
    return sum(n for (plane, method, route), n in emulator.request_counts.items()
               if plane == "api" and method == "POST" and route.endswith("/copy"))


def _puts(emulator: Any) -> int:
    return sum(n for (plane, method, _), n in emulator.request_counts.items() if plane == "data" and method == "PUT")


@pytest.mark.slow
async def test_three_runs_share_one_job(
    shared_blocks: SavedBlocks, postgres_dsn: str, hcp_emulator: Any, hcp_bucket: str, tmp_path: Path
) -> None:
    sizes, params = _shared_job("coop", tmp_path, hcp_bucket, shared_blocks)
    job = params["job"]
    results = _results(_start_runs(3, params, tmp_path))

    assert all(result["outcome"] in ("committed", "commit left to the run holding the lock") for result in results)
    assert sum(result.get("committed", 0) for result in results) == FILES, "exactly one commit moved every file"
    assert sum(result["ok"] for result in results) == FILES, "no file was sent twice"
    assert sum(1 for result in results if result["ok"] > 0) >= 2, "the work was shared"
    assert _puts(hcp_emulator) == FILES + 4, "every file sent once, plus the commit's record and the prefix's manifest (each with times)"
    assert _copies(hcp_emulator) == FILES
    _check_job_landed_once(hcp_emulator, hcp_bucket, postgres_dsn, job, sizes)


@pytest.mark.slow
async def test_a_run_killed_half_way_loses_nothing(
    shared_blocks: SavedBlocks, postgres_dsn: str, hcp_emulator: Any, hcp_bucket: str, tmp_path: Path
) -> None:
    sizes, params = _shared_job("coop-kill", tmp_path, hcp_bucket, shared_blocks)
    job = params["job"]
    runs = _start_runs(3, params, tmp_path)
    watcher = create_tracker(postgres_dsn, job=job)
    try:
        deadline = time.monotonic() + 300
        while watcher.summary().get("done", 0) < FILES // 2:
            assert time.monotonic() < deadline, "the runs made no progress"
            assert all(run.poll() is None for run in runs), "a run ended before half the files were done"
            time.sleep(0.2)
    finally:
        watcher.close()
    runs[0].send_signal(signal.SIGKILL)
    results = _results(runs, skip={0})

    assert runs[0].returncode == -signal.SIGKILL
    assert sum(result.get("committed", 0) for result in results) == FILES
    _check_job_landed_once(hcp_emulator, hcp_bucket, postgres_dsn, job, sizes)
