"""A byte budget for request bodies held in memory.

A PUT carries ``Content-MD5``, which must be known before the first byte leaves, so a body up to
``dataplane.STREAM_BODY_LIMIT`` is read (and hashed) into memory in one pass and then sent from
there (larger ones are hashed from disk, then streamed: they hold no budget). The budget bounds
how many bytes all transfers of one data plane hold at once, whatever the number of workers; a
body larger than the whole budget waits until it can hold all of it alone.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

DEFAULT_BUFFER_BUDGET = 96 * 1024 * 1024
"""Bytes of request bodies held in memory at once per data plane (12 of the largest, 8 MiB)."""


class ByteBudget:
    """``async with budget.hold(n)``: wait until ``n`` bytes fit (clipped to the budget)."""

    def __init__(self, limit: int = DEFAULT_BUFFER_BUDGET) -> None:
        if limit < 1:
            raise ValueError(f"buffer budget must be >= 1 byte, got {limit}")
        self.limit = limit
        self.held = 0
        self._waiting = 0
        self._changed: asyncio.Condition | None = None
        self._notifiers: set[asyncio.Task[None]] = set()

    @property
    def _condition(self) -> asyncio.Condition:
        if self._changed is None:  # created inside the running loop, on first use
            self._changed = asyncio.Condition()
        return self._changed

    async def acquire(self, nbytes: int) -> int:
        """Take ``nbytes`` (at most the whole budget); returns what was taken, for ``release``."""
        take = max(0, min(nbytes, self.limit))
        if not self._waiting and self.held + take <= self.limit:  # fast path: no lock, no wait
            self.held += take
            return take
        self._waiting += 1
        try:
            async with self._condition:
                await self._condition.wait_for(lambda: self.held + take <= self.limit)
                self.held += take
        finally:
            self._waiting -= 1
        return take

    def release(self, taken: int) -> None:
        """Give back what ``acquire`` returned; wakes the waiters that now fit."""
        self.held -= taken
        if self._waiting:
            task = asyncio.get_running_loop().create_task(self._notify())
            self._notifiers.add(task)  # a strong reference until it ran
            task.add_done_callback(self._notifiers.discard)

    async def _notify(self) -> None:
        async with self._condition:
            self._condition.notify_all()

    @contextlib.asynccontextmanager
    async def hold(self, nbytes: int) -> AsyncIterator[None]:
        taken = await self.acquire(nbytes)
        try:
            yield
        finally:
            self.release(taken)
