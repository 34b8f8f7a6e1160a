"""Presign work items in batches: one ``presign_bulk`` API call per ``presign_batch_size`` keys.

The next batch is signed while the previous one is being handed to the workers, so the API's
latency overlaps the transfers. A batch call that fails, or a key the API left out, gives
``url=None``: the worker then presigns that file alone, so one bad batch costs speed, never
files.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any, Generic, TypeVar

logger = logging.getLogger(__name__)

W = TypeVar("W", bound=tuple)  # a work item; its first field is the key

PRESIGN_EXPIRES = 3600


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
            try:
                urls = await self._s3.presign_bulk(
                    self._bucket, keys, method=self._method, expires=self._expires
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # each file falls back to a single presign
                logger.warning("bulk presign of %d keys failed (%s); presigning one by one", len(keys), exc)
        get = urls.get
        return [(item, get(item[0])) for item in batch]

    async def pairs(self, items: AsyncIterator[W]) -> AsyncIterator[tuple[W, str | None]]:
        """Yield every item of ``items`` with its URL, keeping one batch signing ahead."""
        size = self._batch_size
        batch: list[W] = []
        ahead: asyncio.Task[list[tuple[W, str | None]]] | None = None
        try:
            async for item in items:
                batch.append(item)
                if len(batch) >= size:
                    signing = asyncio.ensure_future(self._sign(batch))
                    batch = []
                    if ahead is not None:
                        for pair in await ahead:
                            yield pair
                    ahead = signing
            if batch:
                signing = asyncio.ensure_future(self._sign(batch))
                if ahead is not None:
                    for pair in await ahead:
                        yield pair
                ahead = signing
            if ahead is not None:
                pairs, ahead = await ahead, None
                for pair in pairs:
                    yield pair
        finally:
            if ahead is not None and not ahead.done():
                ahead.cancel()
