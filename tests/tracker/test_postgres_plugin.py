"""The ``postgres_dsn`` plugin: env DSN first; no database means skip, except under CI=true."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

PROBE = '''
def test_probe(postgres_dsn):
    print("DSN=" + postgres_dsn)
'''


def _run_probe(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_probe.py").write_text(PROBE)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    clean = {k: v for k, v in os.environ.items() if k not in ("CI", "RAHCP_TEST_POSTGRES_DSN", "DOCKER_HOST")}
    clean["DOCKER_HOST"] = f"unix://{tmp_path}/no-docker.sock"  # no engine answers here
    clean["PYTHONPATH"] = os.pathsep.join(sys.path)
    command = [sys.executable, "-m", "pytest", "-p", "rahcp_prefect.testing.postgres", "-q", "-rs", "-s",
               "-p", "no:cacheprovider", str(tmp_path / "test_probe.py")]
    return subprocess.run(command, cwd=tmp_path, env={**clean, **env}, capture_output=True, text=True, timeout=120)


def test_env_dsn_is_used_as_given(tmp_path: Path) -> None:
    result = _run_probe(tmp_path, RAHCP_TEST_POSTGRES_DSN="postgresql://given@db/x")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "DSN=postgresql://given@db/x" in result.stdout


def test_no_database_skips_with_the_reason(tmp_path: Path) -> None:
    result = _run_probe(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 skipped" in result.stdout
    assert "RAHCP_TEST_POSTGRES_DSN is not set and no Docker engine answers" in result.stdout


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
