"""Pytest plugin: a real PostgreSQL for tests, and unique job names so tests never collide.

``postgres_dsn`` (session) is a fresh database, dropped after the session, on the server of, in
order: ``RAHCP_TEST_POSTGRES_DSN``; a local server answering
``postgresql://postgres@127.0.0.1:5432/test`` (``RAHCP_TEST_POSTGRES_LOCAL_DSN`` names another one
to try, empty to try none); a testcontainers PostgreSQL when a Docker engine answers; otherwise a
skip naming the reason. Under ``CI=true`` the skip becomes a failure, so CI can never pass without
having tested against PostgreSQL. ``proxied`` is that database behind an ``OutageProxy``, which
can take it away for a while as a restart or a failover would.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import suppress
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

ENV_DSN = "RAHCP_TEST_POSTGRES_DSN"
ENV_LOCAL_DSN = "RAHCP_TEST_POSTGRES_LOCAL_DSN"
LOCAL_DSN = "postgresql://postgres@127.0.0.1:5432/test"
LOCAL_CONNECT_TIMEOUT_SECONDS = 2
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


def local_server_dsn() -> str | None:
    """The local DSN to try (``LOCAL_DSN`` unless overridden) if a server answers it, else None."""
    dsn = os.environ.get(ENV_LOCAL_DSN, LOCAL_DSN).strip()
    if not dsn:
        return None
    import psycopg

    try:
        with psycopg.connect(dsn, connect_timeout=LOCAL_CONNECT_TIMEOUT_SECONDS) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error:
        return None
    return dsn


def _container() -> Any:
    try:
        from testcontainers.community.postgres import PostgresContainer
    except ImportError:  # older testcontainers
        from testcontainers.postgres import PostgresContainer
    return PostgresContainer(POSTGRES_IMAGE, driver=None)


def with_database(dsn: str, name: str) -> str:
    """``dsn`` pointing at database ``name``, in the same form (URL or ``key=value``)."""
    if dsn.startswith(("postgresql://", "postgres://")):
        parts = urlsplit(dsn)
        return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, ""))
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    params = conninfo_to_dict(dsn)
    params["dbname"] = name
    return make_conninfo(**params)


@contextlib.contextmanager
def fresh_database(server_dsn: str) -> Iterator[str]:
    """A new, empty database on the server of ``server_dsn`` for one test session, dropped after.

    Every session gets its own tables (and its own tracker schema version), so test runs that
    share one server (several checkouts, CI after a session) never see each other's rows, and a
    schema left behind by another version of the code cannot fail this run.
    """
    import psycopg

    name = f"rahcp_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server_dsn, autocommit=True, connect_timeout=10) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield with_database(server_dsn, name)
    finally:
        with psycopg.connect(server_dsn, autocommit=True, connect_timeout=10) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def postgres_dsn() -> Iterator[str]:
    """A libpq DSN of a fresh PostgreSQL database (dropped after the session) for the tests."""
    dsn = os.environ.get(ENV_DSN, "").strip()
    if dsn:
        with fresh_database(dsn) as fresh:
            yield fresh
        return
    local = local_server_dsn()
    if local is not None:
        with fresh_database(local) as fresh:
            yield fresh
        return
    why_not = docker_answers()
    if why_not is not None:
        tried = os.environ.get(ENV_LOCAL_DSN, LOCAL_DSN).strip() or "none"
        unavailable(
            f"no PostgreSQL: {ENV_DSN} is not set, no server answers {tried} ({ENV_LOCAL_DSN}) "
            f"and no Docker engine answers ({why_not})"
        )
    try:
        container = _container().start()
    except Exception as exc:
        unavailable(f"no PostgreSQL: starting a {POSTGRES_IMAGE} container failed ({type(exc).__name__}: {exc})")
    try:
        with fresh_database(container.get_connection_url(driver=None)) as fresh:
            yield fresh
    finally:
        container.stop()


@pytest.fixture
def tracker_job(request: pytest.FixtureRequest) -> str:
    """A job name unique to this test and this run (safe on a database shared with others)."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", request.node.name)[:60]
    return f"test:{name}:{uuid.uuid4().hex[:12]}"


class OutageProxy:
    """A TCP proxy in front of the database: 127.0.0.1:<port> forwards to it; ``down()`` resets
    every connection (open ones and new ones) until ``up()``, which is what a restart or a
    failover looks like to a client."""

    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._down = threading.Event()
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def down(self) -> None:
        self._down.set()
        with self._lock:
            for sock in list(self._open):
                with suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self._open.clear()

    def up(self) -> None:
        self._down.clear()

    def outage(self, seconds: float) -> threading.Thread:
        """Down now, up again after ``seconds`` (join the thread returned to wait for it)."""
        self.down()
        thread = threading.Thread(target=lambda: (time.sleep(seconds), self.up()), daemon=True)
        thread.start()
        return thread

    def close(self) -> None:
        self.down()
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self._down.is_set():
                client.close()
                continue
            try:
                server = socket.create_connection(self._target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._open.update((client, server))
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with suppress(OSError):
                    sock.close()


@pytest.fixture
def proxied(postgres_dsn: str) -> Iterator[tuple[str, OutageProxy]]:
    """The test database's DSN through an ``OutageProxy``, and the proxy."""
    parts = urlsplit(postgres_dsn)
    proxy = OutageProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    netloc = parts.netloc.rsplit("@", 1)
    auth = netloc[0] + "@" if len(netloc) == 2 else ""
    yield urlunsplit(parts._replace(netloc=f"{auth}127.0.0.1:{proxy.port}")), proxy
    proxy.close()
