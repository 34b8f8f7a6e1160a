"""Request bodies read from a file, and their digests.

A body up to ``dataplane.STREAM_BODY_LIMIT`` is read once into memory and hashed in that same
read (``read_hashed``); a larger one is never held: its region is hashed from disk first
(``hash_file_region``, one block at a time in worker threads), then streamed from disk
(``FileRegion``). A file that is shorter than expected is an ``HCPError`` naming it.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from .digests import hash_file_steps, md5_and_sha256
from .errors import HCPError

SYNC_READ_LIMIT = 256 * 1024
"""Reads (and their hashing) up to this size happen on the event loop; larger ones in a worker
thread (``hashlib`` releases the GIL, so the loop keeps moving other transfers)."""


def changed_size(path: Path, what: str) -> HCPError:
    return HCPError(f"File {str(path)!r} changed size during upload of {what}")


async def read_hashed(
    path: Path, offset: int, length: int, what: str, *, sha256: bool
) -> tuple[bytearray, bytes, str | None]:
    """Bytes ``[offset, offset + length)`` of ``path``, its raw MD5 and (``sha256``) hex SHA-256,
    in one read; on the loop up to ``SYNC_READ_LIMIT``, else in a worker thread."""
    if length <= SYNC_READ_LIMIT:
        data = read_range(path, offset, length, what)
        md5, digest = md5_and_sha256(data, sha256=sha256)
        return data, md5, digest

    def read_and_hash() -> tuple[bytearray, bytes, str | None]:
        data = read_range(path, offset, length, what)
        md5, digest = md5_and_sha256(data, sha256=sha256)
        return data, md5, digest

    return await asyncio.get_running_loop().run_in_executor(None, read_and_hash)


async def hash_file_region(
    path: Path, offset: int, length: int, what: str, *, sha256: bool
) -> tuple[bytes, str | None]:
    """The raw MD5 and (``sha256``) hex SHA-256 of bytes ``[offset, offset + length)`` of
    ``path``, read from disk one block at a time in worker threads (no buffer of the region)."""
    sinks: list[Any] = [hashlib.md5()] + ([hashlib.sha256()] if sha256 else [])
    fed = await hash_file_steps(path, offset, length, sinks)
    if fed != length:
        raise changed_size(path, what)
    return sinks[0].digest(), sinks[1].hexdigest() if sha256 else None


class FileRegion:
    """Bytes ``[offset, offset + length)`` of a file, as a request body read from disk in
    pieces on each attempt (memory: one piece). A file that is now shorter ends the body with
    ``HCPError``; one whose bytes changed is refused by S3 (``Content-MD5``)."""

    __slots__ = ("path", "offset", "length", "what", "error")

    def __init__(self, path: Path, offset: int, length: int, what: str) -> None:
        self.path, self.offset, self.length, self.what = path, offset, length, what
        self.error: HCPError | None = None
        """Set when the file ended early (aiohttp reports it as a connection error)."""

    def __len__(self) -> int:
        return self.length

    async def pieces(self, size: int) -> AsyncIterator[bytes]:
        self.error = None
        with open(self.path, "rb", buffering=0) as handle:
            left = self.length
            handle.seek(self.offset)
            while left > 0:
                piece = handle.read(min(size, left))  # page cache, just hashed: on the loop
                if not piece:
                    self.error = changed_size(self.path, self.what)
                    raise self.error
                left -= len(piece)
                yield piece


def read_range(path: Path, offset: int, length: int, what: str) -> bytearray:
    """Exactly ``length`` bytes from ``offset``; a file that is now shorter raises ``HCPError``."""
    data = bytearray(length)
    view = memoryview(data)
    with open(path, "rb", buffering=0) as handle:
        if offset:
            handle.seek(offset)
        got = 0
        while got < length:
            count = handle.readinto(view[got:])
            if not count:
                raise changed_size(path, what)
            got += count
    return data
