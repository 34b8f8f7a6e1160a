"""The consumer half of the engine: a bounded queue drained by a pool of workers.

One coroutine per worker, not one task per file: per-file cost stays at a queue get and a call.
With an adaptive window the pool follows it (a worker is added as it grows, one retires after
its file as it shrinks), so a worker never waits for room in the window on a quiet run.
The queue holds ``workers x queue_depth`` items (the window's size x ``queue_depth`` with a
window), so the scanner and the presigner never run more than that far ahead of the transfers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

from rahcp_prefect.client.concurrency import AdaptiveWindow

from .errors import RUN_STOPPING_ERRORS

logger = logging.getLogger(__name__)

W = TypeVar("W")

_STOP: Any = object()
_EMPTY: Any = object()

Handler = Callable[[W, "str | None"], Awaitable[object]]
"""``handle(item, url)``: transfers one item; whatever it returns is ignored here."""


class _Queue:
    """A FIFO whose bound follows the pool (``workers x queue_depth``): ``put_all`` waits while
    it holds ``maxsize`` items or more, until the workers have taken it down to half (a
    producer woken for every item taken would cost a task switch per file). A worker takes an
    item without a coroutine of its own while there is one (``get_nowait``) and waits only
    when the queue is empty (``get``), woken one per item put."""

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._items: deque[Any] = deque()
        self._getters: deque[asyncio.Future[None]] = deque()
        self._room = asyncio.Event()
        self._full = False  # the producer waits (or is about to) for room

    async def put_all(self, items: list[Any]) -> None:
        """Append ``items`` in order, as room allows."""
        queue = self._items
        start, count = 0, len(items)
        while start < count:
            while len(queue) >= self.maxsize:
                self._full = True
                self._room.clear()
                await self._room.wait()
            end = start + self.maxsize - len(queue)
            queue.extend(items[start:end])
            start = end
            for _ in range(min(len(self._getters), len(queue))):  # one waiting worker per item
                self._wake_one()

    def get_nowait(self) -> Any:
        """The next item, or ``_EMPTY``."""
        queue = self._items
        if not queue:
            return _EMPTY
        item = queue.popleft()
        if self._full and len(queue) <= self.maxsize // 2:
            self._full = False
            self._room.set()
        return item

    async def get(self) -> Any:
        """The next item, waiting for one."""
        item = self.get_nowait()
        while item is _EMPTY:
            getter = asyncio.get_running_loop().create_future()
            self._getters.append(getter)
            try:
                await getter
            except asyncio.CancelledError:
                with contextlib.suppress(ValueError):
                    self._getters.remove(getter)
                if getter.done() and not getter.cancelled() and self._items:  # woken as it was cancelled:
                    self._wake_one()  # pass the wake on
                raise
            item = self.get_nowait()
        return item

    def _wake_one(self) -> None:
        while self._getters:
            getter = self._getters.popleft()
            if not getter.done():
                getter.set_result(None)
                return

    def resize(self, maxsize: int) -> None:
        self.maxsize = maxsize
        if self._full and len(self._items) < maxsize:  # a producer waiting for room that is there now
            self._full = False
            self._room.set()


class _Pool:
    """The worker coroutines; with a window, as many as it allows (spawned as it grows, each
    retiring after its file while there are more than it allows)."""

    def __init__(
        self, queue: _Queue, handle: Handler[Any], crash: _Crash, queue_depth: int,
        window: AdaptiveWindow | None, size_at: int | None,
    ) -> None:
        self.queue = queue
        self.window = window
        self.size_at = size_at
        self.queue_depth = queue_depth
        self.handle = handle
        self.crash = crash
        self.tasks: set[asyncio.Task[None]] = set()
        self.wanted = 0
        self.live = 0
        """Workers that have not returned (a returned one may still be in ``tasks`` a moment)."""
        self.closed = False
        """Set once the source is drained: no worker is added after the stops are counted."""

    def resize(self, wanted: int) -> None:
        self.wanted = wanted
        self.queue.resize(wanted * self.queue_depth)
        while self.live < wanted and not self.closed:
            self.live += 1
            task = asyncio.ensure_future(self._work())
            self.tasks.add(task)
            task.add_done_callback(self._ended)

    def _ended(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        self.crash.seen(task)

    async def _work(self) -> None:
        try:
            get_nowait, get, handle = self.queue.get_nowait, self.queue.get, self.handle
            window, size_at = self.window, self.size_at
            while True:
                pair = get_nowait()
                if pair is _EMPTY:
                    pair = await get()
                if pair is _STOP:
                    return
                if window is None:
                    await handle(pair[0], pair[1])
                    continue
                if not window.try_enter():  # the window is smaller than the pool for a moment
                    await window.wait_for_place()
                try:
                    await handle(pair[0], pair[1])
                finally:
                    window.leave(pair[0][size_at] if size_at is not None else 0)
                if self.live > self.wanted:  # the window shrank: one worker fewer
                    return
        finally:
            self.live -= 1


async def run_pipeline(
    batches: AsyncIterator[list[tuple[W, str | None]]],
    handle: Handler[W],
    *,
    workers: int,
    queue_depth: int,
    window: AdaptiveWindow | None = None,
    size_at: int | None = None,
) -> None:
    """Feed the pairs of ``batches`` (lists, as the presigner signs them) through a queue to
    ``workers`` coroutines running ``handle(item, url)``; with a ``window``, as many coroutines
    as it allows (``handle`` is then gated by it).

    ``handle`` deals with its own file's failure. If the source itself fails (a listing error),
    the items already queued are still finished before the error is raised; on cancellation
    the workers are cancelled at once. An exception escaping ``handle`` (a defect: nothing is
    left to record it; or an error no other item can get past, such as an untrusted TLS
    certificate, see ``errors.RUN_STOPPING_ERRORS``) fails the run at once with that error: the
    other workers are cancelled and the producer, which may be waiting on a full queue nobody
    drains any more, is woken.
    """
    queue = _Queue(maxsize=workers * queue_depth)
    crash = _Crash(asyncio.current_task())
    pool = _Pool(queue, handle, crash, queue_depth, window, size_at)
    if window is not None:
        window.on_resize = pool.resize
        workers = window.limit
    pool.resize(workers)
    put_all = queue.put_all
    failure: Exception | None = None
    try:
        try:
            async for batch in batches:
                await put_all(batch)
        except Exception as exc:  # the source failed: finish what is queued, then raise
            failure = exc
        pool.closed = True
        await put_all([_STOP] * pool.live)  # one more than needed if a worker retires meanwhile
        await asyncio.gather(*pool.tasks)
    except BaseException:
        pool.closed = True
        running = list(pool.tasks)
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
        aclose = getattr(batches, "aclose", None)
        if aclose is not None:  # stop its read-ahead now, not when it is garbage collected
            with contextlib.suppress(Exception):  # the error being raised wins
                await aclose()
        crash.reraise()
        raise
    finally:
        if window is not None:
            window.on_resize = None
    if failure is not None:
        raise failure


class _Crash:
    """The first exception that ended a worker; the run's task is cancelled to surface it."""

    def __init__(self, runner: asyncio.Task[Any] | None) -> None:
        self._runner = runner
        self.error: BaseException | None = None

    def seen(self, task: asyncio.Task[Any]) -> None:
        """Done callback of each worker: a worker that raised wakes the run's task."""
        if task.cancelled() or self.error is not None:
            return
        error = task.exception()
        if error is None:
            return
        self.error = error
        if isinstance(error, RUN_STOPPING_ERRORS):  # said in full by the error the run raises
            logger.error("stopping the run: %s", error)
        else:
            logger.error("a transfer worker failed outside its file's handling; failing the run", exc_info=error)
        if self._runner is not None:
            self._runner.cancel()

    def reraise(self) -> None:
        """Raise the worker's error instead of the cancellation used to deliver it."""
        if self.error is None:
            return
        if self._runner is not None:
            self._runner.uncancel()
        raise self.error from None
