"""How many transfers (or copies) are in flight: an adaptive window, as TCP keeps one.

The window starts at ``start`` (the ``workers`` or ``commit_concurrency`` setting) and moves
between 1 and ``cap`` (``max_workers``; ``cap == start`` keeps it fixed):

- **Throttling or errors cut it** (multiplicative decrease). Every 429/503/``SlowDown`` and every
  retried failure the client counts (either plane) halves the window, at most once per
  ``CUT_INTERVAL`` (the answers of one burst are one signal). Below ``start`` each request that
  ends without a new signal grows it by ``1 / window`` (one per window's worth), back to
  ``start``. A request waiting for room holds no connection and sends nothing, so a storm is
  met by fewer requests rather than by every worker's retries.
- **Latency makes it grow** (probing). Throughput is measured over epochs of a few windows'
  worth of completions (never a clock read per request). A probe multiplies the window by
  ``growth`` (2, then smaller once a probe failed); when throughput rose by at least ``GAIN``
  of what the larger window would give a latency-bound run, the probe is kept and the next one
  follows; when it did not (the server, the CPU or the link is the limit), the window goes back
  to where it was and waits ``HOLD_EPOCHS`` epochs before it tries again. An epoch in which the
  source could not keep the window full says nothing and is not used.

A quiet run whose window has settled pays a look at the client's counters, two integer updates
and three additions per request.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import Awaitable, Callable
from time import monotonic
from typing import Any, TypeVar

W = TypeVar("W")

CUT_INTERVAL = 0.25
"""Seconds after a cut during which more signals do not cut again."""
GAIN = 0.5
"""A probe is kept when throughput rose by at least this share of the window's growth."""
FIRST_GROWTH = 2.0
"""The first probes double the window (slow start)."""
LEAST_GROWTH = 1.25
"""After each failed probe the growth shrinks (square root) down to this."""
HOLD_EPOCHS = 4
"""Epochs spent at a window after a failed probe or a cut before probing again."""
EPOCH_ROUNDS = 2
"""An epoch lasts at least this many windows' worth of completions..."""
EPOCH_SECONDS = 0.25
"""...and, once a probe failed (smaller steps, smaller gains to see), about this long at the
rate of the previous epoch, so a fast run is not judged on a few milliseconds."""
MIN_EPOCH_FILES = 16
"""...and never fewer completions than this."""
STARVED = 0.75
"""An epoch whose mean in-flight count was below this share of the window is not judged."""
FILE_UNITS = 256 * 1024
"""What one request is worth in bytes when throughput is measured (``size + FILE_UNITS`` per
request): small files count by number, large ones by bytes."""


