"""The consumer half of the engine: a bounded queue drained by a fixed pool of workers.

One coroutine per worker, not one task per file: per-file cost stays at a queue get and a call.
The queue holds ``workers x queue_depth`` items, so the scanner and the presigner never run
more than that far ahead of the transfers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

logger = logging.getLogger(__name__)

W = TypeVar("W")

_STOP: Any = object()

Handler = Callable[[W, "str | None"], Awaitable[object]]
"""``handle(item, url)``: transfers one item; whatever it returns is ignored here."""


async def _work(queue: asyncio.Queue[Any], handle: Handler[Any]) -> None:
    get = queue.get
    while True:
        pair = await get()
        if pair is _STOP:
            return
        await handle(pair[0], pair[1])


async def run_pipeline(
    pairs: AsyncIterator[tuple[W, str | None]],
    handle: Handler[W],
    *,
    workers: int,
    queue_depth: int,
) -> None:
    """Feed ``pairs`` through a queue to ``workers`` coroutines running ``handle(item, url)``.

    ``handle`` deals with its own file's failure. If the source itself fails (a listing error),
    the items already queued are still finished before the error is raised; on cancellation
    the workers are cancelled at once. An exception escaping ``handle`` (a defect: nothing is
    left to record it) fails the run at once with that error: the other workers are cancelled
    and the producer, which may be waiting on a full queue nobody drains any more, is woken.
    """
    queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=workers * queue_depth)
    crash = _Crash(asyncio.current_task())
    tasks = [asyncio.ensure_future(_work(queue, handle)) for _ in range(workers)]
    for task in tasks:
        task.add_done_callback(crash.seen)
    put = queue.put
    failure: Exception | None = None
    try:
        try:
            async for pair in pairs:
                await put(pair)
        except Exception as exc:  # the source failed: finish what is queued, then raise
            failure = exc
        for _ in tasks:
            await put(_STOP)
        await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        aclose = getattr(pairs, "aclose", None)
        if aclose is not None:  # stop its read-ahead now, not when it is garbage collected
            with contextlib.suppress(Exception):  # the error being raised wins
                await aclose()
        crash.reraise()
        raise
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
