"""Schema created on first use, versioned, migrated in order, and never raced or downgraded.

Each test gets a fresh database: a new SQLite file, or a new PostgreSQL schema (selected with
``search_path``) that is dropped afterwards, so the shared test database is not disturbed.
"""

from __future__ import annotations

import sqlite3
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import quote

import psycopg
import pytest

from rahcp_prefect.tracker import TrackerSchemaError, TransferStatus, create_tracker, schema


def _with_search_path(dsn: str, name: str) -> str:
    option = f"-csearch_path={name}"
    if "://" in dsn:
        return f"{dsn}{'&' if '?' in dsn else '?'}options={quote(option)}"
    return f"{dsn} options='{option}'"


@pytest.fixture
def fresh_target(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """A target with no tracker tables in it yet."""
    if backend == "sqlite":
        yield str(tmp_path / "fresh.db")
        return
    dsn = request.getfixturevalue("postgres_dsn")
    name = f"rahcp_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {name}")
    try:
        yield _with_search_path(dsn, name)
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {name} CASCADE")


def _query(target: str, sql: str) -> list[tuple[Any, ...]]:
    if "://" in target or "=" in target:
        with psycopg.connect(target, autocommit=True) as conn:
            cursor = conn.execute(sql)
            return cursor.fetchall() if cursor.description else []
    with sqlite3.connect(target) as conn:
        return conn.execute(sql).fetchall()


def test_first_use_creates_a_versioned_schema(fresh_target: str) -> None:
    with create_tracker(fresh_target, job="j") as tracker:  # type: ignore[attr-defined]
        tracker.mark("k", 1, TransferStatus.done)
    assert _query(fresh_target, "SELECT id, version FROM rahcp_schema_version") == [(1, schema.SCHEMA_VERSION)]
    assert _query(fresh_target, "SELECT job, \"key\", status FROM rahcp_transfers") == [("j", "k", "done")]


def test_concurrent_first_uses_do_not_race(fresh_target: str) -> None:
    count = 6
    barrier = threading.Barrier(count)
    errors: list[BaseException] = []

    def first_use(index: int) -> None:
        barrier.wait()
        try:
            with create_tracker(fresh_target, job=f"j{index}") as tracker:  # type: ignore[attr-defined]
                tracker.mark("k", index, TransferStatus.done)
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=first_use, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert _query(fresh_target, "SELECT count(*) FROM rahcp_schema_version") == [(1,)]
    assert _query(fresh_target, "SELECT count(*) FROM rahcp_transfers") == [(count,)]


def test_a_newer_schema_is_refused(fresh_target: str) -> None:
    create_tracker(fresh_target, job="j").close()
    _query(fresh_target, f"UPDATE rahcp_schema_version SET version = {schema.SCHEMA_VERSION + 1}")
    with pytest.raises(TrackerSchemaError, match="newer than this release"):
        create_tracker(fresh_target, job="j")


