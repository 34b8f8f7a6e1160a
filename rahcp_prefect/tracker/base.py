"""What both backends share: input checks, the mark buffer, and row-to-object helpers.

A backend subclasses ``BufferedTracker`` and implements ``_write`` (store a batch of marks)
plus the queries. ``mark`` only validates and appends to an in-memory dict (a later mark of
the same key replaces the earlier one), so it costs about a microsecond; the dict reaches
the database every ``flush_every`` marks and on ``commit``/``close``/any query.
"""

from __future__ import annotations

import os
import threading
import warnings
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime, timezone
from itertools import islice
from typing import Any, ClassVar

from rahcp_prefect.client.resume import RecordedPart, RecordedUpload
from rahcp_prefect.defaults import MAX_KEY_BYTES
from rahcp_prefect.tracker.errors import (
    InvalidKeyError,
    TrackerClosedError,
    TrackerConfigError,
)
from rahcp_prefect.tracker.retained import RETAINED, RetainedStore
from rahcp_prefect.tracker.protocol import (
    FileDigests,
    FileEntry,
    JobInfo,
    LeaseAnswer,
    JobState,
    LeaseMode,
    TransferStatus,
)

#: The tables every backend uses (created by ``schema``).
TRANSFERS = "rahcp_transfers"
JOBS = "rahcp_jobs"
UPLOADS = "rahcp_uploads"
PARTS = "rahcp_parts"

#: One buffered mark: (key, size, status, error, etag, verified, validated, mtime_ns, sha256, md5).
MarkRow = tuple[str, int, str, "str | None", "str | None", bool, bool, "int | None", "str | None", "str | None"]
#: Keys per statement when forgetting many keys at once (SQLite allows 32,766 parameters).
DELETE_BATCH = 500

#: Rows per page of ``iter_done`` (about 150 bytes each in memory).
DONE_PAGE = 5000

#: Longest key or job name the tracker stores, in UTF-8 bytes: S3's ``MAX_KEY_BYTES`` (1024)
#: with room to spare, so that a too-long key can still be recorded as a failed file; its own
#: bound is PostgreSQL's index entry (about 2.7 KB), which job + key must fit in.
MAX_TRACKED_TEXT_BYTES = 1200

_STATUS_VALUES = {s.value: s.value for s in TransferStatus} | {s: s.value for s in TransferStatus}
_STATUSES = {s.value: s for s in TransferStatus}


