"""Forgetting keys and jobs, written once over the backend's write transaction; what is
forgotten also leaves the mark buffer."""

from __future__ import annotations

from collections.abc import Iterable

from rahcp_prefect.tracker.checks import check_key
from rahcp_prefect.tracker.marks import MarkBuffer
from rahcp_prefect.tracker.retained import RETAINED
from rahcp_prefect.tracker.tables import DELETE_BATCH, JOBS, PARTS, TRANSFERS, UPLOADS, batched


class Deletes(MarkBuffer):
    """``delete``, ``delete_keys`` and ``delete_job``."""

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
