"""What a tracker answers about its job, written once for both backends: each query is one
SQL text with ``{p}`` for the backend's placeholder, read after the buffered marks are flushed."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, ClassVar

from rahcp_prefect.tracker.checks import check_positive, status_value
from rahcp_prefect.tracker.marks import MarkBuffer
from rahcp_prefect.tracker.protocol import FileDigests, FileEntry, JobInfo, JobState, TransferStatus
from rahcp_prefect.tracker.tables import DELETE_BATCH, JOBS, TRANSFERS, batched, job_info_from_row

#: Rows per page of ``iter_done`` (about 150 bytes each in memory).
DONE_PAGE = 5000

_STATUSES = {s.value: s for s in TransferStatus}


class Queries(MarkBuffer):
    """The reads of ``TrackerProtocol``: done keys, entries, errors, counts, job rows."""

    #: The backend's SELECT list for ``job_info_from_row`` (``job_columns`` of its clock).
    _JOB_COLUMNS: ClassVar[str]

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
