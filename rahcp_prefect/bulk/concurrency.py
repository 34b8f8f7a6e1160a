"""How many files are in flight: as many as ``workers`` while the store keeps up, fewer while it
throttles (AIMD, as TCP does with its window).

Every 429/503/``SlowDown`` the client counts (either plane) halves the window (at most once per
``CUT_INTERVAL``: the answers of one burst are one signal); each file that ends without new
throttling grows it by ``1 / window``, i.e. by one file per window's worth of files, back up to
``workers``. A file waiting for room holds no connection and sends no request, so a storm is
met by fewer requests rather than by every worker's retries. A quiet run never waits here:
the window stays at ``workers`` (the pipeline's own limit) and a slot costs two integer updates.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from time import monotonic
from typing import Any, TypeVar

W = TypeVar("W")

CUT_INTERVAL = 0.25
"""Seconds after a cut during which more throttled answers do not cut again."""


class AdaptiveWindow:
    """The files allowed in flight, between 1 and ``ceiling``; ``throttled()`` is the client's
    running count of throttled answers."""

    def __init__(self, ceiling: int, throttled: Callable[[], int]) -> None:
        self.ceiling = ceiling
        self.window = float(ceiling)
        self.in_flight = 0
        self.cuts = 0
        """Times the window was cut (for tests and the benchmark)."""
        self.lowest = float(ceiling)
        """The smallest window of the run."""
        self._throttled = throttled
        self._seen = throttled()
        self._last_cut = -CUT_INTERVAL
        self._waiters: deque[asyncio.Future[None]] = deque()

    def _throttled_since(self) -> bool:
        """Whether new throttling was counted since the last look (cutting the window if so)."""
        count = self._throttled()
        if count == self._seen:
            return False
        self._seen = count
        now = monotonic()
        if now - self._last_cut >= CUT_INTERVAL:
            self._last_cut = now
            self.window = max(1.0, self.window / 2)
            self.lowest = min(self.lowest, self.window)
            self.cuts += 1
        return True

    async def _wait(self) -> None:
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():  # granted as it was cancelled
                self._leave()
            elif waiter in self._waiters:  # not yet skipped by _wake
                self._waiters.remove(waiter)
            raise

    def _leave(self) -> None:
        self.in_flight -= 1
        self._wake()

    def _wake(self) -> None:
        waiters = self._waiters
        while waiters and self.in_flight < self.window:
            waiter = waiters.popleft()
            if not waiter.done():
                self.in_flight += 1
                waiter.set_result(None)

    def gate(self, handle: Callable[[W, str | None], Awaitable[Any]]) -> Callable[[W, str | None], Awaitable[Any]]:
        """``handle`` run only when the window has room for one more file."""

        async def gated(item: W, url: str | None) -> Any:
            self._throttled_since()
            if self.in_flight < self.window and not self._waiters:
                self.in_flight += 1
            else:
                await self._wait()
            try:
                return await handle(item, url)
            finally:
                if not self._throttled_since() and self.window < self.ceiling:
                    self.window = min(float(self.ceiling), self.window + 1.0 / self.window)
                self._leave()

        return gated