def check_key(key: str, what: str = "key") -> str:
    """Return ``key`` if every backend can store it, else raise ``InvalidKeyError``.

    Refused: non-strings, the empty string, NUL (PostgreSQL text cannot hold it, so SQLite
    refuses it too, keeping the backends interchangeable), lone surrogates (not UTF-8;
    they come from undecodable file names read with ``surrogateescape``) and more than
    ``MAX_TRACKED_TEXT_BYTES`` of UTF-8 (a PostgreSQL index entry holds about 2.7 KB).
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
    if size > MAX_TRACKED_TEXT_BYTES:
        raise InvalidKeyError(
            f"{what} {key[:40]!r}... is {size} bytes of UTF-8; the tracker stores at most "
            f"{MAX_TRACKED_TEXT_BYTES} (S3 keys are at most {MAX_KEY_BYTES})"
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


def job_columns(now: str) -> str:
    """The SELECT list ``job_info_from_row`` reads; ``now`` is the backend's clock in Unix seconds.

    A commit lock or job lease whose time ran out shows no holder.
    """
    live = f"lease_expires >= {now}"
    return (
        "job, state, bucket, staging_prefix, final_prefix, "
        f"CASE WHEN commit_expires >= {now} THEN commit_owner END, updated_at, "
        f"CASE WHEN {live} THEN lease_owner END, CASE WHEN {live} THEN lease_mode END, "
        f"CASE WHEN {live} THEN lease_expires ELSE 0 END"
    )


def check_digest(value: object, what: str) -> str:
    """A digest must be a hex str (or None, handled by the caller); anything else is refused."""
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a hex str or None, got {value!r}")
    return str(value)


def check_mtime(mtime_ns: int | None) -> int | None:
    """``mtime_ns`` as an int (or None); anything else is refused with the value named."""
    if mtime_ns is None:
        return None
    if isinstance(mtime_ns, bool) or not isinstance(mtime_ns, int):
        raise ValueError(f"mtime_ns must be an int of nanoseconds or None, got {mtime_ns!r}")
    return mtime_ns


def register_row(entry: tuple[Any, ...]) -> tuple[str, int, int | None]:
    """``(key, size, mtime_ns)`` from a ``(key, size)`` or ``(key, size, mtime_ns)`` entry, checked."""
    if len(entry) == 2:
        key, size = entry
        mtime = None
    else:
        key, size, mtime = entry
    return check_key(key), int(size), check_mtime(mtime)


def job_info_from_row(row: tuple[Any, ...]) -> JobInfo:
    """A ``JobInfo`` from a row of ``job_columns``."""
    job, state, bucket, staging, final, owner, updated_at, lease_owner, lease_mode, lease_expires = row
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
        lease_owner=lease_owner,
        lease_mode=LeaseMode(lease_mode) if lease_mode else None,
        lease_expires=float(lease_expires or 0),
    )


class BufferedTracker(RetainedStore, ABC):
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
        mtime_ns: int | None = None,
        sha256: str | None = None,
        md5: str | None = None,
    ) -> None:
        """Record the outcome of ``key`` (buffered); a later mark of the same key wins.

        ``mtime_ns``: the file's modification time as sent (None: not known); stored as given.
        ``sha256``/``md5``: the file's digests (hex) as sent or received (None: not computed).
        """
        if not (type(key) is str and key.isascii() and 0 < len(key) <= MAX_TRACKED_TEXT_BYTES and "\x00" not in key):
            check_key(key)
        row = (
            key,
            int(size),
            status_value(status),
            clean_text(error),
            clean_text(etag),
            bool(verified),
            bool(validated),
            mtime_ns if mtime_ns is None or type(mtime_ns) is int else check_mtime(mtime_ns),
            sha256 if sha256 is None or type(sha256) is str else check_digest(sha256, "sha256"),
            md5 if md5 is None or type(md5) is str else check_digest(md5, "md5"),
        )
        with self._lock:
            if self._closed:
                raise TrackerClosedError("tracker is closed")
            self._buffer[key] = row
            if len(self._buffer) >= self.flush_every:
                self._flush_locked()

    def flush(self) -> None:
        """Write the buffered marks to the database."""
        with self._lock:
            self._check_usable()
            self._flush_locked()

    def commit(self) -> None:
        """Deprecated name of ``flush()`` (kept one release for callers; "commit" is the job's
        staging move)."""
        warnings.warn("tracker.commit() is deprecated: call tracker.flush()", DeprecationWarning, stacklevel=2)
        self.flush()

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
    #: The backend's SELECT list for ``job_info_from_row`` (``job_columns`` of its clock).
    _JOB_COLUMNS: ClassVar[str]
    #: The backend's clock as an SQL expression of Unix seconds (PostgreSQL: the database's).
    _NOW: ClassVar[str]

    @abstractmethod
    def _stamp(self) -> Any:
        """Now as the backend stores ``created_at``/``updated_at``."""

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

    def entries(self, status: TransferStatus | None = None) -> dict[str, FileEntry]:
        """``{key: FileEntry(size, mtime_ns, status)}`` of this job's keys (one status or all)."""
        sql = f'SELECT "key", size, mtime_ns, status FROM {TRANSFERS} WHERE job = {{p}}'
        params: tuple[Any, ...] = (self.job,)
        if status is not None:
            sql += " AND status = {p}"
            params += (status_value(status),)
        statuses = _STATUSES
        return {
            key: FileEntry(size, mtime, statuses[st]) for key, size, mtime, st in self._select(sql, *params)
        }

    def iter_done(self, prefix: str = "", page_size: int = DONE_PAGE) -> Iterator[tuple[str, int, int | None]]:
        """``(key, size, mtime_ns)`` of the done keys under ``prefix``, in key order, a page at
        a time (keyset paging on the primary key: one page in memory, no long-lived cursor).

        The order is UTF-8 byte order on both backends (SQLite's BINARY collation, PostgreSQL's
        ``C``), the scanner's and S3's: the incremental sync merges the three streams in step.
        """
        for key, size, mtime in self._done_pages('"key", size, mtime_ns', prefix, page_size):
            yield key, size, mtime

    def iter_done_digests(self, prefix: str = "", page_size: int = DONE_PAGE) -> Iterator[tuple[str, FileDigests]]:
        """``(key, FileDigests(size, sha256, md5))`` of the done keys under ``prefix``, in key
        order a page at a time, as ``iter_done``: what a check merges with a listing."""
        for key, size, sha, md5 in self._done_pages('"key", size, sha256, md5', prefix, page_size):
            yield key, FileDigests(size, sha, md5)

    def _done_pages(self, columns: str, prefix: str, page_size: int) -> Iterator[Any]:
        """Rows (``"key"`` first) of the done keys under ``prefix`` in key order, by keyset pages."""
        check_positive("page_size", page_size)
        sql = (
            f"SELECT {columns} FROM {TRANSFERS} WHERE job = {{p}} AND status = {{p}} "
            f'AND "key" > {{p}} ORDER BY "key" LIMIT {int(page_size)}'
        )
        after = prefix
        while True:
            rows = self._select(sql, self.job, "done", after)
            for row in rows:
                if not row[0].startswith(prefix):
                    return
                yield row
            if len(rows) < page_size:
                return
            after = rows[-1][0]

    def statuses_of(self, keys: Iterable[str]) -> dict[str, TransferStatus]:
        """``{key: status}`` of those of ``keys`` this job holds (in chunks of ``DELETE_BATCH``):
        a question about a batch of keys, never an answer the size of the job."""
        found: dict[str, TransferStatus] = {}
        for chunk in batched(keys, DELETE_BATCH):
            marks = ", ".join(["{p}"] * len(chunk))
            sql = f'SELECT "key", status FROM {TRANSFERS} WHERE job = {{p}} AND "key" IN ({marks})'
            found.update((key, _STATUSES[status]) for key, status in self._select(sql, self.job, *chunk))
        return found

    def done_digests(self) -> dict[str, FileDigests]:
        """``{key: FileDigests(size, sha256, md5)}`` of every key of this job marked done."""
        sql = f'SELECT "key", size, sha256, md5 FROM {TRANSFERS} WHERE job = {{p}} AND status = {{p}}'
        return {key: FileDigests(size, sha, md5) for key, size, sha, md5 in self._select(sql, self.job, "done")}

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

    def list_jobs(self, state: JobState | None = None) -> list[JobInfo]:
        """Every job in this database (optionally in one state): cleanup finds crashed staging."""
        if state is None:
            rows = self._select(f"SELECT {self._JOB_COLUMNS} FROM {JOBS} ORDER BY job")
        else:
            sql = f"SELECT {self._JOB_COLUMNS} FROM {JOBS} WHERE state = {{p}} ORDER BY job"
            rows = self._select(sql, JobState(state).value)
        return [job_info_from_row(row) for row in rows]

    # -- claims and the commit lock: checked here, stored by the backend ----------------
    def claim(self, owner: str, limit: int, lease_seconds: float) -> list[tuple[str, int]]:
        """Lease up to ``limit`` pending (or lease-expired, not done) keys to ``owner``."""
        check_key(owner, "owner")
        check_positive("limit", limit)
        check_positive("lease_seconds", lease_seconds)
        return self._claim(owner, limit, lease_seconds)

    @abstractmethod
    def _claim(self, owner: str, limit: int, lease_seconds: float) -> list[tuple[str, int]]:
        """``claim`` with checked arguments, atomic against other claimers."""

    def acquire_commit(self, owner: str, lease_seconds: float) -> bool:
        """Take the job's commit lock: True for exactly one owner until it releases or expires.

        The holder calling again renews its lease. Creates the job's row if there is none.
        """
        check_key(owner, "owner")
        check_positive("lease_seconds", lease_seconds)
        return self._acquire_commit(owner, lease_seconds)

    @abstractmethod
    def _acquire_commit(self, owner: str, lease_seconds: float) -> bool:
        """``acquire_commit`` with checked arguments, atomic against other callers."""

    def _job_fields(
        self, state: JobState | None, bucket: str | None, staging_prefix: str | None, final_prefix: str | None
    ) -> dict[str, Any]:
        """The named parameters of a backend's ``update_job`` upsert: ``job``, ``state`` (its
        stored value), ``bucket``, ``staging`` and ``final`` (None: keep the stored value)."""
        return {
            "job": self.job,
            "state": JobState(state).value if state is not None else None,
            "bucket": bucket,
            "staging": staging_prefix,
            "final": final_prefix,
        }

    # -- deletes, written once: a backend gives ``_write_transaction`` ------------------
    @abstractmethod
    def _write_transaction(self) -> AbstractContextManager[Any]:
        """A connection inside one write transaction (committed on exit, rolled back on error)."""

    @contextmanager
    def _writing(self) -> Iterator[Any]:
        """Hold the lock and one write transaction; buffered marks stay buffered (what is
        written this way never reads them)."""
        with self._lock:
            self._check_usable()
            with self._write_transaction() as conn:
                yield conn

    def delete(self, key: str) -> None:
        """Forget ``key`` in this job."""
        check_key(key)
        p = self._PARAM
        with self._lock:
            self._check_usable()
            self._drop_buffered(key)
            with self._write_transaction() as conn:
                conn.execute(f'DELETE FROM {TRANSFERS} WHERE job = {p} AND "key" = {p}', (self.job, key))

    def delete_keys(self, keys: Iterable[str]) -> int:
        """Forget every key of ``keys`` in this job (in batches); returns how many were stored."""
        p = self._PARAM
        deleted = 0
        with self._lock:
            self._check_usable()
            for chunk in batched(keys, DELETE_BATCH):
                for key in chunk:
                    check_key(key)
                    self._drop_buffered(key)
                marks = ", ".join([p] * len(chunk))
                sql = f'DELETE FROM {TRANSFERS} WHERE job = {p} AND "key" IN ({marks})'
                with self._write_transaction() as conn:
                    deleted += conn.execute(sql, (self.job, *chunk)).rowcount
        return int(deleted)

    def delete_job(self) -> int:
        """Forget this job entirely (its keys and its job row); returns how many keys it had."""
        p = self._PARAM
        with self._lock:
            self._check_usable()
            self._buffer.clear()
            with self._write_transaction() as conn:
                deleted = conn.execute(f"DELETE FROM {TRANSFERS} WHERE job = {p}", (self.job,)).rowcount
                conn.execute(f"DELETE FROM {JOBS} WHERE job = {p}", (self.job,))
                conn.execute(f"DELETE FROM {PARTS} WHERE job = {p}", (self.job,))
                conn.execute(f"DELETE FROM {UPLOADS} WHERE job = {p}", (self.job,))
                conn.execute(f"DELETE FROM {RETAINED} WHERE job = {p}", (self.job,))
            return int(deleted)

    # -- the part store of multipart uploads (the SDK's ``PartStore``), written once ------
    def recorded_upload(self, bucket: str, key: str) -> RecordedUpload | None:
        """The unfinished multipart upload recorded for ``bucket/key`` in this job, or None."""
        rows = self._select(
            f'SELECT upload_id, part_size, size, mtime_ns FROM {UPLOADS} '
            'WHERE job = {p} AND "key" = {p} AND bucket = {p}',
            self.job, key, bucket,
        )
        if not rows:
            return None
        upload_id, part_size, size, mtime_ns = rows[0]
        parts = self._select(
            f'SELECT part_number, etag, md5 FROM {PARTS} WHERE job = {{p}} AND "key" = {{p}} AND upload_id = {{p}}',
            self.job, key, upload_id,
        )
        return RecordedUpload(
            upload_id=upload_id, part_size=int(part_size), size=int(size), mtime_ns=int(mtime_ns),
            parts={int(number): RecordedPart(etag, md5) for number, etag, md5 in parts},
        )

    def record_upload(
        self, bucket: str, key: str, upload_id: str, part_size: int, size: int, mtime_ns: int
    ) -> None:
        """A new multipart upload of ``bucket/key``: replaces any earlier record and its parts."""
        check_key(key)
        p = self._PARAM
        with self._writing() as conn:
            self._drop_upload(conn, key)
            conn.execute(
                f'INSERT INTO {UPLOADS} (job, "key", bucket, upload_id, part_size, size, mtime_ns, updated_at) '
                f"VALUES ({p}, {p}, {p}, {p}, {p}, {p}, {p}, {p})",
                (self.job, key, bucket, upload_id, part_size, size, mtime_ns, self._stamp()),
            )

    def record_part(self, bucket: str, key: str, upload_id: str, number: int, etag: str, md5: str) -> None:
        """Part ``number`` of ``upload_id`` was acknowledged with ``etag`` (bytes hashing to ``md5``)."""
        p = self._PARAM
        with self._writing() as conn:
            conn.execute(
                f'INSERT INTO {PARTS} (job, "key", part_number, upload_id, etag, md5) '
                f"VALUES ({p}, {p}, {p}, {p}, {p}, {p}) "
                'ON CONFLICT (job, "key", part_number) DO UPDATE SET upload_id = excluded.upload_id, '
                "etag = excluded.etag, md5 = excluded.md5",
                (self.job, key, number, upload_id, etag, md5),
            )

    def _drop_upload(self, conn: Any, key: str) -> None:
        p = self._PARAM
        conn.execute(f'DELETE FROM {PARTS} WHERE job = {p} AND "key" = {p}', (self.job, key))
        conn.execute(f'DELETE FROM {UPLOADS} WHERE job = {p} AND "key" = {p}', (self.job, key))

    def forget_upload(self, bucket: str, key: str) -> None:
        """The upload of ``bucket/key`` completed or was aborted: drop its record and parts."""
        with self._writing() as conn:
            self._drop_upload(conn, key)

    # -- the job lease, written once over ``_write_transaction`` and the backend's clock ---
    def take_job_lease(
        self, owner: str, lease_seconds: float, mode: LeaseMode = LeaseMode.single
    ) -> LeaseAnswer:
        """Take the job lease if it is free, expired or ``owner``'s (renewed); a cooperative run
        also shares a live cooperative lease (which then lasts until the latest expiry).

        Atomic: one statement under the job row's lock (PostgreSQL) or ``BEGIN IMMEDIATE``
        (SQLite), so of single-mode runs taking at once exactly one wins. The answer names the
        holder when the caller did not get the lease. Creates the job's row if needed.
        """
        check_key(owner, "owner")
        check_positive("lease_seconds", lease_seconds)
        wanted = LeaseMode(mode).value
        p, now, j = self._PARAM, self._NOW, JOBS
        take = f"""
        INSERT INTO {j} (job, state, lease_owner, lease_expires, lease_mode, created_at, updated_at)
        VALUES ({p}, 'open', {p}, {now} + {p}, {p}, {p}, {p})
        ON CONFLICT (job) DO UPDATE SET
          lease_owner = excluded.lease_owner,
          lease_expires = CASE
            WHEN {j}.lease_mode = 'cooperative' AND excluded.lease_mode = 'cooperative'
             AND {j}.lease_expires > excluded.lease_expires THEN {j}.lease_expires
            ELSE excluded.lease_expires END,
          lease_mode = excluded.lease_mode
        WHERE {j}.lease_owner IS NULL OR {j}.lease_expires < {now}
           OR ({j}.lease_mode = excluded.lease_mode
               AND ({j}.lease_owner = excluded.lease_owner OR excluded.lease_mode = 'cooperative'))
        RETURNING job
        """
        read = (
            f"SELECT CASE WHEN lease_expires >= {now} THEN lease_owner END, "
            f"CASE WHEN lease_expires >= {now} THEN lease_mode END, lease_expires, {now} "
            f"FROM {j} WHERE job = {p}"
        )
        stamp = self._stamp()
        with self._writing() as conn:
            params = (self.job, owner, float(lease_seconds), wanted, stamp, stamp)
            held = conn.execute(take, params).fetchone() is not None
            holder, held_mode, expires, clock = conn.execute(read, (self.job,)).fetchone()
        if holder is None:
            return LeaseAnswer(held=held, owner=None, mode=None, expires=0.0, seconds_left=0.0)
        return LeaseAnswer(
            held=held,
            owner=holder,
            mode=LeaseMode(held_mode),
            expires=float(expires),
            seconds_left=max(0.0, float(expires) - float(clock)),
        )

    def renew_job_lease(self, owner: str, lease_seconds: float, mode: LeaseMode = LeaseMode.single) -> bool:
        """Extend a live lease the caller holds (single: ``owner``'s; cooperative: the shared
        cooperative lease); False when it expired or another run holds the job."""
        check_positive("lease_seconds", lease_seconds)
        wanted = LeaseMode(mode).value
        p, now = self._PARAM, self._NOW
        sql = f"""
        UPDATE {JOBS} SET
          lease_expires = CASE WHEN lease_expires > {now} + {p} THEN lease_expires ELSE {now} + {p} END,
          lease_owner = {p}
        WHERE job = {p} AND lease_expires >= {now} AND lease_mode = {p}
          AND (lease_owner = {p} OR lease_mode = 'cooperative')
        """
        seconds = float(lease_seconds)
        with self._writing() as conn:
            params = (seconds, seconds, owner, self.job, wanted, owner)
            return conn.execute(sql, params).rowcount == 1

    def release_job_lease(self, owner: str) -> bool:
        """Free the job if ``owner`` holds it in single mode; True if it did. A cooperative
        lease is shared, so no one run frees it: it expires after the last renewal."""
        p = self._PARAM
        sql = (
            f"UPDATE {JOBS} SET lease_owner = NULL, lease_mode = NULL, lease_expires = 0 "
            f"WHERE job = {p} AND lease_owner = {p} AND lease_mode = 'single'"
        )
        with self._writing() as conn:
            return conn.execute(sql, (self.job, owner)).rowcount == 1

    @abstractmethod
    def _write(self, rows: list[MarkRow]) -> None:
        """Upsert ``rows`` (unique keys) into this job in one transaction."""

    @abstractmethod
    def _close_connections(self) -> None:
        """Release the backend's connections."""
