"""A deadline for many requests on one timer: the data plane's guard against a silent server.

aiohttp's ``sock_read`` timeout arms a timer when a request's body is written and again on each
read; for a 10 KB PUT that is two timer handles pushed into (and later swept from) the event
loop's heap, about 5 us of client CPU per request (a small GET arms it on each of its reads
too). A request whose body goes out in one write and whose answer is a few headers, or a GET
whose answer is expected within one chunk, needs no more than a deadline from its start, so
such requests are watched here instead (``with watch.watching():``): each costs a clock read,
two dict operations and a small object, and one timer looks over all of them every quarter of
the timeout while any is in flight. A request still unanswered at its deadline is cancelled
and, in ``StallWatch.finish``, turned into a ``TimeoutError`` that the data plane retries like
any other transport error (aiohttp closes a connection whose request was cancelled: it is never
reused). Requests that stream (large bodies, large downloads) keep ``sock_read``, which follows
their progress.
"""

from __future__ import annotations

import asyncio
from contextlib import AbstractContextManager, nullcontext
from time import monotonic


class StallWatch:
    """Deadlines of the requests in flight, ``seconds`` after each one started; looked over
    every ``seconds / 4``, so a silent request fails between ``seconds`` and 1.25 times that.

    One request per task at a time (a task awaits its request), so the task is the key.
    """

    def __init__(self, seconds: float) -> None:
        if not seconds > 0:
            raise ValueError(f"the timeout must be > 0 seconds, got {seconds!r}")
        self.seconds = seconds
        self._due: dict[asyncio.Task[object], tuple[float, int]] = {}
        self._expired: dict[asyncio.Task[object], int] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.stalls = 0
        """Requests cancelled for silence, over this watch's life."""

    def start(self) -> asyncio.Task[object]:
        """Watch the calling task's request from now; returns the task (for ``finish``)."""
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("StallWatch.start() must be called from a task")
        loop = task.get_loop()
        if loop is not self._loop:  # a new event loop: what an earlier one left is gone
            self.close()
            self._due.clear()
            self._expired.clear()
            self._loop = loop
        self._due[task] = (monotonic() + self.seconds, task.cancelling())
        if self._timer is None:
            self._timer = loop.call_later(self.seconds / 4, self._look)
        return task

    def watching(self) -> Watched:
        """``with watch.watching():`` the request inside is watched from here (``start``, then
        ``finish`` with what ended it, so a stall leaves the block as ``TimeoutError``)."""
        return Watched(self)

    def finish(self, task: asyncio.Task[object], error: BaseException | None = None) -> None:
        """The request of ``task`` ended, with ``error`` if it failed. If the watch cancelled
        it, that cancellation is taken back and, when it is what ended the request, raised as
        ``TimeoutError``; a cancellation from elsewhere goes on as it was."""
        if self._due.pop(task, None) is not None:
            return
        base = self._expired.pop(task, None)
        if base is None:
            return
        if task.uncancel() <= base and isinstance(error, asyncio.CancelledError):
            raise TimeoutError(f"no answer within {self.seconds:g} s") from None

    def _look(self) -> None:
        """The timer: cancel each request past its deadline; look again while any is left."""
        self._timer = None
        now = monotonic()
        late = [task for task, (due, _) in self._due.items() if due <= now]
        for task in late:
            _, base = self._due.pop(task)
            self._expired[task] = base
            self.stalls += 1
            task.cancel()
        if self._due and self._loop is not None:
            self._timer = self._loop.call_later(self.seconds / 4, self._look)

    def close(self) -> None:
        """Stop the timer (the data plane is closing)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class Watched:
    """One request under a ``StallWatch`` (``StallWatch.watching``), as a context manager."""

    __slots__ = ("_watch", "_task")

    def __init__(self, watch: StallWatch) -> None:
        self._watch = watch

    def __enter__(self) -> Watched:
        self._task = self._watch.start()
        return self

    def __exit__(self, kind: object, error: BaseException | None, trace: object) -> None:
        self._watch.finish(self._task, error)  # raises TimeoutError if the watch cancelled it


UNWATCHED: AbstractContextManager[None] = nullcontext()
"""For a request that keeps aiohttp's per-read timeout instead (``with ... if ... else UNWATCHED``)."""
