"""GET bodies received: streamed into a file (or discarded) and through a hasher, the writing
and hashing in a worker thread one batch behind the network, so the event loop keeps reading.
"""

from __future__ import annotations

import asyncio
from typing import Any

from .digests import Hasher
from .file_bodies import SYNC_READ_LIMIT
from .presigned_answers import _TryAgain


async def receive(response: Any, handle: Any, hasher: Hasher | None, chunk_size: int) -> int:
    """Stream a GET answer's body into ``handle`` (None: discard it) and through ``hasher``
    (None: no hashing; reset first, as on every attempt); returns the bytes received, a short
    body (fewer than its Content-Length) being a retried failure."""
    received = 0
    if hasher is None:
        async for chunk in response.content.iter_chunked(chunk_size):
            if handle is not None:
                handle.write(chunk)
            received += len(chunk)
    else:
        hasher.reset()
        sink = HashingWriter(handle, hasher, chunk_size)
        try:
            async for chunk in response.content.iter_chunked(chunk_size):
                await sink.write(chunk)
                received += len(chunk)
            await sink.flush()
        finally:
            await sink.settle()
    expected = response.content_length
    if expected is not None and received != expected:
        raise _TryAgain(f"short body ({received} of {expected} bytes)")
    return received


class HashingWriter:
    """Writes streamed chunks to a file (``handle``; None: nowhere) and feeds them to a hasher
    in a worker thread, in batches of about ``batch`` bytes, one in flight while the next one
    arrives."""

    def __init__(self, handle: Any, hasher: Hasher, batch: int) -> None:
        self._handle = handle
        self._hasher = hasher
        self._batch = max(batch, SYNC_READ_LIMIT)
        self._chunks: list[bytes] = []
        self._size = 0
        self._pending: asyncio.Future[None] | None = None

    async def write(self, chunk: bytes) -> None:
        self._chunks.append(chunk)
        self._size += len(chunk)
        if self._size >= self._batch:
            await self._submit()

    async def flush(self) -> None:
        """Write and hash what is left, and wait until it is done."""
        if self._chunks:
            await self._submit()
        await self.settle()

    async def settle(self) -> None:
        """Wait for the batch in flight (also after a failure: the file must not be closed
        under a thread still writing to it)."""
        if self._pending is not None:
            pending, self._pending = self._pending, None
            await pending

    async def _submit(self) -> None:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            await pending
        chunks, self._chunks, self._size = self._chunks, [], 0
        self._pending = asyncio.get_running_loop().run_in_executor(None, self._work, chunks)

    def _work(self, chunks: list[bytes]) -> None:
        for chunk in chunks:
            if self._handle is not None:
                self._handle.write(chunk)
            self._hasher.update(chunk)
