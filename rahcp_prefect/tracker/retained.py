"""The tracker's record of retained files: refused for retention or hold, and when to retry.

Written once over the backend's placeholder and write transaction (``BufferedTracker`` mixes it
in). The rules of when to retry live in ``job/retained.py``; this only stores them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager
from typing import Any, ClassVar, NamedTuple

RETAINED = "rahcp_retained"
TRANSFERS = "rahcp_transfers"


def not_waiting(now: str) -> str:
    """SQL that is true for a row of ``rahcp_transfers`` that no retained file of its job waits
    on (``next_try`` ahead of ``now``, an SQL expression): the claims of both backends add it,
    so a cooperative run never takes a retained file before its next try."""
    return (
        f'NOT EXISTS (SELECT 1 FROM {RETAINED} WHERE {RETAINED}.job = {TRANSFERS}.job '
        f'AND {RETAINED}."key" = {TRANSFERS}."key" AND {RETAINED}.next_try > {now})'
    )


class RetainedFile(NamedTuple):
    """A retained file: when its retention ends (None: not known), refusals so far, next try."""

    until: float | None
    step: int
    next_try: float


class RetainedStore:
    """``note_retained``, ``retained_files``, ``forget_committed_retained`` for one job."""

    job: str
    _PARAM: ClassVar[str]

    def _writing(self) -> AbstractContextManager[Any]:  # given by the backend
        raise NotImplementedError

    def _select(self, sql: str, *params: Any) -> list[Any]:  # given by the backend
        raise NotImplementedError

    def _stamp(self) -> Any:  # given by the backend
        raise NotImplementedError

    def note_retained(self, files: Iterable[tuple[str, RetainedFile]]) -> None:
        """Record (or update) retained files by key."""
        p = self._PARAM
        with self._writing() as conn:
            for key, found in files:
                conn.execute(
                    f'INSERT INTO {RETAINED} (job, "key", until, step, next_try, updated_at) '
                    f"VALUES ({p}, {p}, {p}, {p}, {p}, {p}) "
                    'ON CONFLICT (job, "key") DO UPDATE SET until = excluded.until, step = excluded.step, '
                    "next_try = excluded.next_try, updated_at = excluded.updated_at",
                    (self.job, key, found.until, found.step, found.next_try, self._stamp()),
                )

    def retained_files(self) -> Iterator[tuple[str, RetainedFile]]:
        """Every retained file of this job, in key order (a few: the files a namespace refused)."""
        rows = self._select(
            f'SELECT "key", until, step, next_try FROM {RETAINED} WHERE job = {{p}} ORDER BY "key"', self.job
        )
        for key, until, step, next_try in rows:
            yield key, RetainedFile(until, int(step), float(next_try))

    def forget_committed_retained(self) -> int:
        """Drop the record of retained files that are now done (their new bytes were placed)."""
        p = self._PARAM
        with self._writing() as conn:
            return int(conn.execute(
                f'DELETE FROM {RETAINED} WHERE job = {p} AND "key" IN '
                f"(SELECT \"key\" FROM {TRANSFERS} WHERE job = {p} AND status = 'done')",
                (self.job, self.job),
            ).rowcount)
