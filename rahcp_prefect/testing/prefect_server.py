"""A real ``prefect server start`` (on PostgreSQL) and ``prefect worker start`` for end-to-end
tests, as context managers so a test module can share one server through a fixture of any scope.

``running_server(database_url, workdir)`` yields the environment its clients need
(``PREFECT_API_URL``, a private ``PREFECT_HOME``, fast worker polling); ``running_worker(env,
pool, cwd, log)`` a process worker on ``pool``. Both stop what they started, and only that.
``run_deployment(env, cwd, name, "k=v", ...)`` runs a deployment through the CLI and waits.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from psycopg.conninfo import conninfo_to_dict

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def asyncpg_url(dsn: str) -> str:
    """The SQLAlchemy URL Prefect's server wants for the libpq ``dsn`` (its ``dbname``)."""
    parts = conninfo_to_dict(dsn)
    user = parts.get("user", "postgres")
    password = f":{parts['password']}" if parts.get("password") else ""
    host = parts.get("host", "127.0.0.1")
    port = parts.get("port", "5432")
    return f"postgresql+asyncpg://{user}{password}@{host}:{port}/{parts['dbname']}"


def stop(process: subprocess.Popen[Any]) -> None:
    """Terminate ``process`` (kill it after 20 s) and reap it."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def running_server(database_url: str, workdir: Path, timeout: float = 180.0) -> Iterator[dict[str, str]]:
    """``prefect server start`` on ``database_url``, its home and log in ``workdir``; yields the
    environment of its clients once ``/api/health`` answers."""
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "PREFECT_HOME": str(workdir / "prefect-home"),
        "PREFECT_API_DATABASE_CONNECTION_URL": database_url,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_UI_ENABLED": "false",
        "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
        "PREFECT_WORKER_QUERY_SECONDS": "1",
        "PREFECT_WORKER_PREFETCH_SECONDS": "2",
        # a run enqueued by a deployment's concurrency limit tries again after 2 s, not 30
        "PREFECT_SERVER_DEPLOYMENTS_CONCURRENCY_SLOT_WAIT_SECONDS": "2",
    }
    log_path = workdir / "server.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )
        try:
            _wait_healthy(server, port, log_path, timeout)
            yield env
        finally:
            stop(server)


def _wait_healthy(server: subprocess.Popen[Any], port: int, log_path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if server.poll() is not None:
            raise RuntimeError(f"prefect server exited: {log_path.read_text(errors='replace')[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"prefect server did not answer /api/health within {timeout:.0f} s")
        time.sleep(0.5)


@contextmanager
def running_worker(
    env: dict[str, str], pool: str, cwd: Path, log_path: Path, bin_dir: Path = BIN
) -> Iterator[subprocess.Popen[Any]]:
    """``prefect worker start --pool <pool> --type process`` in ``cwd``, output to ``log_path``;
    ``bin_dir`` is the environment whose ``prefect`` runs it (and so runs the flows)."""
    with log_path.open("wb") as log:
        worker = subprocess.Popen(
            [str(bin_dir / "prefect"), "worker", "start", "--pool", pool, "--type", "process"],
            env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
        )
        try:
            yield worker
        finally:
            stop(worker)


def run_deployment(
    env: dict[str, str], cwd: Path, name: str, *params: str, timeout: float = 240.0
) -> subprocess.CompletedProcess[str]:
    """``prefect deployment run <name> -p k=v ... --watch``: the finished run's CLI output."""
    command = [str(BIN / "prefect"), "deployment", "run", name]
    for param in params:
        command += ["-p", param]
    command += ["--watch", "--watch-interval", "1", "--watch-timeout", str(int(timeout))]
    return subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout + 60)
