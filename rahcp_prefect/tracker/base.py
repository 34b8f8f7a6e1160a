"""What both backends share: input checks, the mark buffer, and row-to-object helpers.

A backend subclasses ``BufferedTracker`` and implements ``_write`` (store a batch of marks)
plus the queries. ``mark`` only validates and appends to an in-memory dict (a later mark of
the same key replaces the earlier one), so it costs about a microsecond; the dict reaches
the database every ``flush_every`` marks and on ``commit``/``close``/any query.
"""

from __future__ import annotations

import os
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager
from datetime import datetime, timezone
from itertools import islice
from typing import Any, ClassVar

from rahcp_prefect.tracker.errors import (
    InvalidKeyError,
    TrackerClosedError,
    TrackerConfigError,
)
from rahcp_prefect.tracker.protocol import JobInfo, JobState, TransferStatus

#: The tables every backend uses (created by ``schema``).
TRANSFERS = "rahcp_transfers"
JOBS = "rahcp_jobs"

#: One buffered mark: (key, size, status, error, etag, verified, validated).
MarkRow = tuple[str, int, str, "str | None", "str | None", bool, bool]

#: Longest key or job name, in UTF-8 bytes; job + key must fit one PostgreSQL index entry.
MAX_KEY_BYTES = 1200

_STATUS_VALUES = {s.value: s.value for s in TransferStatus} | {s: s.value for s in TransferStatus}


def check_key(key: str, what: str = "key") -> str:
    """Return ``key`` if every backend can store it, else raise ``InvalidKeyError``.

    Refused: non-strings, the empty string, NUL (PostgreSQL text cannot hold it, so SQLite
    refuses it too, keeping the backends interchangeable), lone surrogates (not UTF-8;
    they come from undecodable file names read with ``surrogateescape``) and more than
    ``MAX_KEY_BYTES`` of UTF-8 (a PostgreSQL index entry holds about 2.7 KB).
    """
    if type(key) is not str:
        if not isinstance(key, str):
            raise InvalidKeyError(f"{what} must be a str, not {type(key).__name__}")
    if not key:
        raise InvalidKeyError(f"{what} must not be empty")
    if "\x00" in key:
        raise InvalidKeyError(f"{what} {key!r} contains NUL, which the tracker cannot store")
    if key.isascii():
        size = len(key)
    else:
        try:
            size = len(key.encode("utf-8"))
        except UnicodeEncodeError as exc:
            raise InvalidKeyError(
                f"{what} {key!r} is not valid UTF-8 text ({exc.reason}); "
                "decode file names before tracking them"
            ) from None
    if size > MAX_KEY_BYTES:
        raise InvalidKeyError(
            f"{what} {key[:40]!r}... is {size} bytes of UTF-8; the tracker stores at most "
            f"{MAX_KEY_BYTES} (S3 keys are at most 1024)"
        )
    return key


def clean_text(text: str | None) -> str | None:
    """An error message or etag made storable: NUL and lone surrogates escaped, never refused."""
    if text is None:
        return None
    text = str(text)
    if "\x00" in text:
        text = text.replace("\x00", "\\x00")
    if not text.isascii():
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def status_value(status: TransferStatus | str) -> str:
    """The stored spelling of ``status``; unknown statuses raise ``ValueError``."""
    try:
        return _STATUS_VALUES[status]
    except (KeyError, TypeError):
        raise ValueError(f"unknown transfer status {status!r}") from None


def check_positive(name: str, value: float) -> None:
    """Refuse a non-positive option (``limit``, ``lease_seconds``, ``flush_every``)."""
    if not value > 0:
        raise TrackerConfigError(f"{name} must be > 0, got {value!r}")


