"""Backoff arithmetic shared by the control plane and the data plane."""

from __future__ import annotations

import random
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

MAX_DELAY = 60.0
"""No single wait is longer than this, whatever the attempt or Retry-After says."""


def backoff_delay(attempt: int, base: float, retry_after: float | None = None) -> float:
    """Seconds to wait before retry number ``attempt + 1`` (``attempt`` counts from 0).

    ``base * 2**attempt`` with jitter (between half and all of it, so concurrent clients spread
    out), capped at 60 s. A server's ``Retry-After`` is honoured instead when given.
    """
    if retry_after is not None:
        return min(max(retry_after, 0.0), MAX_DELAY)
    delay = min(base * (2**attempt), MAX_DELAY)
    return delay * (0.5 + random.random() / 2)


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
