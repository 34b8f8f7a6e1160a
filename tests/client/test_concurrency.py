"""The adaptive window of files in flight: cut on throttling, grown back on success, never
below 1 or above ``workers``; a quiet run never waits."""

from __future__ import annotations

import asyncio

import pytest

from rahcp_prefect.client import concurrency
from rahcp_prefect.client.concurrency import AdaptiveWindow


@pytest.mark.timeout(30)
async def test_quiet_run_keeps_every_worker_busy() -> None:
    window = AdaptiveWindow(8, lambda: 0)
    peak = [0]

    async def handle(item: int, url: str | None) -> None:
        peak[0] = max(peak[0], window.in_flight)
        await asyncio.sleep(0.01)

    gated = window.gate(handle)
    await asyncio.gather(*(gated(i, None) for i in range(64)))
    assert peak[0] == 8 and window.cuts == 0 and window.window == 8 and window.in_flight == 0


@pytest.mark.timeout(30)
async def test_throttling_cuts_the_window_and_success_grows_it_back(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(concurrency, "CUT_INTERVAL", 0.0)
    throttled = [0]
    window = AdaptiveWindow(8, lambda: throttled[0])
    peak_after_storm = [0]
    storm = [True]

    async def handle(item: int, url: str | None) -> None:
        if storm[0]:
            throttled[0] += 1
        else:
            peak_after_storm[0] = max(peak_after_storm[0], window.in_flight)
        await asyncio.sleep(0.005)

    gated = window.gate(handle)
    await asyncio.gather(*(gated(i, None) for i in range(40)))
    assert window.lowest < 2 and window.cuts >= 3
    storm[0] = False
    await asyncio.gather(*(gated(i, None) for i in range(400)))
    assert window.window == 8.0 and peak_after_storm[0] == 8  # grown back to the ceiling
    assert window.in_flight == 0


@pytest.mark.timeout(30)
async def test_a_cancelled_waiter_gives_its_place_back() -> None:
    window = AdaptiveWindow(1, lambda: 0)
    release = asyncio.Event()

    async def handle(item: int, url: str | None) -> None:
        await release.wait()

    gated = window.gate(handle)
    first = asyncio.ensure_future(gated(1, None))
    waiting = asyncio.ensure_future(gated(2, None))
    await asyncio.sleep(0.01)
    waiting.cancel()
    release.set()
    await first
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert window.in_flight == 0
    await gated(3, None)  # the window is free again
