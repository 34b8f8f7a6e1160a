"""The adaptive window grows while throughput rises with it (latency-bound), goes back when it
does not (server-bound), never passes its cap, is cut by throttling, and stays put when fixed.

The "server" here is ``asyncio.sleep`` (a round trip) behind an optional semaphore (its
capacity); each test asserts where the window went, never how long anything took.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from rahcp_prefect.bulk.pipeline import run_pipeline
from rahcp_prefect.client import concurrency
from rahcp_prefect.client.concurrency import AdaptiveWindow

ROUND_TRIP = 0.02


async def _drive(window: AdaptiveWindow, capacity: int | None, seconds: float, stop_at: float | None = None) -> int:
    """Run the pipeline under ``window`` for ``seconds`` (or until the window reaches
    ``stop_at``); returns the most requests seen in flight at once."""
    server = asyncio.Semaphore(capacity) if capacity else None
    peak = [0]
    in_flight = [0]

    async def request(item: tuple[int, int], url: str | None) -> None:
        in_flight[0] += 1
        peak[0] = max(peak[0], in_flight[0])
        try:
            if server is None:
                await asyncio.sleep(ROUND_TRIP)
            else:
                async with server:
                    await asyncio.sleep(ROUND_TRIP / 4)
        finally:
            in_flight[0] -= 1

    async def items() -> AsyncIterator[tuple[tuple[int, int], str | None]]:
        end = time.monotonic() + seconds
        n = 0
        while time.monotonic() < end and (stop_at is None or window.window < stop_at):
            n += 1
            yield [((n, 10_000), None)]

    await run_pipeline(items(), request, workers=window.start, queue_depth=4, window=window, size_at=1)
    return peak[0]


@pytest.mark.timeout(60)
async def test_a_latency_bound_run_grows_the_window_up_to_its_cap() -> None:
    window = AdaptiveWindow(4, lambda: 0, cap=32)
    peak = await _drive(window, None, seconds=20, stop_at=32)
    assert window.highest == 32 and window.probes >= 3
    assert peak > 4  # the pool followed the window: more workers than it started with
    assert window.in_flight == 0


@pytest.mark.timeout(60)
async def test_the_window_never_passes_its_cap() -> None:
    window = AdaptiveWindow(4, lambda: 0, cap=6)
    peak = await _drive(window, None, seconds=3)
    assert window.highest == 6 and peak <= 6


@pytest.mark.timeout(60)
async def test_a_server_bound_run_goes_back_to_where_it_was() -> None:
    """The server serves 4 at a time: a larger window adds nothing, so no probe is kept."""
    window = AdaptiveWindow(4, lambda: 0, cap=64)
    await _drive(window, 4, seconds=4)
    assert window.probes >= 1
    assert window.highest <= 8  # the first probe (x2) was tried and not kept
    assert window.lowest == 4


@pytest.mark.timeout(60)
async def test_a_fixed_window_never_grows() -> None:
    window = AdaptiveWindow(8, lambda: 0, cap=8)
    peak = await _drive(window, None, seconds=2)
    assert not window.adaptive and window.probes == 0
    assert window.highest == window.lowest == 8 and peak == 8


@pytest.mark.timeout(60)
async def test_throttling_cuts_a_grown_window(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(concurrency, "CUT_INTERVAL", 0.0)
    throttled = [0]
    window = AdaptiveWindow(4, lambda: throttled[0], cap=64)
    await _drive(window, None, seconds=20, stop_at=16)
    assert window.highest >= 16
    grown = window.window
    throttled[0] += 1  # the store said "slow down"
    await window.run(lambda: asyncio.sleep(0))
    assert window.window == grown / 2 and window.cuts == 1
    for _ in range(6):
        throttled[0] += 1
        await window.run(lambda: asyncio.sleep(0))
    assert window.lowest < 2 and window.window < window.start  # below the start: the store decides


@pytest.mark.timeout(60)
async def test_waiting_requests_are_let_in_as_the_window_grows() -> None:
    """The commit's way: every copy of a page waits in the window at once."""
    window = AdaptiveWindow(2, lambda: 0, cap=16)
    peak = [0]

    async def copy() -> None:
        peak[0] = max(peak[0], window.in_flight)
        await asyncio.sleep(ROUND_TRIP)

    for _ in range(40):
        await asyncio.gather(*(window.run(copy) for _ in range(100)))
        if peak[0] == 16:
            break
    assert window.highest == 16 and peak[0] == 16
    assert window.in_flight == 0
