"""Failure logs that scale: the first failures one line each, then a count per interval.

A run where a million files fail must not write a million log lines (the Prefect UI, the
worker's console and the API all suffer). ``FailureLog`` is the ``on_error`` callback of the
engine for a whole flow run: it logs the first ``first`` failures with their reason, then at
most one line per ``interval`` with the count so far, and ``close()`` logs the final count
and where the full list is.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from time import monotonic
from typing import Any

from .format import without_staging

FIRST_FAILURES = 20
"""Failures logged one by one (and shown in the summary) before they are only counted."""


class FailureLog:
    """Throttled per-file failure logging for one run (thread-safe enough: counters only)."""

    def __init__(
        self,
        logger: logging.Logger | logging.LoggerAdapter[Any],
        *,
        first: int = FIRST_FAILURES,
        interval: float = 60.0,
        display: Callable[[str], str] = lambda key: key,
        full_list: str = "",
        clock: Callable[[], float] = monotonic,
    ) -> None:
        self.logger = logger
        self.first = first
        self.interval = interval
        self._display = display
        self.full_list = full_list
        self._clock = clock
        self.count = 0
        self._counted_at_last_line = 0
        self._next_line = 0.0

    def __call__(self, key: str, exc: BaseException) -> None:
        """Engine ``on_error(key, exc)``: count, log the first ones, a count per interval."""
        self.count += 1
        if self.count <= self.first:
            text = without_staging(str(exc))
            reason = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
            self.logger.warning("Failed: %s: %s", self._display(key), reason)
            if self.count == self.first:
                self.logger.warning(
                    "%d files failed: further failures are counted, one line every %s",
                    self.count,
                    _seconds(self.interval),
                )
                self._mark_line()
            return
        if self._clock() >= self._next_line:
            self.logger.warning(
                "%d files failed so far (%d since the last count)",
                self.count,
                self.count - self._counted_at_last_line,
            )
            self._mark_line()

    def _mark_line(self) -> None:
        self._counted_at_last_line = self.count
        self._next_line = self._clock() + self.interval

    def close(self) -> None:
        """Log the final count (nothing when nothing failed)."""
        if not self.count:
            return
        where = f"; all of them: {self.full_list}" if self.full_list else ""
        shown = min(self.count, self.first)
        self.logger.warning("%d file(s) failed in all (%d logged above)%s", self.count, shown, where)


def _seconds(interval: float) -> str:
    return f"{interval:g} s"
