"""End to end through a real Prefect server on PostgreSQL: setup, deploy, worker, run.

`prefect server start` on a fresh database of the CI PostgreSQL, `rahcp-prefect setup`
(blocks, process work pool, `prefect deploy --all` of the packaged prefect.yaml), a process
worker, then `prefect deployment run bulk-upload/default --watch` and a look at the objects in
the emulator; then `bulk-upload-parallel/default` fans a job out over two cooperating runs of
the deployment. The tracker block points at the same PostgreSQL.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from psycopg.conninfo import conninfo_to_dict

from rahcp_prefect.flows.staging import STAGING_ROOT
from rahcp_prefect.testing.postgres import fresh_database

from .conftest import make_tree

BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _asyncpg_url(dsn: str, database: str) -> str:
    parts = conninfo_to_dict(dsn)
    user = parts.get("user", "postgres")
    password = f":{parts['password']}" if parts.get("password") else ""
    host = parts.get("host", "127.0.0.1")
    port = parts.get("port", "5432")
    return f"postgresql+asyncpg://{user}{password}@{host}:{port}/{database}"


@pytest.fixture
def prefect_database(postgres_dsn: str) -> Iterator[str]:
    """A fresh database for the Prefect server, dropped afterwards."""
    with fresh_database(postgres_dsn) as dsn:
        yield _asyncpg_url(dsn, conninfo_to_dict(dsn)["dbname"])


def _stop(process: subprocess.Popen[Any]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def prefect_server(prefect_database: str, tmp_path: Path) -> Iterator[dict[str, str]]:
    """A real `prefect server start` on PostgreSQL; yields the environment for its clients."""
    port = _free_port()
    home = tmp_path / "prefect-home"
    env = {
        **os.environ,
        "PREFECT_HOME": str(home),
        "PREFECT_API_DATABASE_CONNECTION_URL": prefect_database,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_UI_ENABLED": "false",
        "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
        "PREFECT_WORKER_QUERY_SECONDS": "1",
        "PREFECT_WORKER_PREFETCH_SECONDS": "2",
    }
    log = (tmp_path / "server.log").open("wb")
    server = subprocess.Popen(
        [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 180
        while True:
            if server.poll() is not None:
                pytest.fail(f"prefect server exited: {(tmp_path / 'server.log').read_text()[-2000:]}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("prefect server did not answer /api/health within 180 s")
            time.sleep(0.5)
        yield env
    finally:
        _stop(server)
        log.close()


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
    worker_log = (tmp_path / "worker.log").open("wb")
    worker = subprocess.Popen(
        [str(BIN / "prefect"), "worker", "start", "--pool", "rahcp-process", "--type", "process"],
        env=env, cwd=outside, stdout=worker_log, stderr=subprocess.STDOUT,
    )
    def deployment_run(name: str, *params: str) -> subprocess.CompletedProcess[str]:
        command = [str(BIN / "prefect"), "deployment", "run", name]
        for param in params:
            command += ["-p", param]
        command += ["--watch", "--watch-interval", "1", "--watch-timeout", "240"]
        return subprocess.run(command, env=env, cwd=outside, capture_output=True, text=True, timeout=300)

    try:
        run = deployment_run(
            "bulk-upload/default", f"source_dir={tmp_path / 'source'}", f"bucket={hcp_bucket}", "prefix=e2e/"
        )
        fan_out = deployment_run(
            "bulk-upload-parallel/default",
            f"source_dir={tmp_path / 'source'}", f"bucket={hcp_bucket}", "prefix=par/", "runs=2", "batch_size=5",
        )
    finally:
        _stop(worker)
        worker_log.close()
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-3000:] + (tmp_path / "worker.log").read_text()[-5000:]
    assert "Completed" in output

    s3 = hcp_emulator.s3
    listed = s3.list_objects_v2(Bucket=hcp_bucket, Prefix="e2e/").get("Contents", [])
    assert {item["Key"] for item in listed} == {f"e2e/{rel}" for rel in files}
    sample = sorted(files)[3]
    assert s3.get_object(Bucket=hcp_bucket, Key=f"e2e/{sample}")["Body"].read() == files[sample]
    assert s3.list_objects_v2(Bucket=hcp_bucket, Prefix=STAGING_ROOT).get("KeyCount", 0) == 0
    fan_out_output = fan_out.stdout + fan_out.stderr
    assert fan_out.returncode == 0, fan_out_output[-3000:] + (tmp_path / "worker.log").read_text()[-5000:]
    parallel = s3.list_objects_v2(Bucket=hcp_bucket, Prefix="par/").get("Contents", [])
    assert {item["Key"] for item in parallel} == {f"par/{rel}" for rel in files}
    assert s3.list_objects_v2(Bucket=hcp_bucket, Prefix=STAGING_ROOT).get("KeyCount", 0) == 0
    worker_text = (tmp_path / "worker.log").read_text(errors="replace")
    assert hcp_credentials["password"] not in worker_text