def test_an_older_schema_is_migrated_in_order(fresh_target: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with create_tracker(fresh_target, job="j") as tracker:  # type: ignore[attr-defined]
        tracker.mark("kept", 1, TransferStatus.done)
    target_version = schema.SCHEMA_VERSION + 2
    monkeypatch.setattr(schema, "SCHEMA_VERSION", target_version)
    monkeypatch.setattr(
        schema,
        "MIGRATIONS",
        {
            target_version - 1: ["ALTER TABLE rahcp_jobs ADD COLUMN note TEXT"],
            target_version: ["UPDATE rahcp_jobs SET note = 'migrated'"],
        },
    )
    with create_tracker(fresh_target, job="j") as tracker:  # type: ignore[attr-defined]
        tracker.update_job(bucket="b")
        assert tracker.done_keys() == {"kept"}  # data survives the migration
    assert _query(fresh_target, "SELECT version FROM rahcp_schema_version") == [(target_version,)]
    assert _query(fresh_target, "SELECT note FROM rahcp_jobs") == [(None,)]  # row created after step 2


def test_a_missing_migration_is_an_error(fresh_target: str, monkeypatch: pytest.MonkeyPatch) -> None:
    create_tracker(fresh_target, job="j").close()
    monkeypatch.setattr(schema, "SCHEMA_VERSION", schema.SCHEMA_VERSION + 1)
    monkeypatch.setattr(schema, "MIGRATIONS", {})
    with pytest.raises(TrackerSchemaError, match="no migration"):
        create_tracker(fresh_target, job="j")


def _create_frozen(target: str, backend: str, frozen: ModuleType) -> None:
    """Build a database as an old release left it: ``frozen`` (a ``schema_v<N>`` module)'s
    tables for ``backend``, then its rows."""
    for statement in (frozen.SQLITE if backend == "sqlite" else frozen.POSTGRES) + frozen.ROWS:
        _query(target, statement)


def _columns(target: str, backend: str, table: str) -> set[str]:
    """The column names ``table`` has in the database."""
    if backend == "sqlite":
        return {row[1] for row in _query(target, f"PRAGMA table_info({table})")}
    return {
        row[0]
        for row in _query(
            target,
            "SELECT column_name FROM information_schema.columns "
            f"WHERE table_name = '{table}' AND table_schema = current_schema()",
        )
    }


# -- upgrading a database released at an older version ------------------------------------------
def test_a_version_1_database_upgrades_in_place(fresh_target: str, backend: str) -> None:
    from rahcp_prefect.tracker import JobState, LeaseMode
    from rahcp_prefect.tracker.models import Job, Transfer
    from tests.tracker import schema_v1

    _create_frozen(fresh_target, backend, schema_v1)
    staged = ".rahcp-staging/run-0/"

    with create_tracker(fresh_target, job="old-job") as tracker:  # type: ignore[attr-defined]
        # every row survived, with its values
        assert tracker.done_entries() == {staged + "a.bin": 5_000_000_000}
        assert tracker.error_details() == [(staged + "b.bin", "SSL timeout")]
        assert tracker.summary() == {"pending": 1, "done": 1, "error": 1}
        assert tracker.unverified_keys() == []
        assert tracker.entries()[staged + "a.bin"] == (5_000_000_000, None, TransferStatus.done)
        info = tracker.job_info()
        assert (info.state, info.bucket, info.staging_prefix, info.final_prefix) == (
            JobState.committed, "bkt", staged, "final/"
        )
        assert (info.lease_owner, info.lease_mode, info.lease_expires) == (None, None, 0.0)
        # and the upgraded database is usable: claims, marks with mtime, the job lease
        assert sorted(tracker.claim("run-1", 10, 60)) == [(staged + "b.bin", 20), (staged + "c.bin", 30)]
        tracker.mark(staged + "c.bin", 30, TransferStatus.done, mtime_ns=1_700_000_000_000_000_001)
        assert tracker.entries(TransferStatus.done)[staged + "c.bin"].mtime_ns == 1_700_000_000_000_000_001
        assert tracker.take_job_lease("run-1", 60).held
        assert tracker.job_info().lease_mode == LeaseMode.single

    assert _query(fresh_target, "SELECT version FROM rahcp_schema_version") == [(schema.SCHEMA_VERSION,)]
    for table in (Job.__table__, Transfer.__table__):  # the same columns as a fresh database
        assert _columns(fresh_target, backend, table.name) == {column.name for column in table.columns}
    # attempts and audit columns kept their values through the upgrade
    assert _query(
        fresh_target, "SELECT attempts FROM rahcp_transfers WHERE \"key\" = '.rahcp-staging/run-0/a.bin'"
    ) == [(1,)]


def test_a_version_2_database_upgrades_in_place_with_digest_columns(fresh_target: str, backend: str) -> None:
    from rahcp_prefect.tracker import FileDigests
    from rahcp_prefect.tracker.models import Transfer
    from tests.tracker import schema_v2

    _create_frozen(fresh_target, backend, schema_v2)
    staged = ".rahcp-staging/v2-job/"
    with create_tracker(fresh_target, job="v2-job") as tracker:  # type: ignore[attr-defined]
        entries = tracker.entries()
        assert entries[staged + "a.bin"] == (5_000_000_000, 1_700_000_000_000_000_001, TransferStatus.done)
        assert tracker.error_details() == [(staged + "b.bin", "SSL timeout")]
        assert tracker.job_info().final_prefix == "final/"
        assert tracker.done_digests() == {staged + "a.bin": FileDigests(5_000_000_000, None, None)}
        sha, md5 = "ab" * 32, "cd" * 16 + "-3"
        tracker.mark(staged + "b.bin", 20, TransferStatus.done, sha256=sha, md5=md5)
        assert tracker.done_digests()[staged + "b.bin"] == FileDigests(20, sha, md5)
    assert _query(fresh_target, "SELECT version FROM rahcp_schema_version") == [(schema.SCHEMA_VERSION,)]
    columns = _columns(fresh_target, backend, "rahcp_transfers")
    assert columns == {column.name for column in Transfer.__table__.columns}
    assert {"sha256", "md5"} <= columns
