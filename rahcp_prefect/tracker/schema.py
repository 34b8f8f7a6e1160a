"""Schema creation and versioning, dialect by dialect, from the SQLModel tables.

A fresh database gets the current tables and ``SCHEMA_VERSION``. A database at an older
version gets the ``MIGRATIONS`` above its version, in order. A newer one is refused, so an
old release never writes rows it does not understand. Backends run ``plan`` under a lock
(PostgreSQL advisory lock, SQLite ``BEGIN IMMEDIATE``) so concurrent first uses don't race.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from sqlalchemy import Table
from sqlalchemy.engine.interfaces import Dialect
from sqlalchemy.schema import CreateIndex, CreateTable

from rahcp_prefect.tracker.errors import TrackerSchemaError
from rahcp_prefect.tracker.models import NEW_IN_4, NEW_IN_5, TABLES

SCHEMA_VERSION = 5

Statement = str | Callable[[Dialect], list[str]]
"""Plain SQL, or a function of the dialect (new tables, compiled from ``models``)."""


def _create(tables: Sequence[Table]) -> Callable[[Dialect], list[str]]:
    return lambda dialect: create_statements(dialect, tables)


#: version -> SQL statements that bring a database from ``version - 1`` to ``version``.
#: Add an entry (and bump SCHEMA_VERSION) whenever ``models`` changes. The statements are
#: plain SQL both SQLite and PostgreSQL accept; a new column must be nullable or have a
#: default, so existing rows stay valid (PostgreSQL adds such a column without a rewrite).
MIGRATIONS: dict[int, list[Statement]] = {
    # 2: the job lease (one exclusive single-mode holder, or shared by cooperative runs)
    #    and each file's modification time as sent (incremental sync).
    2: [
        "ALTER TABLE rahcp_jobs ADD COLUMN lease_owner TEXT",
        "ALTER TABLE rahcp_jobs ADD COLUMN lease_expires FLOAT DEFAULT '0' NOT NULL",
        "ALTER TABLE rahcp_jobs ADD COLUMN lease_mode VARCHAR(16)",
        "ALTER TABLE rahcp_transfers ADD COLUMN mtime_ns BIGINT",
    ],
    # 3: each file's digests as sent or received (fixity): hex SHA-256 of the whole file, and
    #    its MD5 (hex; for a multipart upload S3's composite ``<md5 of part md5s>-N``).
    3: [
        "ALTER TABLE rahcp_transfers ADD COLUMN sha256 TEXT",
        "ALTER TABLE rahcp_transfers ADD COLUMN md5 TEXT",
    ],
    # 4: unfinished multipart uploads and their acknowledged parts (part-level resume).
    4: [_create(NEW_IN_4)],
    # 5: files refused for retention or hold, and when each is sent again.
    5: [_create(NEW_IN_5)],
}

VERSION_TABLE = "rahcp_schema_version"


def create_statements(dialect: Dialect, tables: Sequence[Table] = TABLES) -> list[str]:
    """``CREATE TABLE/INDEX IF NOT EXISTS`` for ``tables`` (default: all), compiled for ``dialect``."""
    statements: list[str] = []
    for table in tables:
        statements.append(str(CreateTable(table, if_not_exists=True).compile(dialect=dialect)).strip())
        for index in sorted(table.indexes, key=lambda ix: ix.name or ""):
            statements.append(str(CreateIndex(index, if_not_exists=True).compile(dialect=dialect)).strip())
    return statements


def plan(current: int | None, dialect: Dialect) -> list[str]:
    """Statements that bring a database at ``current`` (None: fresh) to ``SCHEMA_VERSION``."""
    if current is None:
        return create_statements(dialect)
    if current > SCHEMA_VERSION:
        raise TrackerSchemaError(
            f"tracker schema version {current} is newer than this release supports "
            f"({SCHEMA_VERSION}); upgrade rahcp-prefect"
        )
    statements: list[str] = []
    for version in range(current + 1, SCHEMA_VERSION + 1):
        if version not in MIGRATIONS:
            raise TrackerSchemaError(f"no migration from tracker schema {version - 1} to {version}")
        for statement in MIGRATIONS[version]:
            statements.extend([statement] if isinstance(statement, str) else statement(dialect))
    return statements
