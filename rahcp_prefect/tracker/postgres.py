"""PostgresTracker: the shared backend, safe from many processes and machines at once.

psycopg 3 with a small connection pool. The constructor connects and creates or migrates the
schema under an advisory lock, so a wrong DSN fails before any transfer starts and concurrent
first uses do not race. Claims use ``FOR UPDATE SKIP LOCKED``; every lease time comes from the
database's clock, so machines with skewed clocks still agree on who holds what.
Open one tracker per process (connections do not survive ``fork``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool, PoolTimeout
from sqlalchemy.dialects import postgresql as pg_dialect

from rahcp_prefect import defaults, interrupts
from rahcp_prefect.tracker import schema
from rahcp_prefect.tracker.base import BufferedTracker
from rahcp_prefect.tracker.checks import check_positive, register_row
from rahcp_prefect.tracker.dsn import mask_dsn, redact, scheme_of
from rahcp_prefect.tracker.errors import (
    TrackerConfigError,
    TrackerConnectionError,
    TrackerError,
    TrackerSchemaError,
)
from rahcp_prefect.tracker.marks import MarkRow
from rahcp_prefect.tracker.protocol import JobInfo, JobState
from rahcp_prefect.tracker.retained import not_waiting
from rahcp_prefect.tracker.tables import JOBS, TRANSFERS, batched, job_columns, job_info_from_row, utc_now

logger = logging.getLogger(__name__)

T = TRANSFERS
J = JOBS
NOW = "extract(epoch from now())::float8"
JOB_COLUMNS = job_columns(NOW)
#: pg_advisory_xact_lock key serialising schema creation and migration ("rahcp" + 1).
SCHEMA_LOCK = 0x7261686370_01
WRITE_BATCH = 10_000
REGISTER_BATCH = 10_000
#: Longest pause between two attempts at writing marks while the database is unreachable.
WRITE_RETRY_MAX_DELAY = 5.0
POOL_SLICE = 0.5  # seconds a pooled connection is waited for before a stop signal is looked at again

#: Marks and manifests travel as arrays in binary (%b): five times cheaper to send than text.
UPSERT = f"""
INSERT INTO {T} AS t (job, "key", size, status, error, etag, verified, validated, mtime_ns, sha256, md5,
                      updated_at)
SELECT %(job)s, u.k, u.s, u.st, u.e, u.et, u.v, u.va, u.m, u.sha, u.md, now()
FROM unnest(%(k)b::text[], %(s)b::int8[], %(st)b::text[], %(e)b::text[], %(et)b::text[],
            %(v)b::bool[], %(va)b::bool[], %(m)b::int8[], %(sha)b::text[], %(md)b::text[])
     AS u(k, s, st, e, et, v, va, m, sha, md)
ON CONFLICT (job, "key") DO UPDATE SET
  size = excluded.size, status = excluded.status, error = excluded.error, etag = excluded.etag,
  verified = excluded.verified, validated = excluded.validated, mtime_ns = excluded.mtime_ns,
  sha256 = excluded.sha256, md5 = excluded.md5, updated_at = excluded.updated_at
"""

REGISTER = f"""
INSERT INTO {T} (job, "key", size, mtime_ns, status, updated_at)
SELECT %(job)s, u.k, u.s, u.m, 'pending', now()
FROM unnest(%(k)b::text[], %(s)b::int8[], %(m)b::int8[]) AS u(k, s, m)
ON CONFLICT (job, "key") DO NOTHING
"""

#: Lock free rows (skipping rows other claimers hold), then update exactly those row versions
#: by ctid: a TID scan, so no join plan to go wrong on stale statistics. A row updated
#: concurrently is skipped, never handed out twice.
CLAIM = f"""
WITH picked AS (
  SELECT ctid FROM {T}
  WHERE job = %(job)s AND status <> 'done' AND lease_expires < {NOW} AND {not_waiting(NOW)}
  ORDER BY lease_expires
  LIMIT %(limit)s
  FOR UPDATE SKIP LOCKED
)
UPDATE {T}
SET lease_owner = %(owner)s, lease_expires = {NOW} + %(lease)s, attempts = attempts + 1
WHERE ctid = ANY(ARRAY(SELECT ctid FROM picked))
RETURNING "key", size
"""


def normalize_dsn(dsn: str) -> str:
    """A libpq DSN from ``dsn``: SQLAlchemy's ``postgresql+driver://`` becomes ``postgresql://``."""
    scheme = scheme_of(dsn)
    if scheme and scheme.startswith(("postgresql+", "postgres+")):
        return "postgresql://" + dsn.split("://", 1)[1]
    return dsn


