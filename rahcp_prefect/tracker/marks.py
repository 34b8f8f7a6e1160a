"""The mark buffer every backend shares, and the tracker's lifecycle.

``mark`` only validates and appends to an in-memory dict (a later mark of the same key replaces
the earlier one), so it costs about a microsecond; the dict reaches the database every
``flush_every`` marks and on ``flush``/``close``/any query. The other roles reach the database
through the two doors here: ``_select`` (flushes first, so a query sees every mark) and
``_writing`` (leaves the buffer alone).
"""

from __future__ import annotations

import os
import threading
import warnings
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any, ClassVar, Self

from rahcp_prefect.tracker.checks import (
    MAX_TRACKED_TEXT_BYTES,
    check_digest,
    check_key,
    check_mtime,
    check_positive,
    clean_text,
    status_value,
)
from rahcp_prefect.tracker.errors import TrackerClosedError
from rahcp_prefect.tracker.protocol import TransferStatus

#: One buffered mark: (key, size, status, error, etag, verified, validated, mtime_ns, sha256, md5).
MarkRow = tuple[str, int, str, "str | None", "str | None", bool, bool, "int | None", "str | None", "str | None"]


class MarkBuffer(ABC):
    """Buffered marks, flush and close; a backend gives ``_write`` and its connections."""

    job: str

    #: The DB-API placeholder of the backend's driver (``?`` for sqlite3, ``%s`` for psycopg).
    _PARAM: ClassVar[str]

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
            None if error is None else clean_text(error),
            None if etag is None else clean_text(etag),
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

    def __enter__(self) -> Self:
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

    # -- the backend's part -------------------------------------------------------------
    @abstractmethod
    def _write(self, rows: list[MarkRow]) -> None:
        """Upsert ``rows`` (unique keys) into this job in one transaction."""

    @abstractmethod
    def _close_connections(self) -> None:
        """Release the backend's connections."""

    @abstractmethod
    def _stamp(self) -> Any:
        """Now as the backend stores ``created_at``/``updated_at``."""

    @abstractmethod
    def _flushed(self) -> AbstractContextManager[Any]:
        """Hold the lock, flush buffered marks, and hand out a connection."""

    @abstractmethod
    def _write_transaction(self) -> AbstractContextManager[Any]:
        """A connection inside one write transaction (committed on exit, rolled back on error)."""

    # -- the doors every role goes through -----------------------------------------------
    def _select(self, sql: str, *params: Any) -> list[Any]:
        """Rows of ``sql`` (``{p}`` marks each parameter) after flushing buffered marks."""
        with self._flushed() as conn:
            return list(conn.execute(sql.format(p=self._PARAM), params))

    @contextmanager
    def _writing(self) -> Iterator[Any]:
        """Hold the lock and one write transaction; buffered marks stay buffered (what is
        written this way never reads them)."""
        with self._lock:
            self._check_usable()
            with self._write_transaction() as conn:
                yield conn
