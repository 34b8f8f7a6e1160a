"""Fault injection rules shared by the API plane (ASGI) and the data plane (WSGI).

A rule matches on plane, HTTP method and a regex searched in the decoded request path. A matching
request first sleeps ``delay``, then either has its connection dropped (``drop``), is answered
with ``status`` and ``{"detail": "injected fault"}``, is handled normally but has its connection
dropped instead of the answer (``drop_answer``: the server did the work, the client never hears
of it, as when a proxy or the network loses a response), or (none) is handled normally.
A rule with ``duration`` fires only during that many seconds from the first request it matches
(a storm:
``status=503, probability=0.6, count=None, duration=20``); a data-plane rule with ``code``
answers S3's XML error with that code (``SlowDown``) instead of the JSON detail.
A data-plane rule with ``damage`` forwards the request with one byte of its body flipped: a PUT's
request body (after the client computed its digest), a GET's response body.
A rule with ``hold`` keeps each request it matches waiting (before the rest of the rule) until
the test calls ``rule.release()`` (at most ``HOLD_LIMIT`` seconds, so a run always ends);
``rule.wait_held()`` returns once a request waits: the run is paused at a known point.
The injector is thread-safe: the API event loop, moto's request threads and the test thread all
touch it.
"""

from __future__ import annotations

import itertools
import random
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Literal

Plane = Literal["api", "data"]
PLANES: tuple[str, ...] = ("api", "data")
FAULT_DETAIL = "injected fault"
HOLD_LIMIT = 120.0
"""The longest a ``hold`` rule keeps a request waiting when the test never releases it."""