class PostgresTracker(BufferedTracker):
    """Tracker in a shared PostgreSQL database (psycopg 3, pooled connections).

    Example:
        ```python
        tracker = PostgresTracker("postgresql://user:secret@db/rahcp", job="bulk-upload:b/p")
        keys = tracker.claim(owner="run-1", limit=500, lease_seconds=120)
        ```
    """

    _PARAM = "%s"
    _JOB_COLUMNS = JOB_COLUMNS
    _NOW = NOW

    def __init__(
        self,
        dsn: str,
        job: str = "default",
        *,
        flush_every: int = 1000,
        pool_size: int = 2,
        connect_timeout: float = 10.0,
        application_name: str = "rahcp-prefect-tracker",
        wait: float = defaults.TRACKER_WAIT,
    ) -> None:
        super().__init__(job, flush_every)
        check_positive("pool_size", pool_size)
        check_positive("connect_timeout", connect_timeout)
        check_positive("wait", wait)
        self.wait = float(wait)
        """Seconds an operation waits for an unreachable database (a restart, a failover)
        before it fails; marks are written again meanwhile (the upsert is idempotent)."""
        self._dsn = normalize_dsn(dsn)
        self.dsn = mask_dsn(dsn)
        kwargs = self._connect_kwargs(connect_timeout, application_name)
        self._ensure_schema(kwargs)
        self._pool = ConnectionPool(
            self._dsn,
            kwargs=kwargs,
            min_size=1,
            max_size=int(pool_size),
            open=False,
            name="rahcp-tracker",
            check=ConnectionPool.check_connection,
            timeout=self.wait,
            reconnect_timeout=max(self.wait, 300.0),
        )
        try:
            self._pool.open(wait=True, timeout=connect_timeout)
        except Exception as exc:
            self._pool.close()
            raise TrackerConnectionError(
                f"cannot open a connection pool to the tracker database {self.dsn}: "
                f"{self._redact(exc)}"
            ) from None

    def __repr__(self) -> str:
        return f"PostgresTracker({self.dsn!r}, job={self.job!r})"

    # -- connection and schema ------------------------------------------------------------
    def _redact(self, exc: BaseException) -> str:
        return redact(str(exc).strip() or type(exc).__name__, self._dsn)

    def _connect_kwargs(self, connect_timeout: float, application_name: str) -> dict[str, Any]:
        """Connection options; a malformed DSN is refused here with a masked message."""
        try:
            given = conninfo_to_dict(self._dsn)
        except psycopg.Error as exc:
            raise TrackerConfigError(f"invalid PostgreSQL DSN {self.dsn}: {self._redact(exc)}") from None
        kwargs: dict[str, Any] = {"autocommit": True}
        if "connect_timeout" not in given:
            kwargs["connect_timeout"] = max(2, round(connect_timeout))
        if "application_name" not in given:
            kwargs["application_name"] = application_name
        return kwargs

    def _ensure_schema(self, kwargs: dict[str, Any]) -> None:
        """Connect once (failing fast and clearly), then create or migrate the schema."""
        try:
            conn = psycopg.connect(self._dsn, **kwargs)
        except psycopg.Error as exc:
            raise TrackerConnectionError(
                f"cannot connect to the tracker database {self.dsn}: {self._redact(exc)}"
            ) from None
        try:
            with conn:
                if self._version(conn) == schema.SCHEMA_VERSION:
                    return
                with conn.transaction():
                    conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
                    current = self._version(conn)
                    statements = schema.plan(current, pg_dialect.dialect())
                    for statement in statements:
                        conn.execute(statement)
                    conn.execute(
                        "INSERT INTO rahcp_schema_version (id, version, applied_at) VALUES (1, %s, now()) "
                        "ON CONFLICT (id) DO UPDATE SET version = excluded.version, applied_at = now()",
                        (schema.SCHEMA_VERSION,),
                    )
                    if statements:
                        logger.info("tracker schema at version %s in %s", schema.SCHEMA_VERSION, self.dsn)
        except TrackerSchemaError:
            raise
        except psycopg.Error as exc:
            raise TrackerSchemaError(
                f"cannot create the tracker schema in {self.dsn}: {self._redact(exc)}"
            ) from None

    @staticmethod
    def _version(conn: psycopg.Connection[Any]) -> int | None:
        row = conn.execute("SELECT to_regclass('rahcp_schema_version') IS NOT NULL").fetchone()
        if not row or not row[0]:
            return None
        row = conn.execute("SELECT version FROM rahcp_schema_version WHERE id = 1").fetchone()
        return row[0] if row else None

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection; connection failures surface as ``TrackerError`` with no secret.

        The pool is asked in slices of ``POOL_SLICE`` seconds up to ``wait``, so a stop signal
        ends a wait for an unreachable database (``rahcp_prefect.interrupts``) within one slice."""
        try:
            conn = self._getconn()
            try:
                with conn:  # as the pool's own ``connection()``: commit, or roll back on error
                    yield conn
            finally:
                self._pool.putconn(conn)
        except psycopg.OperationalError as exc:
            raise TrackerError(f"tracker database {self.dsn} failed: {self._redact(exc)}") from None

    def _getconn(self) -> psycopg.Connection[Any]:
        """A connection from the pool, waited for up to ``wait``; a stop signal is looked at
        only between two slices of a wait, so a run that is stopping still releases its lease."""
        deadline = time.monotonic() + self.wait
        while True:
            left = deadline - time.monotonic()
            try:
                return self._pool.getconn(timeout=max(0.01, min(POOL_SLICE, left)))
            except PoolTimeout:
                if left <= POOL_SLICE:
                    raise
            interrupts.check()

    @contextmanager
    def _flushed(self) -> Iterator[psycopg.Connection[Any]]:
        """Hold the lock, flush buffered marks, and hand out a pooled connection."""
        with self._lock:
            self._check_usable()
            self._flush_locked()
            with self._connection() as conn:
                yield conn

    @contextmanager
    def _write_transaction(self) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection inside one transaction."""
        with self._connection() as conn, conn.transaction():
            yield conn

    def _write(self, rows: list[MarkRow]) -> None:
        """Upsert ``rows`` in one transaction; a connection lost on the way (the database
        restarting) rolls it back, and it is made again until ``wait`` seconds have passed."""
        deadline = time.monotonic() + self.wait
        delay = 0.5
        while True:
            try:
                return self._upsert(rows)
            except TrackerError as exc:
                if time.monotonic() + delay > deadline:
                    raise
                logger.warning("writing %d marks failed (%s); again in %.1f s", len(rows), exc, delay)
                interrupts.sleep(delay)  # a stop signal ends the wait (the marks stay buffered)
                delay = min(delay * 2, WRITE_RETRY_MAX_DELAY)

    def _upsert(self, rows: list[MarkRow]) -> None:
        with self._write_transaction() as conn:
            for chunk in batched(rows, WRITE_BATCH):
                k, s, st, e, et, v, va, m, sha, md = (list(column) for column in zip(*chunk))
                params = {
                    "job": self.job, "k": k, "s": s, "st": st, "e": e, "et": et, "v": v, "va": va, "m": m,
                    "sha": sha, "md": md,
                }
                conn.execute(UPSERT, params)

    def _close_connections(self) -> None:
        self._pool.close()

    def _stamp(self) -> Any:
        return utc_now()

    # -- claims -------------------------------------------------------------------------
    def register(self, entries: Iterable[tuple[Any, ...]]) -> int:
        """Add ``(key, size)`` or ``(key, size, mtime_ns)`` rows as pending unless the key
        exists; returns how many were new."""
        added = 0
        with self._flushed() as conn:
            for chunk in batched(entries, REGISTER_BATCH):
                keys, sizes, mtimes = (list(column) for column in zip(*map(register_row, chunk)))
                params = {"job": self.job, "k": keys, "s": sizes, "m": mtimes}
                added += conn.execute(REGISTER, params).rowcount
        return added

    def _claim(self, owner: str, limit: int, lease_seconds: float) -> list[tuple[str, int]]:
        """``CLAIM``: rows locked with ``SKIP LOCKED``, leased on the database's clock."""
        params = {"job": self.job, "owner": owner, "limit": int(limit), "lease": float(lease_seconds)}
        with self._flushed() as conn:
            return [(k, s) for k, s in conn.execute(CLAIM, params)]

    def renew(self, owner: str, lease_seconds: float) -> int:
        """Extend every lease ``owner`` holds in this job; returns how many keys it holds."""
        check_positive("lease_seconds", lease_seconds)
        sql = (
            f"UPDATE {T} SET lease_expires = {NOW} + %(lease)s WHERE job = %(job)s "
            f"AND status = 'pending' AND status <> 'done' AND lease_expires >= {NOW} "
            "AND lease_owner = %(owner)s"
        )
        params = {"job": self.job, "owner": owner, "lease": float(lease_seconds)}
        with self._flushed() as conn:
            return conn.execute(sql, params).rowcount

    def release(self, owner: str) -> int:
        """Give back ``owner``'s leased keys that are not done; returns how many."""
        sql = (
            f"UPDATE {T} SET lease_expires = 0 WHERE job = %(job)s AND status <> 'done' "
            f"AND lease_expires >= {NOW} AND lease_owner = %(owner)s"
        )
        with self._flushed() as conn:
            return conn.execute(sql, {"job": self.job, "owner": owner}).rowcount

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
        params = self._job_fields(state, bucket, staging_prefix, final_prefix)
        sql = f"""
        INSERT INTO {J} AS j (job, state, bucket, staging_prefix, final_prefix, created_at, updated_at)
        VALUES (%(job)s, coalesce(%(state)s::text, 'open'), %(bucket)s::text, %(staging)s::text,
                %(final)s::text, now(), now())
        ON CONFLICT (job) DO UPDATE SET
          state = coalesce(%(state)s::text, j.state), bucket = coalesce(%(bucket)s::text, j.bucket),
          staging_prefix = coalesce(%(staging)s::text, j.staging_prefix),
          final_prefix = coalesce(%(final)s::text, j.final_prefix), updated_at = now()
        RETURNING {JOB_COLUMNS}
        """
        with self._flushed() as conn:
            row = conn.execute(sql, params).fetchone()
        assert row is not None
        return job_info_from_row(row)

    def open_job(self, *, bucket: str, staging_prefix: str, final_prefix: str) -> JobInfo:
        """Create this job's row, or reopen it after a rollback; the first caller's staging wins."""
        params = {"job": self.job, "bucket": bucket, "staging": staging_prefix, "final": final_prefix}
        sql = f"""
        INSERT INTO {J} AS j (job, state, bucket, staging_prefix, final_prefix, created_at, updated_at)
        VALUES (%(job)s, 'open', %(bucket)s, %(staging)s, %(final)s, now(), now())
        ON CONFLICT (job) DO UPDATE SET
          state = 'open', bucket = excluded.bucket, staging_prefix = excluded.staging_prefix,
          final_prefix = excluded.final_prefix, updated_at = now()
        WHERE j.state = 'rolled_back' OR j.staging_prefix IS NULL
        """
        with self._flushed() as conn:
            conn.execute(sql, params)
            row = conn.execute(f"SELECT {JOB_COLUMNS} FROM {J} WHERE job = %s", (self.job,)).fetchone()
        assert row is not None
        return job_info_from_row(row)

    def _acquire_commit(self, owner: str, lease_seconds: float) -> bool:
        """One upsert: it locks the job row, so concurrent callers are serialised by PostgreSQL."""
        sql = f"""
        INSERT INTO {J} AS j (job, state, commit_owner, commit_expires, created_at, updated_at)
        VALUES (%(job)s, 'open', %(owner)s, {NOW} + %(lease)s, now(), now())
        ON CONFLICT (job) DO UPDATE SET
          commit_owner = excluded.commit_owner, commit_expires = excluded.commit_expires,
          updated_at = now()
        WHERE j.commit_owner IS NULL OR j.commit_expires < {NOW}
           OR j.commit_owner = excluded.commit_owner
        RETURNING job
        """
        params = {"job": self.job, "owner": owner, "lease": float(lease_seconds)}
        with self._flushed() as conn:
            return conn.execute(sql, params).fetchone() is not None

    def release_commit(self, owner: str) -> None:
        """Give up the commit lock if ``owner`` holds it."""
        sql = (
            f"UPDATE {J} SET commit_owner = NULL, commit_expires = 0, updated_at = now() "
            "WHERE job = %s AND commit_owner = %s"
        )
        with self._flushed() as conn:
            conn.execute(sql, (self.job, owner))
