"""Multipart upload over presigned part URLs: initiate, presign parts, PUT parts, complete.

Parts are read from disk as they are sent, ``concurrency`` at a time, so memory stays bounded by
concurrency x read chunk whatever the file size. Any failure (or cancellation) before the complete
aborts the upload; once the complete was sent the upload is never aborted (it may be complete:
see ``completion``).
"""

from __future__ import annotations

import asyncio
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from time import perf_counter
from typing import TYPE_CHECKING

from .completion import CompletionUnknown, complete_upload
from .config import MAX_PART_SIZE, MAX_PARTS, MIB, MIN_PART_SIZE
from .errors import HCPError, PresignedTransferError
from .keys import multipart_path

if TYPE_CHECKING:
    from .client import HCPClient

logger = logging.getLogger(__name__)

PART_URL_EXPIRES = 3600
"""Lifetime of presigned part URLs; a 403 on a part presigns all parts again (once)."""


def part_size_for(size: int, chunk: int) -> int:
    """Part size for a ``size``-byte object: ``max(chunk, 5 MiB, ceil(size / 10000))`` rounded
    up to a whole MiB, so no object ever needs more than 10,000 parts."""
    if size < 0:
        raise ValueError(f"size must be >= 0, got {size}")
    needed = max(chunk, MIN_PART_SIZE, math.ceil(size / MAX_PARTS))
    part = math.ceil(needed / MIB) * MIB
    if part > MAX_PART_SIZE:
        raise ValueError(
            f"{size} bytes exceed the largest multipart upload ({MAX_PARTS} parts of 5 GiB)"
        )
    return part


@dataclass
class _PartUrls:
    """The presigned part URLs of one upload and how often they were renewed."""

    part_size: int
    urls: dict[int, str]
    generation: int = 0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class MultipartUpload:
    """One multipart upload of ``source`` (a file or bytes) to ``bucket/key``."""

    def __init__(
        self,
        client: HCPClient,
        bucket: str,
        key: str,
        source: Path | bytes | bytearray | memoryview,
        size: int,
        *,
        part_size: int,
        concurrency: int,
        chunk_size: int = 1 << 20,
    ) -> None:
        self.client = client
        self.bucket = bucket
        self.key = key
        self.source = source
        self.size = size
        self.part_size = part_size
        self.concurrency = max(1, concurrency)
        self.chunk_size = chunk_size
        self.what = f"{bucket}/{key}"
        self.upload_id: str | None = None
        self.completing = False
        """Set once a complete may have reached the store: from then on, never abort."""

    async def run(self) -> str:
        """Upload every part and complete; abort on a failure before the complete. Returns the
        object's ETag."""
        started = perf_counter()
        initiated = await self.client.request_json("POST", multipart_path(self.bucket, self.key))
        self.upload_id = initiated["upload_id"]
        try:
            urls = await self._presign_parts()
            etags = await self._put_parts(urls)
            etag = await self._complete(etags)
        except BaseException:
            if self.completing:
                logger.warning("Multipart upload of %s left open: its complete may have succeeded", self.what)
            else:
                await asyncio.shield(self._abort())
            raise
        logger.info(
            "Multipart upload of %s done: %d bytes in %d parts, %.2f s",
            self.what,
            self.size,
            len(etags),
            perf_counter() - started,
        )
        return etag

    async def _presign_parts(self) -> _PartUrls:
        answer = await self.client.request_json(
            "POST",
            multipart_path(self.bucket, self.key, "/presign"),
            json={
                "upload_id": self.upload_id,
                "file_size": self.size,
                "part_size": self.part_size,
                "expires_in": PART_URL_EXPIRES,
            },
        )
        part_size = int(answer["part_size"])
        urls = {int(item["part_number"]): item["url"] for item in answer["urls"]}
        expected = math.ceil(self.size / part_size)
        if part_size < MIN_PART_SIZE or sorted(urls) != list(range(1, expected + 1)):
            raise HCPError(
                f"Presigned parts for {self.what} do not cover the file "
                f"({len(urls)} URLs, part size {part_size}, {self.size} bytes)"
            )
        return _PartUrls(part_size=part_size, urls=urls)

    async def _put_parts(self, parts: _PartUrls) -> dict[int, str]:
        """PUT every part with ``concurrency`` workers; the first failure cancels the rest."""
        etags: dict[int, str] = {}
        numbers = iter(sorted(parts.urls))

        async def worker() -> None:
            for number in numbers:
                etags[number] = await self._put_part(parts, number)

        tasks = [asyncio.create_task(worker()) for _ in range(min(self.concurrency, len(parts.urls)))]
        try:
            done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                if task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        return etags

    async def _put_part(self, parts: _PartUrls, number: int) -> str:
        """One part; on 403 (expired URL) the parts are presigned again once and it is retried."""
        generation = parts.generation
        try:
            return await self._send_part(parts.urls[number], parts.part_size, number)
        except PresignedTransferError as exc:
            if exc.status_code != 403:
                raise
            async with parts.lock:
                if parts.generation == generation:
                    if generation >= 1:
                        raise
                    logger.warning("403 on a part of %s: presigning the parts again", self.what)
                    fresh = await self._presign_parts()
                    parts.urls, parts.generation = fresh.urls, generation + 1
            return await self._send_part(parts.urls[number], parts.part_size, number)

    async def _send_part(self, url: str, part_size: int, number: int) -> str:
        offset = (number - 1) * part_size
        length = min(part_size, self.size - offset)
        what = f"{self.what} (part {number})"
        if isinstance(self.source, Path):
            return await self.client.data.put_part(
                url, self.source, offset, length, what=what, chunk_size=self.chunk_size
            )
        view = memoryview(self.source)[offset : offset + length]
        return await self.client.data.put_bytes(url, view, what=what)  # type: ignore[arg-type]

    async def _complete(self, etags: dict[int, str]) -> str:
        assert self.upload_id is not None
        self.completing = True
        try:
            return await complete_upload(self.client, self.bucket, self.key, self.upload_id, etags, self.size)
        except HCPError as exc:
            if not isinstance(exc, CompletionUnknown):
                self.completing = False  # refused outright: nothing was completed
            raise

    async def _abort(self) -> None:
        """Best effort: a failed abort is logged, never raised over the original error."""
        try:
            await self.client.request(
                "POST",
                multipart_path(self.bucket, self.key, "/abort"),
                json={"upload_id": self.upload_id},
            )
            logger.warning("Aborted multipart upload of %s", self.what)
        except Exception as exc:  # noqa: BLE001 - the original failure matters more
            logger.warning("Could not abort multipart upload of %s: %s", self.what, exc)
