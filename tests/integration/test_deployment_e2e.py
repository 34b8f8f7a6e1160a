"""End to end through a real Prefect server on PostgreSQL: setup, deploy, worker, run.

`prefect server start` on a fresh database of the CI PostgreSQL, `rahcp-prefect setup`
(blocks, process work pool, `prefect deploy --all` of the packaged prefect.yaml), a process
worker, then `prefect deployment run bulk-upload/default --watch` and a look at the objects in
the emulator; two runs of `bulk-upload/default` at once show its concurrency limit (the second
waits in AwaitingConcurrencySlot); then `bulk-upload-parallel/default` fans a job out over two
cooperating runs of `bulk-upload/cooperative`. The tracker block points at the same PostgreSQL.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from rahcp_prefect.testing.records import without_records
from rahcp_prefect.job import STAGING_ROOT
from rahcp_prefect.testing.postgres import fresh_database
from rahcp_prefect.testing.prefect_server import BIN, asyncpg_url, run_deployment, running_server, running_worker

from .conftest import make_tree

@pytest.fixture
def prefect_server(postgres_dsn: str, tmp_path: Path) -> Iterator[dict[str, str]]:
    """A real `prefect server start` on a fresh PostgreSQL database; yields its clients' env."""
    with fresh_database(postgres_dsn) as dsn, running_server(asyncpg_url(dsn), tmp_path) as env:
        yield env


def test_deployment_run_through_a_real_server_and_worker(
    prefect_server: dict[str, str],
    postgres_dsn: str,
    hcp_emulator: Any,
    hcp_credentials: dict[str, Any],
    hcp_bucket: str,
    tmp_path: Path,
) -> None:
    env = {**prefect_server, "HCP_PASSWORD": hcp_credentials["password"]}
    outside = tmp_path / "elsewhere"  # nothing of the checkout is needed: the package carries it
    outside.mkdir()
    setup = subprocess.run(
        [
            str(BIN / "rahcp-prefect"), "setup",
            "--endpoint", hcp_credentials["endpoint"],
            "--username", hcp_credentials["username"],
            "--tenant", hcp_credentials["tenant"],
            "--tracker-dsn", postgres_dsn,
        ],
        env=env, cwd=outside, capture_output=True, text=True, timeout=300,
    )
    assert setup.returncode == 0, setup.stdout[-3000:] + setup.stderr[-3000:]
    assert hcp_credentials["password"] not in setup.stdout + setup.stderr

    files = make_tree(tmp_path / "source", 30)
    def deployment_run(name: str, *params: str) -> subprocess.CompletedProcess[str]:
        return run_deployment(env, outside, name, *params)

    api = env["PREFECT_API_URL"]
    upload = httpx.get(f"{api}/deployments/name/bulk-upload/default", timeout=30).json()
    assert upload["global_concurrency_limit"]["limit"] == 1, upload
    assert upload["concurrency_options"]["collision_strategy"] == "ENQUEUE"
    download = httpx.get(f"{api}/deployments/name/bulk-download/default", timeout=30).json()
    assert download["global_concurrency_limit"]["limit"] == 1
    cooperative = httpx.get(f"{api}/deployments/name/bulk-upload/cooperative", timeout=30).json()
    assert cooperative["global_concurrency_limit"] is None, "the fan-out's children run together"

    def start(prefix: str) -> str:
        parameters = {"source_dir": str(tmp_path / "source"), "bucket": hcp_bucket, "prefix": prefix}
        answer = httpx.post(
            f"{api}/deployments/{upload['id']}/create_flow_run", json={"parameters": parameters}, timeout=30
        )
        answer.raise_for_status()
        return str(answer.json()["id"])

    def state(flow_run: str) -> tuple[str, str]:
        current = httpx.get(f"{api}/flow_runs/{flow_run}", timeout=30).json()["state"] or {}
        return current.get("type", ""), current.get("name", "")

    def wait_for(what: str, condition: Callable[[], bool], timeout: float = 240) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            assert time.monotonic() < deadline, f"timed out waiting until {what}"
            time.sleep(0.5)

    with running_worker(env, "rahcp-process", outside, tmp_path / "worker.log"):
        # Two runs of bulk-upload/default: the second waits for the first (concurrency limit 1,
        # ENQUEUE); slow PUTs keep the first running until the test saw the second waiting.
        gate = hcp_emulator.faults.add("data", method="PUT", delay=5.0, count=None)
        first = start("e2e/")
        wait_for("the first run is running", lambda: state(first)[0] == "RUNNING")
        second = start("queued/")
        wait_for("the second run waits for a slot", lambda: state(second)[1] == "AwaitingConcurrencySlot")
        assert state(first)[0] == "RUNNING"
        hcp_emulator.faults.remove(gate)
        wait_for("both runs completed", lambda: state(first)[0] == state(second)[0] == "COMPLETED")
        run = deployment_run(
            "bulk-upload/default", f"source_dir={tmp_path / 'source'}", f"bucket={hcp_bucket}", "prefix=e2e/"
        )
        fan_out = deployment_run(
            "bulk-upload-parallel/default",
            f"source_dir={tmp_path / 'source'}", f"bucket={hcp_bucket}", "prefix=par/", "runs=2", "batch_size=5",
        )
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-3000:] + (tmp_path / "worker.log").read_text()[-5000:]
    assert "Completed" in output

    s3 = hcp_emulator.s3
    listed = s3.list_objects_v2(Bucket=hcp_bucket, Prefix="e2e/").get("Contents", [])
    assert set(without_records(dict.fromkeys(item["Key"] for item in listed), "e2e/")) == {f"e2e/{rel}" for rel in files}
    queued = s3.list_objects_v2(Bucket=hcp_bucket, Prefix="queued/").get("Contents", [])
    assert set(without_records(dict.fromkeys(item["Key"] for item in queued), "queued/")) == {f"queued/{rel}" for rel in files}
    sample = sorted(files)[3]
    assert s3.get_object(Bucket=hcp_bucket, Key=f"e2e/{sample}")["Body"].read() == files[sample]
    assert s3.list_objects_v2(Bucket=hcp_bucket, Prefix=STAGING_ROOT).get("KeyCount", 0) == 0
    fan_out_output = fan_out.stdout + fan_out.stderr
    assert fan_out.returncode == 0, fan_out_output[-3000:] + (tmp_path / "worker.log").read_text()[-5000:]
    parallel = s3.list_objects_v2(Bucket=hcp_bucket, Prefix="par/").get("Contents", [])
    assert set(without_records(dict.fromkeys(item["Key"] for item in parallel), "par/")) == {f"par/{rel}" for rel in files}
    assert s3.list_objects_v2(Bucket=hcp_bucket, Prefix=STAGING_ROOT).get("KeyCount", 0) == 0
    worker_text = (tmp_path / "worker.log").read_text(errors="replace")
    assert hcp_credentials["password"] not in worker_text
