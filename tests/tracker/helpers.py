"""Helpers shared by the tracker tests."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any


def race(trackers: list[Any], take: Callable[[Any, str], bool]) -> list[str]:
    """Let every tracker ``take(tracker, "run-<i>")`` at the same instant; the owners that won."""
    barrier = threading.Barrier(len(trackers))
    wins: list[str] = []

    def contend(index: int) -> None:
        barrier.wait()
        if take(trackers[index], f"run-{index}"):
            wins.append(f"run-{index}")

    threads = [threading.Thread(target=contend, args=(i,)) for i in range(len(trackers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return wins
