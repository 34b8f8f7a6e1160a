"""``create_tracker``: pick the backend from the target, so callers never name a class.

- a ``Path``, a plain path, or ``sqlite:///relative.db`` / ``sqlite:////abs.db`` -> ``SqliteTracker``
- ``postgresql://``, ``postgres://`` (or SQLAlchemy's ``postgresql+psycopg://``), or a libpq
  key/value DSN (``host=db dbname=rahcp ...``) -> ``PostgresTracker``
- any other scheme -> ``TrackerConfigError`` (a ``ValueError``) naming the scheme, DSN masked
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from rahcp_prefect.tracker.dsn import mask_dsn, scheme_of
from rahcp_prefect.tracker.errors import TrackerConfigError
from rahcp_prefect.tracker.protocol import TrackerProtocol

POSTGRES_SCHEMES = ("postgresql", "postgres")
#: A libpq key/value DSN ("host=db dbname=rahcp user=u password=..."), not a file name.
KEY_VALUE_DSN = re.compile(r"^\s*(host|hostaddr|dbname|user|port|service|password)\s*=", re.IGNORECASE)


def backend_of(target: str | Path) -> str:
    """``"sqlite"`` or ``"postgres"`` for ``target``; unknown schemes raise ``TrackerConfigError``."""
    if isinstance(target, Path):
        return "sqlite"
    if not isinstance(target, str) or not target.strip():
        raise TrackerConfigError(f"tracker target must be a path or a DSN, got {target!r}")
    scheme = scheme_of(target)
    if scheme is None:
        return "postgres" if KEY_VALUE_DSN.match(target) else "sqlite"
    base = scheme.split("+", 1)[0]
    if base == "sqlite":
        return "sqlite"
    if base in POSTGRES_SCHEMES:
        return "postgres"
    raise TrackerConfigError(
        f"unsupported tracker scheme {scheme!r} in {mask_dsn(target)}: use a file path, "
        "sqlite:///path/to/file.db, or postgresql://user:password@host:port/database"
    )


def sqlite_path(target: str | Path) -> Path | str:
    """The file behind a SQLite target (``sqlite:///x.db`` -> ``x.db``, as SQLAlchemy reads it)."""
    if isinstance(target, Path) or scheme_of(target) is None:
        return target
    rest = target.split("://", 1)[1]
    if not rest.startswith("/"):
        raise TrackerConfigError(f"SQLite URL {target!r} must look like sqlite:///path/to/file.db")
    path = rest[1:].split("?", 1)[0]
    if not path:
        raise TrackerConfigError(f"SQLite URL {target!r} names no file")
    return path


def create_tracker(target: str | Path, job: str, **options: Any) -> TrackerProtocol:
    """Open the tracker of ``job`` at ``target`` (a SQLite path or a PostgreSQL DSN).

    ``options`` go to the backend (``flush_every``; SQLite: ``busy_timeout``; PostgreSQL:
    ``pool_size``, ``connect_timeout``, ``application_name``, ``wait``). PostgreSQL connects here, so a
    wrong DSN raises ``TrackerConnectionError`` before any transfer starts.
    """
    backend = backend_of(target)
    if backend == "postgres":
        from rahcp_prefect.tracker.postgres import PostgresTracker

        return PostgresTracker(str(target), job, **options)
    from rahcp_prefect.tracker.sqlite import SqliteTracker

    return SqliteTracker(sqlite_path(target), job, **options)
