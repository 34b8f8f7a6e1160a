"""SqliteTracker: the embedded default, one file per machine, safe across local processes.

WAL mode lets readers run while one process writes; every write is a ``BEGIN IMMEDIATE``
transaction (so concurrent writers queue on ``busy_timeout`` instead of failing), which also
makes ``claim`` atomic across processes on the same machine. Lease times use this machine's
clock. Do not put the file on a network share: SQLite locking is not reliable there.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy.dialects import sqlite as sqlite_dialect

from rahcp_prefect.tracker import schema
from rahcp_prefect.tracker.base import BufferedTracker
from rahcp_prefect.tracker.checks import check_positive, register_row
from rahcp_prefect.tracker.errors import TrackerConnectionError
from rahcp_prefect.tracker.marks import MarkRow
from rahcp_prefect.tracker.protocol import JobInfo, JobState
from rahcp_prefect.tracker.retained import not_waiting
from rahcp_prefect.tracker.tables import JOBS, TRANSFERS, batched, job_columns, job_info_from_row, utc_now

T = TRANSFERS
J = JOBS
#: This machine's clock in Unix seconds, as SQL (millisecond resolution).
NOW = "((julianday('now') - 2440587.5) * 86400.0)"
JOB_COLUMNS = job_columns(NOW)
REGISTER_BATCH = 5000

UPSERT = f"""
INSERT INTO {T} (job, "key", size, status, error, etag, verified, validated, mtime_ns, sha256, md5, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (job, "key") DO UPDATE SET
  size = excluded.size, status = excluded.status, error = excluded.error,
  etag = excluded.etag, verified = excluded.verified, validated = excluded.validated,
  mtime_ns = excluded.mtime_ns, sha256 = excluded.sha256, md5 = excluded.md5,
  updated_at = excluded.updated_at
"""

CLAIM = f"""
UPDATE {T} SET lease_owner = ?, lease_expires = ?, attempts = attempts + 1
WHERE rowid IN (
  SELECT rowid FROM {T}
  WHERE job = ? AND status <> 'done' AND lease_expires < ? AND {not_waiting("?")}
  ORDER BY lease_expires LIMIT ?
)
RETURNING "key", size
"""


def _timestamp() -> str:
    """Now in the text form SQLAlchemy's SQLite ``DateTime`` reads back (UTC)."""
    return utc_now().strftime("%Y-%m-%d %H:%M:%S.%f")


class SqliteTracker(BufferedTracker):
    """Tracker in a local SQLite file (WAL, buffered marks, claims across local processes).

    Example:
        ```python
        tracker = SqliteTracker(Path("my-job.db"), job="bulk-upload:bucket/prefix", flush_every=200)
        tracker.mark("folder/file.jpg", 12345, TransferStatus.done, etag='"abc"')
        tracker.close()
        ```
    """

    _PARAM = "?"
    _JOB_COLUMNS = JOB_COLUMNS
    _NOW = NOW

    def __init__(
        self,
        path: Path | str,
        job: str = "default",
        *,
        flush_every: int = 1000,
        busy_timeout: float = 30.0,
    ) -> None:
        super().__init__(job, flush_every)
        check_positive("busy_timeout", busy_timeout)
        self.path = Path(path).expanduser() if str(path) != ":memory:" else Path(":memory:")
        self._conn = self._connect(busy_timeout)
        try:
            self._ensure_schema()
        except BaseException:
            self._conn.close()
            raise

    # -- connection and schema ------------------------------------------------------------
    def _connect(self, busy_timeout: float) -> sqlite3.Connection:
        """Open the file (creating its folder) in WAL mode with a busy timeout."""
        try:
            if str(self.path) != ":memory:":
                self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                str(self.path), timeout=busy_timeout, isolation_level=None, check_same_thread=False
            )
            conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
            self._enable_wal(conn, busy_timeout)
            conn.execute("PRAGMA synchronous = NORMAL")
        except (OSError, sqlite3.Error) as exc:
            raise TrackerConnectionError(f"cannot open SQLite tracker {self.path}: {exc}") from None
        return conn

    @staticmethod
    def _enable_wal(conn: sqlite3.Connection, busy_timeout: float) -> None:
        """Switch the file to WAL (persistent); retried, as SQLite skips the busy handler here."""
        deadline = time.monotonic() + busy_timeout
        while True:
            try:
                if conn.execute("PRAGMA journal_mode").fetchone()[0] in ("wal", "memory"):
                    return
                conn.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    def _version(self) -> int | None:
        exists = self._conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'rahcp_schema_version'"
        ).fetchone()
        if not exists:
            return None
        row = self._conn.execute("SELECT version FROM rahcp_schema_version WHERE id = 1").fetchone()
        return row[0] if row else None

    def _ensure_schema(self) -> None:
        """Create or migrate the schema; ``BEGIN IMMEDIATE`` serialises concurrent first uses."""
        if self._version() == schema.SCHEMA_VERSION:
            return
        with self._write_transaction():
            current = self._version()
            statements = schema.plan(current, sqlite_dialect.dialect())
            for statement in statements:
                self._conn.execute(statement)
            self._conn.execute(
                "INSERT INTO rahcp_schema_version (id, version, applied_at) VALUES (1, ?, ?) "
                "ON CONFLICT (id) DO UPDATE SET version = excluded.version, applied_at = excluded.applied_at",
                (schema.SCHEMA_VERSION, _timestamp()),
            )

    @contextmanager
    def _write_transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, taken up front so concurrent writers wait instead of failing."""
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    @contextmanager
    def _flushed(self) -> Iterator[sqlite3.Connection]:
        """Hold the lock, flush buffered marks, and hand out the connection."""
        with self._lock:
            self._check_usable()
            self._flush_locked()
            yield self._conn

    def _write(self, rows: list[MarkRow]) -> None:
        stamp = _timestamp()
        job = self.job
        with self._write_transaction() as conn:
            conn.executemany(UPSERT, [(job, *row, stamp) for row in rows])

    def _close_connections(self) -> None:
        self._conn.close()

    def _stamp(self) -> str:
        return _timestamp()

    # -- claims -------------------------------------------------------------------------
    def register(self, entries: Iterable[tuple[Any, ...]]) -> int:
        """Add ``(key, size)`` or ``(key, size, mtime_ns)`` rows as pending unless the key
        exists; returns how many were new."""
        sql = (
            f'INSERT INTO {T} (job, "key", size, mtime_ns, status, updated_at) VALUES (?, ?, ?, ?, ?, ?) '
            'ON CONFLICT (job, "key") DO NOTHING'
        )
        added = 0
        with self._flushed() as conn:
            for chunk in batched(entries, REGISTER_BATCH):
                stamp = _timestamp()
                rows = [(self.job, *register_row(entry), "pending", stamp) for entry in chunk]
                with self._write_transaction():
                    before = conn.total_changes
                    conn.executemany(sql, rows)
                    added += conn.total_changes - before
        return added

    def _claim(self, owner: str, limit: int, lease_seconds: float) -> list[tuple[str, int]]:
        """One ``UPDATE ... RETURNING`` under ``BEGIN IMMEDIATE``: atomic across local processes."""
        with self._flushed() as conn:
            with self._write_transaction():
                now = time.time()
                rows = conn.execute(CLAIM, (owner, now + lease_seconds, self.job, now, now, int(limit))).fetchall()
        return [(k, s) for k, s in rows]

    def renew(self, owner: str, lease_seconds: float) -> int:
        """Extend every lease ``owner`` holds in this job; returns how many keys it holds."""
        check_positive("lease_seconds", lease_seconds)
        with self._flushed() as conn:
            with self._write_transaction():
                now = time.time()
                sql = (
                    f"UPDATE {T} SET lease_expires = ? WHERE job = ? AND status = 'pending' "
                    "AND status <> 'done' AND lease_expires >= ? AND lease_owner = ?"
                )
                return conn.execute(sql, (now + lease_seconds, self.job, now, owner)).rowcount

    def release(self, owner: str) -> int:
        """Give back ``owner``'s leased keys that are not done; returns how many."""
        with self._flushed() as conn:
            with self._write_transaction():
                sql = (
                    f"UPDATE {T} SET lease_expires = 0 WHERE job = ? AND status <> 'done' "
                    "AND lease_expires >= ? AND lease_owner = ?"
                )
                return conn.execute(sql, (self.job, time.time(), owner)).rowcount

    # -- job state ------------------------------------------------------------------------
    def update_job(
        self,
        *,
        state: JobState | None = None,
        bucket: str | None = None,
        staging_prefix: str | None = None,
        final_prefix: str | None = None,
    ) -> JobInfo:
        """Create or update this job's row (fields left None keep their value)."""
        params = {**self._job_fields(state, bucket, staging_prefix, final_prefix), "now": _timestamp()}
        sql = f"""
        INSERT INTO {J} (job, state, bucket, staging_prefix, final_prefix, created_at, updated_at)
        VALUES (:job, coalesce(:state, 'open'), :bucket, :staging, :final, :now, :now)
        ON CONFLICT (job) DO UPDATE SET
          state = coalesce(:state, state), bucket = coalesce(:bucket, bucket),
          staging_prefix = coalesce(:staging, staging_prefix),
          final_prefix = coalesce(:final, final_prefix), updated_at = :now
        RETURNING {JOB_COLUMNS}
        """
        with self._flushed() as conn:
            with self._write_transaction():
                row = conn.execute(sql, params).fetchone()
        return job_info_from_row(row)

    def open_job(self, *, bucket: str, staging_prefix: str, final_prefix: str) -> JobInfo:
        """Create this job's row, or reopen it after a rollback; the first caller's staging wins."""
        params = {"job": self.job, "bucket": bucket, "staging": staging_prefix, "final": final_prefix, "now": _timestamp()}
        sql = f"""
        INSERT INTO {J} (job, state, bucket, staging_prefix, final_prefix, created_at, updated_at)
        VALUES (:job, 'open', :bucket, :staging, :final, :now, :now)
        ON CONFLICT (job) DO UPDATE SET
          state = 'open', bucket = excluded.bucket, staging_prefix = excluded.staging_prefix,
          final_prefix = excluded.final_prefix, updated_at = excluded.updated_at
        WHERE {J}.state = 'rolled_back' OR {J}.staging_prefix IS NULL
        """
        with self._flushed() as conn:
            with self._write_transaction():
                conn.execute(sql, params)
            row = conn.execute(f"SELECT {JOB_COLUMNS} FROM {J} WHERE job = ?", (self.job,)).fetchone()
        return job_info_from_row(row)

    def _acquire_commit(self, owner: str, lease_seconds: float) -> bool:
        """One upsert under ``BEGIN IMMEDIATE``, so concurrent local callers are serialised."""
        sql = f"""
        INSERT INTO {J} (job, state, commit_owner, commit_expires, created_at, updated_at)
        VALUES (:job, 'open', :owner, :expires, :stamp, :stamp)
        ON CONFLICT (job) DO UPDATE SET
          commit_owner = excluded.commit_owner, commit_expires = excluded.commit_expires,
          updated_at = excluded.updated_at
        WHERE commit_owner IS NULL OR commit_expires < :now OR commit_owner = excluded.commit_owner
        RETURNING job
        """
        with self._flushed() as conn:
            with self._write_transaction():
                now = time.time()
                params = {
                    "job": self.job,
                    "owner": owner,
                    "expires": now + lease_seconds,
                    "now": now,
                    "stamp": _timestamp(),
                }
                return conn.execute(sql, params).fetchone() is not None

    def release_commit(self, owner: str) -> None:
        """Give up the commit lock if ``owner`` holds it."""
        sql = (
            f"UPDATE {J} SET commit_owner = NULL, commit_expires = 0, updated_at = ? "
            "WHERE job = ? AND commit_owner = ?"
        )
        with self._flushed() as conn:
            with self._write_transaction():
                conn.execute(sql, (_timestamp(), self.job, owner))
