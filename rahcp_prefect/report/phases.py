"""A tiny phase timer: how long each phase of a run took and how much it handled.

The summary shows every phase (scan, transfer, verify, commit) apart, with its own rate, so a
slow commit never hides inside the transfer's throughput.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from time import monotonic
from typing import Any

PHASES = ("scan", "transfer", "verify", "commit")
"""The phases of a bulk run, in the order they happen (downloads commit by moving files)."""


@dataclass
class Phase:
    """One phase: seconds spent (summed over repeats) and what it handled."""

    name: str
    seconds: float = 0.0
    files: int = 0
    bytes: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"seconds": round(self.seconds, 3), "files": self.files, "bytes": self.bytes}


class PhaseTimer:
    """Times named phases: ``with timer.phase("scan") as scan: scan.files = n``."""

    def __init__(self, clock: Callable[[], float] = monotonic) -> None:
        self._clock = clock
        self.started = clock()
        self.phases: dict[str, Phase] = {}
        self.current: str | None = None
        self.last: str | None = None
        """The phase entered last (where a failed run stopped)."""

    @contextmanager
    def phase(self, name: str) -> Iterator[Phase]:
        """Time the block as phase ``name`` (a repeated phase adds up)."""
        entry = self.phases.setdefault(name, Phase(name))
        begun, outer = self._clock(), self.current
        self.current = self.last = name
        try:
            yield entry
        finally:
            entry.seconds += self._clock() - begun
            self.current = outer

    @property
    def elapsed(self) -> float:
        """Seconds since the timer was made (the whole run)."""
        return self._clock() - self.started

    def as_dict(self) -> dict[str, dict[str, Any]]:
        """``{phase: {"seconds", "files", "bytes"}}`` in run order, JSON-friendly (run results)."""
        ordered = sorted(self.phases, key=lambda n: PHASES.index(n) if n in PHASES else len(PHASES))
        return {name: self.phases[name].as_dict() for name in ordered}
