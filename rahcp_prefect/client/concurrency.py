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
  worth of completions (two in slow start, three after) and at least ``MIN_EPOCH_SECONDS`` (a
  clock read per epoch, never one per request). A probe multiplies the window by ``growth`` (2,
  then smaller once a probe failed); when throughput rose by at least ``GAIN`` of what the
  larger window would give a latency-bound run, the probe is kept and the next one follows at
  once. A probe that falls short is looked at once more, over twice as many completions (one
  noisy epoch on a busy machine does not decide); when it still falls short (the server, the CPU
  or the link is the limit), the window goes back to where it was, measures again there for one
  epoch and tries a smaller step; each further failure in a row doubles the epochs it waits (up
  to ``MAX_HOLD_EPOCHS``), so a run bound elsewhere rarely pays for a probe. Once the steps are
  at their smallest, a failed step up is followed by one down (never below ``start``), judged by
  the same rule: kept when the smaller window lost less than ``GAIN`` of its shrinking, so a
  step that noise let through is undone and the window settles near the knee. An epoch in which
  the source could not keep the window full says nothing and is not used. The first epoch
  starts when the first request enters, not when the window is made: the listing or presigning
  before it is not the store's rate, and counted in it, it made the first doubling look like a
  gain on a store that had none to give.

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
GAIN = 0.3
"""A probe is kept when throughput rose by at least this share of the window's growth (+30 %
for a doubling): a latency-bound run gains about all of it, a run bound elsewhere none."""
FIRST_GROWTH = 2.0
"""The first probes double the window (slow start)."""
LEAST_GROWTH = 1.25
"""After each failed probe the growth shrinks (square root) down to this; from here on the
probes alternate up and down after each failure."""
HOLD_EPOCHS = 4
"""Epochs spent at a window after a cut before probing again."""
MAX_HOLD_EPOCHS = 16
"""The most epochs waited after failed probes in a row (1, 2, 4, ... epochs)."""
EPOCH_ROUNDS = 3
"""An epoch lasts at least this many windows' worth of completions..."""
MIN_EPOCH_SECONDS = 0.1
"""...and at least this long (a burst of completions after a stall is not a rate)..."""
EPOCH_SECONDS = 0.25
"""...and, once a probe failed (smaller steps, smaller gains to see), about this long at the
rate of the previous epoch, so a fast run is not judged on a few milliseconds."""
MIN_EPOCH_FILES = 32
"""...and never fewer completions than this."""
SLOW_START_ROUNDS = 2
SLOW_START_MIN_FILES = 16
"""In slow start (doublings, none failed yet) an epoch lasts two windows' worth of completions
and at least this many: a doubling of a latency-bound run shows from the second round trip
after it, so the window reaches what the link allows within a few round trips (TCP's slow
start doubles every one). Three windows' worth and a warm-up epoch cost a 3 s run at 50 ms
a tenth of its throughput."""
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
    ``clock`` (seconds) times the epochs and the cuts.
    """

    def __init__(
        self, start: int, signals: Callable[[], int], cap: int | None = None, clock: Callable[[], float] = monotonic
    ) -> None:
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
        self._clock = clock
        self._seen = signals()
        self._last_cut = -CUT_INTERVAL
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._calls: Callable[[Callable[[], Awaitable[Any]], str | None], Awaitable[Any]] = self.gate(_call)
        self._growth = FIRST_GROWTH  # set before the first epoch is sized
        self._hold = 0  # the first epoch is the baseline of the first doubling
        self._failed = 0  # probes that failed in a row
        self._down = False  # the next probe steps down (past slow start, turns after a failure)
        self._base: tuple[float, float] | None = None  # (window, rate) a probe started from
        self._reset_epoch(clock(), rate=0.0)
        self._idle = True
        """No request has entered yet: the first epoch starts with the first one, not when the
        window was made (a listing or presign before it is not the store's rate)."""

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

    def _signalled(self, count: int) -> None:
        """The client's count of signals moved to ``count``: cut the window (once per
        ``CUT_INTERVAL``)."""
        self._seen = count
        now = self._clock()
        if now - self._last_cut >= CUT_INTERVAL:
            self._last_cut = now
            self.cuts += 1
            self._base = None
            self._hold = HOLD_EPOCHS
            self._growth = LEAST_GROWTH
            self._set(max(1.0, self.window / 2))
            self._reset_epoch(now, self._rate)

    def _recover(self) -> None:
        """A request ended below ``start`` without a new signal: additive increase back to it."""
        window = self.window
        self._set(min(float(self.start), window + 1.0 / window))

    # -- probing ---------------------------------------------------------------------------

    def _reset_epoch(self, now: float, rate: float) -> None:
        self._since = now
        self._rate = rate
        self._files = 0
        self._units = 0
        self._occupied = 0
        self._looked_again = False
        if self._growth < FIRST_GROWTH:  # past slow start: epochs long enough to see small gains
            least = max(EPOCH_ROUNDS * self.limit, MIN_EPOCH_FILES)
            if rate:
                least = max(least, int(rate / FILE_UNITS * EPOCH_SECONDS))
        else:
            least = max(SLOW_START_ROUNDS * self.limit, SLOW_START_MIN_FILES)
        self._epoch_files = least

    def _judge(self) -> None:
        """End of an epoch: keep, look again at or revert a probe, or start one."""
        now = self._clock()
        elapsed = now - self._since
        if elapsed < MIN_EPOCH_SECONDS:  # a burst, not a rate: the epoch goes on
            self._epoch_files += self._files
            return
        rate = self._units / elapsed
        starved = self._occupied < STARVED * self.window * self._files
        base = self._base
        if base is not None and not starved:  # this epoch ran a probe
            window0, rate0 = base
            if rate >= rate0 * (1 + GAIN * (self.window / window0 - 1)):
                self._failed = 0
                self._reset_epoch(now, rate)
                self._probe(rate)
            elif not self._looked_again:  # short of the bar: judge it over twice the completions
                self._looked_again = True
                self._epoch_files += self._files
            else:  # the step did not pay (more added nothing, or fewer lost too much): undo it
                self._failed += 1
                self._down = self._growth == LEAST_GROWTH and not self._down  # the other way next
                self._growth = max(LEAST_GROWTH, math.sqrt(self._growth))
                self._hold = min(MAX_HOLD_EPOCHS, 2 ** (self._failed - 1))
                self._base = None
                self._set(window0)
                self._reset_epoch(now, rate0)
            return
        self._reset_epoch(now, rate)
        if starved:  # the source, not the window, set the pace: nothing to learn (a probe is
            return  # judged on a later epoch that kept its window full)
        if self._hold:
            self._hold -= 1
            return
        self._probe(rate)

    def _probe(self, rate: float) -> None:
        """Step the window up (or down, see ``_down``) and judge the step on the next epoch."""
        window = self.window
        if self._down:
            target = max(float(self.start), math.ceil(window / self._growth))
        else:
            target = min(float(self.cap), max(window + 1, math.floor(window * self._growth)))
        if target == window:  # at the cap (or the start, going down): turn round later
            self._down = not self._down
            self._hold = HOLD_EPOCHS
            return
        self.probes += 1
        self._base = (window, rate)
        self._set(target)
        self._reset_epoch(self._since, rate)

    # -- admission -------------------------------------------------------------------------

    async def wait_for_place(self) -> None:
        """Wait until the window lets this request in (after ``try_enter`` found no room)."""
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

    def try_enter(self) -> bool:
        """Take a place in the window if one is free and nobody waits for it (no future made)."""
        if self.in_flight < self.window and not self._waiters:
            if self._idle:
                self._idle = False
                self._since = self._clock()
            self.in_flight += 1
            return True
        return False

    def leave(self, size: int = 0) -> None:
        """A request that entered ended, having moved ``size`` bytes (it counts ``FILE_UNITS +
        size`` in the throughput); a new signal cuts the window before anyone else is let in.
        A settled window pays a look at the signals and a few comparisons here."""
        occupied = self.in_flight
        self.in_flight = occupied - 1
        count = self._signals()
        if count != self._seen:
            self._signalled(count)
        elif self.window < self.start:
            self._recover()
        elif self.adaptive:  # counted towards the epoch's throughput
            self._files += 1
            self._units += FILE_UNITS + size
            self._occupied += occupied
            if self._files >= self._epoch_files:
                self._judge()
        if self._waiters:
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
            if not self.try_enter():
                await self.wait_for_place()
            try:
                return await handle(item, url)
            finally:
                self.leave(item[size_at] if size_at is not None else 0)  # type: ignore[index]

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