class AdaptiveWindow:
    """Requests allowed in flight, between 1 and ``cap``; ``signals()`` is the client's running
    count of throttled answers and retried failures (its increase cuts the window).

    ``on_resize(limit)`` (optional) is told the window's new whole size whenever it changes, so a
    pool of workers can follow it. ``lowest``/``highest`` are the window's range so far.
    """

    def __init__(self, start: int, signals: Callable[[], int], cap: int | None = None) -> None:
        if start < 1:
            raise ValueError(f"the starting window must be at least 1, got {start}")
        self.start = start
        self.cap = max(start, cap or start)
        self.adaptive = self.cap > start
        """False: a fixed window (``cap == start``), cut while the store throttles only."""
        self.window = float(start)
        self.limit = start
        """``ceil(window)``: the most requests that may be in flight now."""
        self.in_flight = 0
        self.cuts = 0
        """Times the window was cut."""
        self.probes = 0
        """Probes made (kept or not)."""
        self.lowest = float(start)
        self.highest = float(start)
        self.on_resize: Callable[[int], Any] | None = None
        self._signals = signals
        self._seen = signals()
        self._last_cut = -CUT_INTERVAL
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._calls: Callable[[Callable[[], Awaitable[Any]], str | None], Awaitable[Any]] = self.gate(_call)
        self._growth = FIRST_GROWTH  # set before the first epoch is sized
        self._hold = 1  # the first epoch warms up (connections, the first presigned batch)
        self._base: tuple[float, float] | None = None  # (window, rate) a probe started from
        self._reset_epoch(monotonic(), rate=0.0)

    # -- the window ------------------------------------------------------------------------

    def _set(self, window: float) -> None:
        self.window = window
        self.lowest = min(self.lowest, window)
        self.highest = max(self.highest, window)
        limit = math.ceil(window)
        if limit != self.limit:
            grew = limit > self.limit
            self.limit = limit
            if self.on_resize is not None:
                self.on_resize(limit)
            if grew:
                self._wake()

    def _signalled(self) -> bool:
        """Whether a new signal was counted since the last look (cutting the window if so)."""
        count = self._signals()
        if count == self._seen:
            return False
        self._seen = count
        now = monotonic()
        if now - self._last_cut >= CUT_INTERVAL:
            self._last_cut = now
            self.cuts += 1
            self._base = None
            self._hold = HOLD_EPOCHS
            self._growth = LEAST_GROWTH
            self._set(max(1.0, self.window / 2))
            self._reset_epoch(now, self._rate)
        return True

    def _done(self, units: int, occupied: int) -> None:
        """One request ended (``units`` of work, ``occupied`` in flight with it)."""
        if self._signalled():
            return
        window = self.window
        if window < self.start:  # recovering from a cut: additive increase back to start
            self._set(min(float(self.start), window + 1.0 / window))
            return
        if not self.adaptive:
            return
        self._files += 1
        self._units += units
        self._occupied += occupied
        if self._files >= self._epoch_files:
            self._judge()

    # -- probing ---------------------------------------------------------------------------

    def _reset_epoch(self, now: float, rate: float) -> None:
        self._since = now
        self._rate = rate
        self._files = 0
        self._units = 0
        self._occupied = 0
        least = max(EPOCH_ROUNDS * self.limit, MIN_EPOCH_FILES)
        if rate and self._growth < FIRST_GROWTH:  # past slow start: epochs long enough to see small gains
            least = max(least, int(rate / FILE_UNITS * EPOCH_SECONDS))
        self._epoch_files = least

    def _judge(self) -> None:
        """End of an epoch: keep, revert or start a probe."""
        now = monotonic()
        elapsed = max(now - self._since, 1e-6)
        rate = self._units / elapsed
        starved = self._occupied < STARVED * self.window * self._files
        self._reset_epoch(now, rate)
        if starved:  # the source, not the window, set the pace: nothing to learn
            return
        base = self._base
        self._base = None
        if base is not None:  # this epoch ran a probe
            window0, rate0 = base
            if rate >= rate0 * (1 + GAIN * (self.window / window0 - 1)):
                self._probe(rate)
            else:  # more in flight stopped adding throughput: back to where it was
                self._growth = max(LEAST_GROWTH, math.sqrt(self._growth))
                self._hold = HOLD_EPOCHS
                self._set(window0)
                self._reset_epoch(now, rate0)
            return
        if self._hold:
            self._hold -= 1
            return
        self._probe(rate)

    def _probe(self, rate: float) -> None:
        if self.window >= self.cap:
            self._hold = HOLD_EPOCHS
            return
        self.probes += 1
        self._base = (self.window, rate)
        self._set(min(float(self.cap), math.floor(self.window * self._growth)))
        self._reset_epoch(self._since, rate)

    # -- admission -------------------------------------------------------------------------

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

    def _exit(self, units: int) -> None:
        """A request ended: a new signal cuts the window before anyone else is let in."""
        occupied = self.in_flight
        self.in_flight -= 1
        self._done(units, occupied)
        self._wake()

    def _wake(self) -> None:
        waiters = self._waiters
        while waiters and self.in_flight < self.window:
            waiter = waiters.popleft()
            if not waiter.done():
                self.in_flight += 1
                waiter.set_result(None)

    def gate(
        self, handle: Callable[[W, str | None], Awaitable[Any]], size_at: int | None = None
    ) -> Callable[[W, str | None], Awaitable[Any]]:
        """``handle(item, url)`` run only when the window has room for one more; ``item[size_at]``
        (when given) is the bytes it moves, for the throughput the window is judged on."""

        async def gated(item: W, url: str | None) -> Any:
            if self.in_flight < self.window and not self._waiters:  # room: no wait, no future
                self.in_flight += 1
            else:
                await self._wait()
            try:
                return await handle(item, url)
            finally:
                self._exit(FILE_UNITS + (item[size_at] if size_at is not None else 0))  # type: ignore[index]

        return gated

    async def run(self, call: Callable[[], Awaitable[Any]]) -> Any:
        """``await call()`` inside the window (one request, counted by number)."""
        return await self._calls(call, None)

    def range_text(self) -> str:
        """The window's range so far, e.g. ``10 to 64`` (or ``10`` when it never moved)."""
        low, high = math.floor(self.lowest), math.ceil(self.highest)
        return str(low) if low == high else f"{low} to {high}"


async def _call(call: Callable[[], Awaitable[Any]], _: str | None) -> Any:
    return await call()


def client_signals(client: object, data_plane: bool = True) -> Callable[[], int]:
    """The running count of ``client``'s throttled answers and retried failures (what cuts a
    window): the API's, and the data plane's with ``data_plane``; 0 for what it does not count."""
    data = getattr(client, "data", None) if data_plane else None
    if data_plane and not all(hasattr(data, name) for name in ("throttled", "retries")):
        data = None
    if not all(hasattr(client, name) for name in ("api_throttled", "api_retries")):
        return (lambda: data.throttled + data.retries) if data is not None else (lambda: 0)
    if data is None:
        return lambda: client.api_throttled + client.api_retries  # type: ignore[attr-defined]
    return lambda: data.throttled + data.retries + client.api_throttled + client.api_retries  # type: ignore[attr-defined]
