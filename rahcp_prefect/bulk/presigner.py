"""Presign work items in batches: one ``presign_bulk`` API call per batch of at most
``presign_batch_size`` keys. The first batch is small (``FIRST_BATCH``), so the first transfer
starts as soon as a few keys are signed; each batch after it doubles, up to the batch size (a
call costs the client about 1.3 ms of CPU whatever its size, so large batches sign a key for
half the CPU of batches of 200).

The next batch is signed while the previous one is being handed to the workers, so the API's
latency overlaps the transfers; while the source is slow (a listing page on its way), the keys
it gave so far are signed as a smaller batch and handed out rather than held back. A batch call
that fails (after the client's own retries) is made again after a backoff, up to
``BULK_PRESIGN_ROUNDS`` times: one request per batch, not one per file, goes into an API that
is struggling. A batch that still fails, or a key the API left out, gives ``url=None``: the
worker then presigns that file alone, so one bad batch costs speed, never files.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any, Generic, TypeVar

from rahcp_prefect import defaults
from rahcp_prefect.client.retry import backoff_delay

logger = logging.getLogger(__name__)

W = TypeVar("W", bound=tuple)  # a work item; its first field is the key

PRESIGN_EXPIRES = defaults.PRESIGN_EXPIRES

BULK_PRESIGN_ROUNDS = 3
"""Bulk presign calls for one batch before its files are presigned one by one."""
BULK_PRESIGN_BACKOFF = 1.0
"""Backoff base (seconds) between two bulk presign calls of one batch."""
FIRST_BATCH = 100
"""Keys in the first batch (when the batch size is larger); the batches after it double."""


class Presigner(Generic[W]):
    """Turns a stream of work items into ``(item, url or None)`` pairs, signed in batches."""

    def __init__(
        self,
        s3: Any,
        bucket: str,
        *,
        method: str,
        batch_size: int,
        wants_url: Callable[[W], bool] | None = None,
        expires: int = PRESIGN_EXPIRES,
    ) -> None:
        self._s3 = s3
        self._bucket = bucket
        self._method = method
        self._batch_size = batch_size
        self._wants_url = wants_url
        self._expires = expires

    async def _sign(self, batch: list[W]) -> list[tuple[W, str | None]]:
        wants = self._wants_url
        keys = [item[0] for item in batch if wants is None or wants(item)]
        urls: dict[str, str] = {}
        if keys:
            urls = await self._sign_bulk(keys)
        get = urls.get
        return [(item, get(item[0])) for item in batch]

    async def _sign_bulk(self, keys: list[str]) -> dict[str, str]:
        """URLs of ``keys`` from one bulk call, made again after a backoff when it fails; {}
        once ``BULK_PRESIGN_ROUNDS`` calls failed (each file then falls back to its own)."""
        for round_ in range(BULK_PRESIGN_ROUNDS):
            try:
                return await self._s3.presign_bulk(self._bucket, keys, method=self._method, expires=self._expires)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if round_ + 1 == BULK_PRESIGN_ROUNDS:
                    logger.warning(
                        "bulk presign of %d keys failed %d times (%s); presigning one by one",
                        len(keys), BULK_PRESIGN_ROUNDS, exc,
                    )
                    break
                delay = backoff_delay(round_, BULK_PRESIGN_BACKOFF)
                logger.warning("bulk presign of %d keys failed (%s); again in %.1f s", len(keys), exc, delay)
                await asyncio.sleep(delay)
        return {}

    async def batches(self, items: AsyncIterator[W]) -> AsyncIterator[list[tuple[W, str | None]]]:
        """Yield every item of ``items`` with its URL, a signed batch at a time, keeping one
        batch signing ahead.

        A background task reads ``items`` into a buffer of two batches. A full batch is signed
        while the previous one is handed out. When the buffer holds less than a batch (the
        source is waiting, e.g. for a listing page), what is signed is handed out first, and
        then what the buffer holds is signed at once rather than left waiting for a full
        batch: the workers never wait for keys that are already known. At most one such
        partial batch is being signed at a time.
        """
        most = self._batch_size
        size = min(most, FIRST_BATCH)
        buffer = _ReadAhead(items, 2 * most)
        reader = asyncio.ensure_future(buffer.fill())
        ahead: asyncio.Task[list[tuple[W, str | None]]] | None = None
        try:
            while True:
                if ahead is not None and len(buffer.items) < size and not buffer.ended:
                    signed, ahead = await ahead, None
                    yield signed
                    continue
                batch = await buffer.take(size)
                if not batch:
                    break
                size = min(most, 2 * size)
                signing = asyncio.ensure_future(self._sign(batch))
                if ahead is not None:
                    yield await ahead
                ahead = signing
            if ahead is not None:
                signed, ahead = await ahead, None
                yield signed
            if buffer.failure is not None:
                raise buffer.failure
        finally:
            if ahead is not None and not ahead.done():
                ahead.cancel()
            if not reader.done():
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reader


class _ReadAhead(Generic[W]):
    """``items`` read ahead by a background task (``fill``) into ``items``, at most ``limit`` at
    a time: once full, the reader waits until half of it was taken (a reader woken for every
    item taken would cost a task switch per file)."""

    def __init__(self, source: AsyncIterator[W], limit: int) -> None:
        self.source = source
        self.limit = limit
        self.items: list[W] = []
        self.ended = False
        """The source is exhausted (or failed): ``items`` is all there will be."""
        self.failure: BaseException | None = None
        """What the source raised; raised by the consumer once what it gave before is handed out."""
        self._ready = asyncio.Event()  # items (or the end) are there
        self._room = asyncio.Event()  # the reader may go on

    async def fill(self) -> None:
        items, ready, room, limit = self.items, self._ready, self._room, self.limit
        source = self.source
        try:
            async for item in source:
                items.append(item)
                held = len(items)
                if held == 1:
                    ready.set()
                if held >= limit:
                    room.clear()
                    await room.wait()
        except BaseException as exc:
            task = asyncio.current_task()
            if task is not None and task.cancelling():  # cancelled: the consumer is gone
                raise
            self.failure = exc
        finally:
            aclose = getattr(source, "aclose", None)
            if aclose is not None:
                await aclose()
        self.ended = True
        ready.set()

    async def take(self, most: int) -> list[W]:
        """Up to ``most`` items, waiting for the first; [] once the source has ended."""
        items = self.items
        while not items and not self.ended:
            self._ready.clear()
            await self._ready.wait()
        batch = items[:most]
        del items[:most]
        if len(items) <= self.limit // 2:
            self._room.set()
        return batch
