"""The adaptive window's decisions, on a simulated clock: no sleeps, no timing asserts.

A small discrete-event simulation stands in for the store: each request admitted by
``try_enter`` ends after ``round_trip`` (latency-bound), or later when more are in flight than
the store's ``capacity`` per second allows (bound elsewhere); its end calls ``leave``. A seeded
random jitter and machine stalls (every completion in a stall waits for its end, then they all
arrive at once) stand for a loaded machine. Each test asserts where the window went.
"""

from __future__ import annotations

import heapq
import random

import pytest

from rahcp_prefect.client import concurrency
from rahcp_prefect.client.concurrency import AdaptiveWindow

SMALL = 10_000
"""A 10 KB file (the window counts it as ``FILE_UNITS`` + its bytes)."""


class Store:
    """A simulated store and machine; ``now`` is the clock the window reads."""

    def __init__(
        self, round_trip: float, capacity: float | None = None, *, jitter: float = 0.0, stalls: bool = False, seed: int = 0
    ) -> None:
        self.round_trip = round_trip
        self.capacity = capacity
        self.jitter = jitter
        self.stalls = stalls
        self.random = random.Random(seed)
        self.now = 0.0
        self.done = 0
        self._ends: list[float] = []
        self._stall_at = self._next_stall(0.0)

    def _next_stall(self, after: float) -> tuple[float, float]:
        start = after + self.random.uniform(0.2, 0.6)
        return start, start + self.random.uniform(0.03, 0.12)

    def _latency(self, in_flight: int) -> float:
        latency = self.round_trip
        if self.capacity is not None:
            latency = max(latency, in_flight / self.capacity)
        return latency * (1 + self.random.uniform(-self.jitter, self.jitter))

    def _end(self, at: float) -> float:
        """When a request due ``at`` really ends: a stall holds it until the stall is over."""
        if not self.stalls:
            return at
        while at >= self._stall_at[1]:
            self._stall_at = self._next_stall(self._stall_at[1])
        start, end = self._stall_at
        return end if at >= start else at

    def run(self, window: AdaptiveWindow, seconds: float, size: int = SMALL) -> None:
        """Keep ``window`` full for ``seconds`` of simulated time."""
        stop = self.now + seconds
        while True:
            while window.try_enter():
                heapq.heappush(self._ends, self._end(self.now + self._latency(window.in_flight)))
            if self._ends[0] > stop:
                self.now = stop
                return
            self.now = heapq.heappop(self._ends)
            window.leave(size)
            self.done += 1


def _window(store: Store, start: int = 10, cap: int = 256, signals: list[int] | None = None) -> AdaptiveWindow:
    count = signals if signals is not None else [0]
    return AdaptiveWindow(start, lambda: count[0], cap=cap, clock=lambda: store.now)


def test_a_latency_bound_store_is_filled_within_a_second() -> None:
    """50 ms away, 600 requests/s at most: about 30 in flight fill it; 10 give a third of it."""
    store = Store(0.05, capacity=600)
    window = _window(store)
    store.run(window, 1.0)
    assert window.window >= 32 and window.lowest == 10
    served = store.done
    store.run(window, 4.0)
    assert store.done - served >= 0.9 * 600 * 4  # filled (its probes around the knee included)
    assert window.highest <= 128  # and not grown far past what adds throughput
    assert window.cuts == 0


@pytest.mark.parametrize("seed", range(8))
def test_noise_and_stalls_do_not_stop_the_slow_start(seed: int) -> None:
    """A loaded machine: +-40 % on every round trip and a stall of 30-120 ms every 0.2-0.6 s."""
    store = Store(0.05, capacity=600, jitter=0.4, stalls=True, seed=seed)
    window = _window(store)
    store.run(window, 2.0)
    assert window.highest >= 32, window.range_text()
    store.run(window, 6.0)
    assert window.window >= 20 and window.highest <= 160, window.range_text()


