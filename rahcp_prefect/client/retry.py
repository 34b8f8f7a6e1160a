"""Backoff arithmetic shared by the control plane and the data plane."""

from __future__ import annotations

import random
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from time import monotonic

MAX_DELAY = 60.0
"""No single wait is longer than this, whatever the attempt or Retry-After says."""

THROTTLE_STATUSES = frozenset({429, 503})
"""Statuses a store answers when it is overloaded: ridden out for ``retry_deadline`` seconds."""

THROTTLE_CODES = frozenset({b"SlowDown"})
"""S3 error codes meaning the same, whatever their status."""

THROTTLE_MAX_DELAY = 10.0
"""No wait for a throttled request is longer than this: a storm's end is noticed soon."""


def backoff_delay(attempt: int, base: float, retry_after: float | None = None, cap: float = MAX_DELAY) -> float:
    """Seconds to wait before retry number ``attempt + 1`` (``attempt`` counts from 0).

    ``base * 2**attempt`` with jitter (between half and all of it, so concurrent clients spread
    out), capped at ``cap`` (60 s). A server's ``Retry-After`` is honoured instead when given.
    """
    if retry_after is not None:
        return min(max(retry_after, 0.0), MAX_DELAY)
    delay = min(base * (2 ** min(attempt, 30)), cap)
    return delay * (0.5 + random.random() / 2)


class RetryBudget:
    """The retries of one request: ``max_retries`` for transient failures, and as many as fit
    in ``deadline`` seconds (counted from the first attempt) while the store throttles.

    Throttling (429, 503, ``SlowDown``) is what a store under load answers; a fixed number of
    quick retries gives up inside a storm of a few seconds, so throttled attempts are limited
    in time instead, never fewer than ``max_retries``. Backoff is exponential with jitter.
    """

    __slots__ = ("max_retries", "base", "deadline", "started", "tries", "throttles")

    def __init__(self, max_retries: int, base: float, deadline: float, started: float | None = None) -> None:
        self.max_retries = max_retries
        self.base = base
        self.deadline = deadline
        self.started = monotonic() if started is None else started
        """When the first attempt started (``time.monotonic``): the deadline counts from it."""
        self.tries = 0
        """Retries so far (both kinds)."""
        self.throttles = 0

    def next_delay(self, throttled: bool, retry_after: float | None = None) -> float | None:
        """Seconds to wait before the next attempt, or None when the budget is spent."""
        if throttled:
            delay = backoff_delay(self.throttles, self.base, retry_after, cap=THROTTLE_MAX_DELAY)
            within = monotonic() - self.started + delay <= self.deadline
            if not within and self.tries >= self.max_retries:
                return None
            self.throttles += 1
        else:
            if self.tries >= self.max_retries:
                return None
            delay = backoff_delay(self.tries, self.base, retry_after)
        self.tries += 1
        return delay


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds: either delta-seconds or an HTTP date; None when absent/bad."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max((when - datetime.now(timezone.utc)).total_seconds(), 0.0)
