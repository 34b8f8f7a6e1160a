"""The ``postgres_dsn`` plugin: env DSN first, then a local server on 127.0.0.1:5432; no database
means skip, except under CI=true."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from rahcp_prefect.testing.postgres import LOCAL_DSN, unavailable, with_database

PROBE = '''
def test_probe(postgres_dsn):
    print("DSN=" + postgres_dsn)
'''


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed again when the socket is


def _run_probe(tmp_path: Path, default_local: bool = False, **env: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_probe.py").write_text(PROBE)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    unset = ("CI", "RAHCP_TEST_POSTGRES_DSN", "RAHCP_TEST_POSTGRES_LOCAL_DSN", "DOCKER_HOST")
    clean = {k: v for k, v in os.environ.items() if k not in unset}
    clean["DOCKER_HOST"] = f"unix://{tmp_path}/no-docker.sock"  # no engine answers here
    if not default_local:  # no local server answers here either (a closed port)
        clean["RAHCP_TEST_POSTGRES_LOCAL_DSN"] = f"postgresql://postgres@127.0.0.1:{_closed_port()}/test"
    clean["PYTHONPATH"] = os.pathsep.join(sys.path)
    command = [sys.executable, "-m", "pytest", "-p", "rahcp_prefect.testing.postgres", "-q", "-rs", "-s",
               "-p", "no:cacheprovider", str(tmp_path / "test_probe.py")]
    return subprocess.run(command, cwd=tmp_path, env={**clean, **env}, capture_output=True, text=True, timeout=120)


def _server_answering(dsn: str) -> str:
    try:
        psycopg.connect(dsn, connect_timeout=2).close()
    except psycopg.Error as exc:
        unavailable(f"no PostgreSQL answers {dsn}: {exc}")
    return dsn


def test_env_dsn_server_is_used(tmp_path: Path) -> None:
    """The variable names the server; the session gets a fresh database on it."""
    given = _server_answering(os.environ.get("RAHCP_TEST_POSTGRES_DSN") or LOCAL_DSN)
    result = _run_probe(tmp_path, RAHCP_TEST_POSTGRES_DSN=given)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"DSN={with_database(given, 'rahcp_test_')}" in result.stdout


def test_no_database_skips_with_the_reason(tmp_path: Path) -> None:
    result = _run_probe(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 skipped" in result.stdout
    assert "RAHCP_TEST_POSTGRES_DSN is not set, no server answers postgresql://postgres@127.0.0.1:" in result.stdout
    assert "and no Docker engine answers" in result.stdout


def test_a_local_server_is_found_without_the_variable(tmp_path: Path) -> None:
    """A fresh `make test`: no RAHCP_TEST_POSTGRES_DSN, PostgreSQL answering on 127.0.0.1:5432."""
    _server_answering("postgresql://postgres@127.0.0.1:5432/test")
    result = _run_probe(tmp_path, default_local=True, CI="true")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "DSN=postgresql://postgres@127.0.0.1:5432/rahcp_test_" in result.stdout
    assert "1 passed" in result.stdout


def test_no_database_under_ci_is_a_failure(tmp_path: Path) -> None:
    result = _run_probe(tmp_path, CI="true")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "CI=true: PostgreSQL tests must run, not skip" in result.stdout
    assert "skipped" not in result.stdout


def test_tracker_job_is_unique_per_test(tracker_job: str, request: pytest.FixtureRequest) -> None:
    other = request.getfixturevalue("tracker_job")  # same test: the same fixture value
    assert other == tracker_job
    assert tracker_job.startswith("test:test_tracker_job_is_unique_per_test:")
    assert len(tracker_job.rsplit(":", 1)[1]) == 12