def batched(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    """Consecutive lists of at most ``size`` items, without materialising ``items``."""
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def utc_now() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(timezone.utc)


def job_info_from_row(row: tuple[Any, ...]) -> JobInfo:
    """A ``JobInfo`` from ``(job, state, bucket, staging, final, commit_owner, updated_at)``."""
    job, state, bucket, staging, final, owner, updated_at = row
    if isinstance(updated_at, str):
        updated_at = datetime.fromisoformat(updated_at)
    if isinstance(updated_at, datetime) and updated_at.tzinfo is None:
        updated_at = updated_at.replace(tzinfo=timezone.utc)
    return JobInfo(
        job=job,
        state=JobState(state),
        bucket=bucket,
        staging_prefix=staging,
        final_prefix=final,
        commit_owner=owner,
        updated_at=updated_at,
    )


class BufferedTracker(ABC):
    """The buffered ``mark`` and lifecycle shared by every backend."""

    job: str

    def __init__(self, job: str, flush_every: int) -> None:
        check_key(job, "job")
        check_positive("flush_every", flush_every)
        self.job = job
        self.flush_every = int(flush_every)
        self._buffer: dict[str, MarkRow] = {}
        self._lock = threading.RLock()
        self._pid = os.getpid()
        self._closed = False

    # -- buffered marks ------------------------------------------------------------------
    def mark(
        self,
        key: str,
        size: int,
        status: TransferStatus,
        error: str | None = None,
        *,
        etag: str | None = None,
        verified: bool = False,
        validated: bool = False,
    ) -> None:
        """Record the outcome of ``key`` (buffered); a later mark of the same key wins."""
        if not (type(key) is str and key.isascii() and 0 < len(key) <= MAX_KEY_BYTES and "\x00" not in key):
            check_key(key)
        row = (
            key,
            int(size),
            status_value(status),
            clean_text(error),
            clean_text(etag),
            bool(verified),
            bool(validated),
        )
        with self._lock:
            if self._closed:
                raise TrackerClosedError("tracker is closed")
            self._buffer[key] = row
            if len(self._buffer) >= self.flush_every:
                self._flush_locked()

    def commit(self) -> None:
        """Flush buffered marks to the database."""
        with self._lock:
            self._check_usable()
            self._flush_locked()

    def close(self) -> None:
        """Flush and release connections; the tracker is unusable afterwards."""
        with self._lock:
            if self._closed:
                return
            if os.getpid() != self._pid:  # a forked child: the connections are the parent's
                self._closed = True
                return
            try:
                self._flush_locked()
            finally:
                self._closed = True
                self._close_connections()

    def __enter__(self) -> BufferedTracker:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- helpers for subclasses ---------------------------------------------------------
    def _flush_locked(self) -> None:
        """Write the buffer (caller holds the lock); on failure the buffer is kept."""
        if not self._buffer:
            return
        self._check_usable()
        rows = list(self._buffer.values())
        self._write(rows)
        self._buffer.clear()

    def _check_usable(self) -> None:
        if self._closed:
            raise TrackerClosedError("tracker is closed")
        if os.getpid() != self._pid:
            raise TrackerClosedError(
                f"tracker was opened in process {self._pid} and used in {os.getpid()}; "
                "open one tracker per process"
            )

    def _drop_buffered(self, key: str) -> None:
        self._buffer.pop(key, None)

    # -- queries, written once: a backend gives its placeholder and ``_flushed`` -------
    #: The DB-API placeholder of the backend's driver (``?`` for sqlite3, ``%s`` for psycopg).
    _PARAM: ClassVar[str]
    #: The backend's SELECT list for ``job_info_from_row`` (commit owner shown while leased).
    _JOB_COLUMNS: ClassVar[str]

    @abstractmethod
    def _flushed(self) -> AbstractContextManager[Any]:
        """Hold the lock, flush buffered marks, and hand out a connection."""

    def _select(self, sql: str, *params: Any) -> list[Any]:
        """Rows of ``sql`` (``{p}`` marks each parameter) after flushing buffered marks."""
        with self._flushed() as conn:
            return list(conn.execute(sql.format(p=self._PARAM), params))

    def done_keys(self) -> set[str]:
        """Every key of this job marked done (flushes first)."""
        sql = f'SELECT "key" FROM {TRANSFERS} WHERE job = {{p}} AND status = {{p}}'
        return {key for (key,) in self._select(sql, self.job, "done")}

    def done_entries(self) -> dict[str, int]:
        """``{key: size}`` of every key of this job marked done (flushes first)."""
        sql = f'SELECT "key", size FROM {TRANSFERS} WHERE job = {{p}} AND status = {{p}}'
        return {key: size for key, size in self._select(sql, self.job, "done")}

    def error_entries(self) -> list[tuple[str, int]]:
        """``(key, size)`` of every key of this job marked error, for ``retry_errors``."""
        sql = f'SELECT "key", size FROM {TRANSFERS} WHERE job = {{p}} AND status = {{p}} ORDER BY "key"'
        return [(key, size) for key, size in self._select(sql, self.job, "error")]

    def error_details(self) -> list[tuple[str, str]]:
        """``(key, error message)`` of every key marked error."""
        sql = f'SELECT "key", error FROM {TRANSFERS} WHERE job = {{p}} AND status = {{p}} ORDER BY "key"'
        return [(key, error or "") for key, error in self._select(sql, self.job, "error")]

    def summary(self) -> dict[str, int]:
        """Counts per status for this job: ``{"pending": n, "done": n, "error": n}``."""
        counts = {status.value: 0 for status in TransferStatus}
        sql = f"SELECT status, count(*) FROM {TRANSFERS} WHERE job = {{p}} GROUP BY status"
        for status, count in self._select(sql, self.job):
            counts[status] = count
        return counts

    def unverified_keys(self) -> list[tuple[str, int, str | None]]:
        """``(key, size, etag)`` of done keys not yet verified."""
        sql = (
            f'SELECT "key", size, etag FROM {TRANSFERS} '
            'WHERE job = {p} AND status = {p} AND NOT verified ORDER BY "key"'
        )
        return [(key, size, etag) for key, size, etag in self._select(sql, self.job, "done")]

    def unvalidated_keys(self) -> list[tuple[str, int]]:
        """``(key, size)`` of done keys not yet validated."""
        sql = (
            f'SELECT "key", size FROM {TRANSFERS} '
            'WHERE job = {p} AND status = {p} AND NOT validated ORDER BY "key"'
        )
        return [(key, size) for key, size in self._select(sql, self.job, "done")]

    def job_info(self) -> JobInfo | None:
        """This job's row, or None before ``update_job`` was first called."""
        rows = self._select(f"SELECT {self._JOB_COLUMNS} FROM {JOBS} WHERE job = {{p}}", self.job)
        return job_info_from_row(rows[0]) if rows else None

    # -- deletes, written once: a backend gives ``_write_transaction`` ------------------
    @abstractmethod
    def _write_transaction(self) -> AbstractContextManager[Any]:
        """A connection inside one write transaction (committed on exit, rolled back on error)."""

    def delete(self, key: str) -> None:
        """Forget ``key`` in this job."""
        check_key(key)
        p = self._PARAM
        with self._lock:
            self._check_usable()
            self._drop_buffered(key)
            with self._write_transaction() as conn:
                conn.execute(f'DELETE FROM {TRANSFERS} WHERE job = {p} AND "key" = {p}', (self.job, key))

    def delete_job(self) -> int:
        """Forget this job entirely (its keys and its job row); returns how many keys it had."""
        p = self._PARAM
        with self._lock:
            self._check_usable()
            self._buffer.clear()
            with self._write_transaction() as conn:
                deleted = conn.execute(f"DELETE FROM {TRANSFERS} WHERE job = {p}", (self.job,)).rowcount
                conn.execute(f"DELETE FROM {JOBS} WHERE job = {p}", (self.job,))
            return int(deleted)

    @abstractmethod
    def _write(self, rows: list[MarkRow]) -> None:
        """Upsert ``rows`` (unique keys) into this job in one transaction."""

    @abstractmethod
    def _close_connections(self) -> None:
        """Release the backend's connections."""