@pytest.mark.parametrize("seed", range(8))
def test_a_store_bound_elsewhere_keeps_the_window_near_its_start(seed: int) -> None:
    """200 requests/s whatever the window (a busy server or CPU, 20 ms away): 10 in flight
    already get it all, so no probe is kept for long and the window never runs away."""
    store = Store(0.02, capacity=200, jitter=0.4, stalls=True, seed=seed)
    window = _window(store)
    store.run(window, 10.0)
    assert window.probes >= 2  # it did look
    assert window.window <= 20 and window.highest <= 40, window.range_text()
    assert window.lowest == 10


@pytest.mark.parametrize("seed", range(8))
def test_the_work_before_the_first_request_is_not_taken_for_the_stores_rate(seed: int) -> None:
    """The window is made, then the first listing page and presign batch take 0.3 s before any
    request enters. Counted in the first epoch, they made its rate a fraction of the store's,
    so the first doubling (and the next) looked like a gain on a store bound at the start."""
    store = Store(0.005, capacity=800, jitter=0.2, seed=seed)  # 0 ms away: 10 in flight get it all
    window = _window(store)
    store.now += 0.3  # listing and presigning; nothing in flight
    store.run(window, 3.0)
    assert window.probes >= 1  # it did look
    assert window.highest <= 20 and window.window <= 14, window.range_text()  # no doubling kept


def test_failed_probes_in_a_row_wait_longer_each_time() -> None:
    """Bound elsewhere and without noise: each probe fails; the waits between them double."""
    store = Store(0.02, capacity=200)
    window = _window(store)
    probes_by_second = []
    for _ in range(20):
        store.run(window, 1.0)
        probes_by_second.append(window.probes)
    early, late = probes_by_second[4], probes_by_second[-1] - probes_by_second[-6]
    assert early >= 3  # slow start, then smaller steps right away
    assert late <= 2  # five seconds later: a probe every few seconds at most
    assert window.window == 10


def test_a_probe_short_of_the_bar_is_looked_at_again_before_it_is_reverted() -> None:
    """No noise, latency-bound: the doubling is kept on its first epoch; on a store bound at
    the start window, the probe runs two epochs (twice the completions) before it goes back."""
    bound = Store(0.02, capacity=500)  # 10 in flight already get all 500/s
    window = _window(bound)
    while window.probes == 0:
        bound.run(window, 0.01)
    probe_started = bound.done
    while window.window > 10:
        bound.run(window, 0.01)
    epoch = max(concurrency.EPOCH_ROUNDS * 20, concurrency.MIN_EPOCH_FILES)
    assert bound.done - probe_started >= 2 * epoch


def test_throttling_still_halves_a_grown_window_and_holds_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(concurrency, "CUT_INTERVAL", 0.0)
    signals = [0]
    store = Store(0.05, capacity=2000)
    window = _window(store, signals=signals)
    store.run(window, 2.0)
    grown = window.window
    assert grown >= 64
    signals[0] += 1  # the store said "slow down"
    store.run(window, 0.1)  # the next request to end sees it
    assert window.window == grown / 2 and window.cuts == 1
    for _ in range(8):
        signals[0] += 1
        store.run(window, 0.1)
    assert window.window < window.start and window.cuts == 9
    store.run(window, 0.5)  # additive increase back to the start, no probe while below it
    assert window.window <= window.start


def test_a_fixed_window_makes_no_decision() -> None:
    store = Store(0.05, capacity=600, jitter=0.4, stalls=True)
    window = _window(store, start=10, cap=10)
    store.run(window, 3.0)
    assert window.probes == 0 and window.highest == window.lowest == 10


def test_the_cap_is_never_passed() -> None:
    store = Store(0.05)  # latency-bound however many are in flight
    window = _window(store, cap=40)
    store.run(window, 3.0)
    assert window.highest == 40


def test_a_window_of_one_can_grow() -> None:
    store = Store(0.05, capacity=600)
    window = _window(store, start=1, cap=64)
    store.run(window, 5.0)
    assert window.highest > 4
