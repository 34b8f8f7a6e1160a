"""Interruption is not failure: a SIGTERM (what a worker sends on cancel, Kubernetes on
eviction) or SIGINT to a flow run's process mid-upload keeps staging and the done marks,
releases the job lease, and ends the run promptly as Crashed/Cancelled, never rolled back;
the next run sends only what is missing.

Each interrupted run is a child process (``python -c``) on the session's Prefect API; the rerun
runs in-process. A data-plane delay keeps the upload going long enough to interrupt it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from prefect.settings import PREFECT_API_URL

from rahcp_prefect.blocks import HCPTracker
from rahcp_prefect.flows import bulk_upload
from rahcp_prefect.job import STAGING_ROOT
from rahcp_prefect.testing.prefect_fixtures import SavedBlocks
from rahcp_prefect.tracker import JobState

from .helpers import bucket_hashes, bucket_listing, data_requests, job_tracker, tree_hashes, without_manifest

FILES = 60
LEASE = 120.0  # long: a lease seen free right after the run ended was released, not expired
GRACE = 10.0  # the run must be gone well inside the 30 s a worker or Kubernetes allows
RUN_SCRIPT = """
import asyncio, json, sys
from rahcp_prefect.flows import bulk_upload
print("RESULT " + json.dumps(asyncio.run(bulk_upload(**json.loads(sys.argv[1])))), flush=True)
"""


@pytest.fixture
async def blocks(saved_blocks: SavedBlocks) -> SavedBlocks:
    await HCPTracker(sqlite_path=str(saved_blocks.tracker_path), lease_seconds=LEASE).save(
        saved_blocks.tracker, overwrite=True
    )
    return saved_blocks


def _source(root: Path, files: int = FILES) -> dict[str, str]:
    for index in range(files):
        path = root / f"d{index % 3}" / f"f{index:03d}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(f"file {index}\n".encode() * (1 + index % 40))
    return tree_hashes(root)


def _interrupt_when(params: dict[str, Any], log: Path, ready: Any, sig: int) -> tuple[int, float]:
    """Run ``bulk_upload(**params)`` in a child and send it ``sig`` once ``ready()``; returns its
    exit code and the seconds it took to exit after the signal."""
    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value()), "PREFECT_LOGGING_LEVEL": "INFO"}
    with log.open("w") as err:
        child = subprocess.Popen(
            [sys.executable, "-c", RUN_SCRIPT, json.dumps(params)], env=env, stdout=err, stderr=subprocess.STDOUT
        )
        try:
            deadline = time.monotonic() + 120
            while not ready():
                assert child.poll() is None, f"the run ended before the signal: {log.read_text()[-3000:]}"
                assert time.monotonic() < deadline, "the run never reached the point to interrupt it"
                time.sleep(0.05)
            child.send_signal(sig)
            sent = time.monotonic()
            child.wait(GRACE + 20)
            took = time.monotonic() - sent
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
    return child.returncode, took


async def _flow_run_state(source_dir: str) -> str:
    """The state type of the (one) flow run of this source folder, read from the Prefect API."""
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        runs = await client.read_flow_runs(limit=200)
    mine = [run for run in runs if (run.parameters or {}).get("source_dir") == source_dir]
    assert len(mine) == 1, [run.name for run in runs]
    assert mine[0].state is not None
    return mine[0].state.type.value


@pytest.mark.timeout(180)
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "sigint"])
async def test_a_signal_mid_upload_keeps_staging_and_the_rerun_sends_only_what_is_missing(
    blocks: SavedBlocks, hcp_emulator: Any, hcp_bucket: str, tmp_path: Path, sig: int
) -> None:
    expected = _source(tmp_path / "src")
    params = {"source_dir": str(tmp_path / "src"), "bucket": hcp_bucket, "prefix": "final/", **blocks.params()}
    hcp_emulator.faults.add("data", method="PUT", delay=0.3, count=None)
    code, took = _interrupt_when(params, tmp_path / "run.log", lambda: data_requests(hcp_emulator, "PUT") >= FILES // 3, sig)
    hcp_emulator.faults.clear()
    time.sleep(0.5)  # PUTs the run abandoned finish on the server side
    log = (tmp_path / "run.log").read_text()
    assert code != 0 and took < GRACE, f"exit {code} after {took:.1f} s: {log[-3000:]}"
    assert "RESULT" not in log
    assert "rolled back" not in log and "deleted" not in log, log[-3000:]

    job = f"bulk-upload:{hcp_bucket}/final/"
    staged = dict(bucket_listing(hcp_emulator, hcp_bucket, STAGING_ROOT))
    assert bucket_listing(hcp_emulator, hcp_bucket, "final/") == [], "nothing visible before the commit"
    assert FILES // 3 - 8 <= len(staged) < FILES, "staging kept"
    with job_tracker(blocks.tracker_path, job) as tracker:
        info = tracker.job_info()
        assert info is not None and info.state == JobState.open, "not rolled back"
        assert info.lease_owner is None, "the lease was released, not left to expire"
        done = tracker.done_entries()
    assert done and set(done) <= set(staged), "every done mark has its staged object"
    assert all(staged[key] == size for key, size in done.items())
    assert await _flow_run_state(params["source_dir"]) in {"CRASHED", "CANCELLED"}

    hcp_emulator.reset_counts()
    result = await bulk_upload(**params)
    assert result["outcome"] == "committed" and result["committed"] == FILES
    sent = data_requests(hcp_emulator, "PUT") - 1  # the manifest, written last
    assert sent == result["ok"] <= FILES - len(done), "only what was missing was sent"
    assert without_manifest(bucket_hashes(hcp_emulator, hcp_bucket, "final/")) == {
        f"final/{rel}": digest for rel, digest in expected.items()
    }
    assert bucket_listing(hcp_emulator, hcp_bucket, STAGING_ROOT) == []