@dataclass(eq=False)
class FaultRule:
    """One fault rule; ``hits`` counts the requests it has affected so far."""

    plane: Plane
    method: str | None = None
    path: str = ".*"
    status: int | None = None
    delay: float = 0.0
    drop: bool = False
    damage: bool = False
    drop_answer: bool = False
    count: int | None = 1
    probability: float = 1.0
    duration: float | None = None
    code: str | None = None
    hold: bool = False
    hits: int = 0
    id: int = 0
    _regex: re.Pattern[str] = field(init=False, repr=False)
    _held: threading.Event = field(init=False, repr=False, default_factory=threading.Event)
    _released: threading.Event = field(init=False, repr=False, default_factory=threading.Event)
    _until: float = field(init=False, repr=False, default=float("inf"))

    def __post_init__(self) -> None:
        if self.plane not in PLANES:
            raise ValueError(f"plane must be one of {PLANES}, not {self.plane!r}")
        if self.status is not None and not 100 <= self.status <= 599:
            raise ValueError("status must be an HTTP status code (100-599)")
        if self.delay < 0:
            raise ValueError("delay must be >= 0")
        if self.damage and (self.plane != "data" or self.drop or self.status is not None):
            raise ValueError("damage is a data-plane fault on a forwarded body: no drop, no status")
        if self.drop_answer and (self.drop or self.status is not None):
            raise ValueError("drop_answer forwards the request: it excludes drop and status")
        if self.count is not None and self.count < 1:
            raise ValueError("count must be >= 1 or None (every matching request)")
        if not 0.0 <= self.probability <= 1.0:
            raise ValueError("probability must be within [0, 1]")
        if self.duration is not None:
            if not self.duration > 0:
                raise ValueError("duration must be > 0 seconds or None (no end)")
        if self.code is not None and (self.plane != "data" or self.status is None or not self.code.isalnum()):
            raise ValueError("code is an S3 error code (letters, digits) for a data-plane status fault")
        if self.method is not None:
            self.method = self.method.upper()
        try:
            self._regex = re.compile(self.path)
        except re.error as exc:
            raise ValueError(f"path is not a valid regex: {exc}") from None

    def wait_released(self) -> None:
        """Called by the server for a ``hold`` rule's request: wait until ``release()``."""
        self._held.set()
        self._released.wait(HOLD_LIMIT)

    def wait_held(self, timeout: float = 60.0) -> bool:
        """Whether a request is waiting on this ``hold`` rule within ``timeout`` seconds."""
        return self._held.wait(timeout)

    def release(self) -> None:
        """Let the held requests (and any later ones this rule matches) go on."""
        self._released.set()

    @property
    def exhausted(self) -> bool:
        """True once the rule has hit ``count`` requests or its ``duration`` is over."""
        return (self.count is not None and self.hits >= self.count) or time.monotonic() >= self._until

    def matches(self, plane: str, method: str, path: str) -> bool:
        """Whether the rule applies to this request (ignoring count and probability)."""
        return (
            plane == self.plane
            and (self.method is None or self.method == method.upper())
            and self._regex.search(path) is not None
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON form for the ``/_emulator/faults`` control route."""
        return {
            "id": self.id,
            "plane": self.plane,
            "method": self.method,
            "path": self.path,
            "status": self.status,
            "delay": self.delay,
            "drop": self.drop,
            "damage": self.damage,
            "drop_answer": self.drop_answer,
            "count": self.count,
            "probability": self.probability,
            "duration": self.duration,
            "code": self.code,
            "hold": self.hold,
            "hits": self.hits,
        }


class FaultInjector:
    """The set of active fault rules of one emulator."""

    def __init__(self, *, data_plane_available: bool = True) -> None:
        self._rules: list[FaultRule] = []
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._data_plane_available = data_plane_available
        self._random = random.Random()
        # Read without the lock on the hot path: a plain attribute per plane.
        self.active: dict[str, bool] = {"api": False, "data": False}

    def add(
        self,
        plane: Plane,
        *,
        method: str | None = None,
        path: str = ".*",
        status: int | None = None,
        delay: float = 0.0,
        drop: bool = False,
        damage: bool = False,
        drop_answer: bool = False,
        count: int | None = 1,
        probability: float = 1.0,
        duration: float | None = None,
        code: str | None = None,
        hold: bool = False,
    ) -> FaultRule:
        """Add a rule; see the module docstring. Returns the rule (watch ``rule.hits``)."""
        if plane == "data" and not self._data_plane_available:
            raise ValueError(
                "data-plane faults are unavailable: this emulator uses an external S3 endpoint "
                "(s3_endpoint=...), and only the built-in moto server can inject them"
            )
        rule = FaultRule(
            plane=plane,
            method=method,
            path=path,
            status=status,
            delay=delay,
            drop=drop,
            damage=damage,
            drop_answer=drop_answer,
            count=count,
            probability=probability,
            duration=duration,
            code=code,
            hold=hold,
        )
        with self._lock:
            rule.id = next(self._ids)
            self._rules.append(rule)
            self._refresh()
        return rule

    def remove(self, rule: FaultRule | int) -> bool:
        """Remove one rule (or its id); False when it was not present."""
        rule_id = rule if isinstance(rule, int) else rule.id
        with self._lock:
            before = len(self._rules)
            self._rules = [r for r in self._rules if r.id != rule_id]
            self._refresh()
            return len(self._rules) != before

    def clear(self) -> int:
        """Remove every rule; returns how many there were."""
        with self._lock:
            n = len(self._rules)
            self._rules = []
            self._refresh()
            return n

    @property
    def rules(self) -> list[FaultRule]:
        """A snapshot of the current rules (including exhausted ones)."""
        with self._lock:
            return list(self._rules)

    def match(self, plane: str, method: str, path: str) -> FaultRule | None:
        """The first live rule that fires for this request (counting the hit), else None."""
        if not self.active.get(plane):
            return None
        with self._lock:
            for rule in self._rules:
                if rule.exhausted or not rule.matches(plane, method, path):
                    continue
                if rule.duration is not None and rule._until == float("inf"):  # the window opens
                    rule._until = time.monotonic() + rule.duration
                if rule.probability < 1.0 and self._random.random() >= rule.probability:
                    continue
                rule.hits += 1
                return rule
        return None

    def _refresh(self) -> None:
        self.active = {p: any(r.plane == p for r in self._rules) for p in PLANES}
