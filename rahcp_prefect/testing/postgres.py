"""Pytest plugin: a real PostgreSQL for tests, and unique job names so tests never collide.

``postgres_dsn`` (session) is, in order: ``RAHCP_TEST_POSTGRES_DSN``; a testcontainers
PostgreSQL when a Docker engine answers; otherwise a skip naming the reason. Under ``CI=true``
the skip becomes a failure, so CI can never pass without having tested against PostgreSQL.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

ENV_DSN = "RAHCP_TEST_POSTGRES_DSN"
POSTGRES_IMAGE = os.environ.get("RAHCP_TEST_POSTGRES_IMAGE", "postgres:16-alpine")


def in_ci() -> bool:
    """True when ``CI`` is set to true (GitHub Actions, GitLab CI and most others do)."""
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def unavailable(reason: str) -> None:
    """Skip with ``reason``, or fail under CI where a skipped database test hides a gap."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: PostgreSQL tests must run, not skip)", pytrace=False)
    pytest.skip(reason)


def docker_answers() -> str | None:
    """None if a Docker engine answers a ping, else why not."""
    try:
        import docker

        client = docker.from_env(timeout=5)
        try:
            client.ping()
        finally:
            client.close()
    except Exception as exc:  # no docker package, no socket, no permission, engine down
        return f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
    return None


def _container() -> Any:
    try:
        from testcontainers.community.postgres import PostgresContainer
    except ImportError:  # older testcontainers
        from testcontainers.postgres import PostgresContainer
    return PostgresContainer(POSTGRES_IMAGE, driver=None)


@pytest.fixture(scope="session")
def postgres_dsn() -> Iterator[str]:
    """A libpq DSN of a PostgreSQL database the tests may create tables in."""
    dsn = os.environ.get(ENV_DSN, "").strip()
    if dsn:
        yield dsn
        return
    why_not = docker_answers()
    if why_not is not None:
        unavailable(f"no PostgreSQL: {ENV_DSN} is not set and no Docker engine answers ({why_not})")
    try:
        container = _container().start()
    except Exception as exc:
        unavailable(f"no PostgreSQL: starting a {POSTGRES_IMAGE} container failed ({type(exc).__name__}: {exc})")
    try:
        yield container.get_connection_url(driver=None)
    finally:
        container.stop()


@pytest.fixture
def tracker_job(request: pytest.FixtureRequest) -> str:
    """A job name unique to this test and this run (safe on a database shared with others)."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", request.node.name)[:60]
    return f"test:{name}:{uuid.uuid4().hex[:12]}"
