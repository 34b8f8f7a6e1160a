"""A cap on the bytes per second all transfers of one data plane move, in both directions.

A token bucket shared by every worker: each transfer takes its bytes before it sends them
(uploads) or after it received them (downloads); the bucket may go into debt, and whoever
takes next waits until the debt is paid at ``rate``. Over any stretch longer than a few
transfers the rate holds, whatever the number of workers or the sizes.
"""

from __future__ import annotations

import asyncio
from time import monotonic

BURST_SECONDS = 0.25
"""Unused allowance kept for at most this long: an idle link does not earn a burst later."""


class Bandwidth:
    """``rate`` bytes per second for every caller together."""

    __slots__ = ("rate", "_burst", "_tokens", "_last")

    def __init__(self, rate: int) -> None:
        if rate <= 0:
            raise ValueError(f"max_bandwidth must be > 0 bytes/s, got {rate}")
        self.rate = float(rate)
        self._burst = self.rate * BURST_SECONDS
        self._tokens = 0.0
        self._last = monotonic()

    async def take(self, size: int) -> None:
        """Account ``size`` bytes; wait as long as the run is ahead of ``rate``."""
        now = monotonic()
        tokens = min(self._burst, self._tokens + (now - self._last) * self.rate) - size
        self._tokens, self._last = tokens, now
        if tokens < 0:
            await asyncio.sleep(-tokens / self.rate)
