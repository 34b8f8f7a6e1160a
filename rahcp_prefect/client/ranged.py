"""Large downloads as parallel ranged GETs into one temporary file, resumable, checked.

The object is cut into ranges of the multipart part size; ``concurrency`` ranges are in flight
at once, each streamed with ``pwrite`` at its own offsets (memory: one chunk per range in
flight). Each finished range is appended to a small sidecar file next to the temporary one,
``<temp>.ranges``, so a process killed half-way resumes with the ranges still missing. The
sidecar, not the tracker: the SDK works without a tracker, and the record lives and dies with
the bytes it describes (same folder, same name, removed with them); its first line names the
object (size, ETag, range size), so a changed object is never completed from stale ranges.
Both files are opened without following a link (``safe_paths``), relative to the folder's
descriptor when the caller gives one (``dir_fd``: ``temp`` is then a name in that folder).

Before the caller renames the file into place, the bytes are checked against the ETag: the MD5
of the whole object for a single-part ETag, or the multipart ETag recomputed from each part's
MD5 when the object's part count is the one this SDK's part size gives (ranges = parts). Only
the first is a verdict: a multipart ETag that does not match may come from parts cut otherwise
(another tool), so the result says ``verified=False`` (as for any ETag that cannot be checked).
Hashing runs in a worker thread, in file order, right behind the bytes as each range writes them
(not range by range once each is complete), so it overlaps receiving.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import json
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rahcp_prefect import defaults

from .completion import multipart_etag
from .digests import HASH_STEP, Hasher, feed_region
from .errors import ChecksumMismatchError, HCPError
from .gather import gather_all
from .safe_paths import create_file, open_own, unlink

if TYPE_CHECKING:
    from .dataplane import DataPlane

logger = logging.getLogger(__name__)

RANGES_SUFFIX = ".ranges"
"""The sidecar of ``<temp>``: ``<temp>.ranges``."""
HASH_STEP_MIN = 4 << 20
"""The hasher waits until this many new bytes are on disk (or its range is complete)."""
_FORMAT = 1


@dataclass(frozen=True)
class RangedResult:
    """What a ranged download wrote: its size, the ranges fetched now and whether the bytes
    were checked against the ETag."""

    size: int
    fetched: int
    resumed: int
    verified: bool


def sidecar_of(temp: Path) -> Path:
    return temp.with_name(temp.name + RANGES_SUFFIX)


def discard(temp: Path, dir_fd: int | None = None) -> None:
    """Remove a temporary download and its sidecar (missing ones are fine; a link itself,
    never its target)."""
    for path in (temp, sidecar_of(temp)):
        unlink(str(path), dir_fd)


def _etag_kind(etag: str | None, size: int, range_size: int) -> tuple[str, int]:
    """``("whole", 0)``, ``("parts", N)`` or ``("none", 0)``: what the ETag lets us check."""
    if not etag:
        return "none", 0
    value = etag.strip().strip('"')
    digest, _, parts = value.partition("-")
    if len(digest) != 32 or any(c not in "0123456789abcdefABCDEF" for c in digest):
        return "none", 0
    if not parts:
        return "whole", 0
    if parts.isdigit() and int(parts) == math.ceil(size / range_size):
        return "parts", int(parts)
    return "none", 0


class RangedDownload:
    """One ranged download of ``size`` bytes from ``url`` into ``temp``."""

    def __init__(
        self,
        data: DataPlane,
        url: str,
        temp: Path,
        size: int,
        etag: str | None,
        *,
        range_size: int,
        concurrency: int,
        what: str,
        chunk_size: int = defaults.CHUNK_SIZE,
        hasher: Hasher | None = None,
        dir_fd: int | None = None,
    ) -> None:
        if size <= 0 or range_size <= 0:
            raise ValueError("a ranged download needs size > 0 and range_size > 0")
        self.data = data
        self.url = url
        self.temp = Path(temp)
        self.size = size
        self.etag = etag
        self.range_size = range_size
        self.concurrency = max(1, concurrency)
        self.what = what
        self.chunk_size = chunk_size
        self.hasher = hasher
        """Also fed every byte of the file, in order, in the same pass as the ETag check
        (e.g. the SHA-256 a manifest names)."""
        self.dir_fd = dir_fd
        """The folder ``temp`` is a name in (None: ``temp`` is a path)."""
        self.count = math.ceil(size / range_size)
        self.header = {"format": _FORMAT, "size": size, "etag": etag, "range_size": range_size}

    def _span(self, index: int) -> tuple[int, int]:
        start = index * self.range_size
        return start, min(self.range_size, self.size - start)

    def _recorded(self) -> set[int]:
        """Ranges a previous attempt finished, if its sidecar describes this very object."""
        try:
            # Only lines ending in a newline were written whole (a crash may tear the last one).
            lines = self._read_sidecar().split("\n")[:-1]
            on_disk = os.stat(self.temp, dir_fd=self.dir_fd, follow_symlinks=False).st_size
        except (OSError, UnicodeDecodeError):
            discard(self.temp, self.dir_fd)
            return set()
        try:
            header = json.loads(lines[0]) if lines else None
        except ValueError:
            header = None
        if header != self.header or on_disk != self.size or not self.etag:
            discard(self.temp, self.dir_fd)
            return set()
        done = {int(line) for line in lines[1:] if line.isdigit()}
        return {index for index in done if 0 <= index < self.count}

    def _read_sidecar(self) -> str:
        fd = open_own(str(sidecar_of(self.temp)), os.O_RDONLY, self.dir_fd)
        with os.fdopen(fd, "rb") as handle:
            return handle.read().decode()

    def _open(self, fresh: bool) -> tuple[int, int]:
        """The part file and its sidecar: new ones (``fresh``), else those to resume (never
        through a link, never a file with other hard links)."""
        temp, sidecar = str(self.temp), str(sidecar_of(self.temp))
        if fresh:
            fd = create_file(temp, self.dir_fd, flags=os.O_RDWR)
        else:
            fd = open_own(temp, os.O_RDWR | getattr(os, "O_BINARY", 0), self.dir_fd)
        try:
            if fresh:
                return fd, create_file(sidecar, self.dir_fd, flags=os.O_WRONLY | os.O_APPEND)
            return fd, open_own(sidecar, os.O_WRONLY | os.O_APPEND, self.dir_fd)
        except BaseException:
            os.close(fd)
            raise

    async def run(self) -> RangedResult:
        """Fetch the missing ranges, check the bytes; raises ``ChecksumMismatchError`` (after removing
        the file) when they are not the object's. The file and sidecar stay on other failures
        (the caller removes them, or a crashed run's successor resumes from them)."""
        done = self._recorded()
        try:
            fd, record = self._open(fresh=not done)
        except OSError:
            if not done:
                raise
            logger.warning("%s: its part file cannot be resumed (a link?); fetching it all again", self.what)
            discard(self.temp, self.dir_fd)
            done = set()
            fd, record = self._open(fresh=True)
        try:
            if not done:
                os.ftruncate(fd, self.size)
                os.write(record, (json.dumps(self.header) + "\n").encode())
            else:
                logger.info("Resuming %s: %d of %d ranges on disk", self.what, len(done), self.count)
            kind, _parts = _etag_kind(self.etag, self.size, self.range_size)
            if self.hasher is not None:
                self.hasher.reset()
            hasher = _Hasher(fd, self, kind)
            for index in done:
                hasher.ready(index)
            hashing = asyncio.ensure_future(hasher.run())
            try:
                await self._fetch_missing(fd, record, done, hasher)
                digest = await hashing
            finally:
                if not hashing.done():
                    hashing.cancel()
                    with contextlib.suppress(BaseException):
                        await hashing
        finally:
            os.close(record)
            os.close(fd)
        verified = digest is not None and digest == (self.etag or "").strip()
        if digest is not None and not verified:
            if kind == "whole":
                discard(self.temp, self.dir_fd)
                raise ChecksumMismatchError(
                    f"Downloaded bytes of {self.what} do not match its MD5 ETag {self.etag} (got {digest})"
                )
            # The parts may have been cut otherwise than this SDK cuts them: no verdict.
            logger.warning("%s: ETag %s is not that of %d parts of %d bytes; not verified",
                           self.what, self.etag, self.count, self.range_size)
        elif digest is None:
            logger.info("%s: ETag %s cannot be checked from the ranges; not verified", self.what, self.etag)
        unlink(str(sidecar_of(self.temp)), self.dir_fd)
        return RangedResult(self.size, self.count - len(done), len(done), verified)

    async def _fetch_missing(self, fd: int, record: int, done: set[int], hasher: _Hasher) -> None:
        missing = iter([index for index in range(self.count) if index not in done])

        async def worker() -> None:
            for index in missing:
                start, length = self._span(index)
                await self.data.get_range_into(
                    self.url, fd, start, length, what=f"{self.what} (range {index + 1}/{self.count})",
                    total=self.size, chunk_size=self.chunk_size,
                    progress=functools.partial(hasher.progress, index),
                )
                os.write(record, f"{index}\n".encode())
                hasher.ready(index)

        await gather_all(worker() for _ in range(min(self.concurrency, self.count)))


class _Hasher:
    """Hashes the file in order, following the bytes as they land: each range reports how far
    it has written (contiguously from its start), and the hasher reads behind that frontier
    (in a worker thread, ``HASH_STEP`` at most per read), so hashing overlaps receiving. A
    range written again from its start (a retried GET) after the hasher read into it starts
    the hashing over: the digests are always of the bytes finally on disk."""

    def __init__(self, fd: int, download: RangedDownload, kind: str) -> None:
        self.fd = fd
        self.download = download
        self.kind = kind
        self.written = [0] * download.count
        """Bytes of each range on disk, from its start, as its current attempt wrote them."""
        self.claimed = 0
        """The end of the bytes the hasher has read or is reading."""
        self.again = False
        self.changed = asyncio.Event()

    def ready(self, index: int) -> None:
        """Range ``index`` is all on disk (fetched now, or recorded by an earlier run)."""
        self.progress(index, self.download._span(index)[1])

    def progress(self, index: int, nbytes: int) -> None:
        """Range ``index`` holds ``nbytes`` from its start (0: an attempt starts over)."""
        if nbytes < self.written[index] and self.claimed > self.download._span(index)[0]:
            self.again = True
        self.written[index] = nbytes
        self.changed.set()

    async def run(self) -> str | None:
        """The ETag these bytes would have (same form as the object's), or None if not checkable."""
        if self.kind == "none" and self.download.hasher is None:
            return None
        while True:
            self.again = False
            digest = await self._pass()
            if not self.again:
                return digest
            logger.info("%s: a range was fetched again under the hashing; hashing it over", self.download.what)

    async def _pass(self) -> str | None:
        download = self.download
        extra = download.hasher
        if extra is not None:
            extra.reset()
        loop = asyncio.get_running_loop()
        whole = hashlib.md5()
        part = hashlib.md5()
        parts: list[str] = []
        sinks: list[Any] = [] if extra is None else [extra]
        if self.kind == "whole":
            sinks.append(whole)
        position = self.claimed = 0
        while position < download.size:
            index = position // download.range_size
            start, length = download._span(index)
            end = start + self.written[index]
            if end - position < HASH_STEP_MIN and end < start + length:  # too little yet
                self.changed.clear()
                await self.changed.wait()
                if self.again:
                    return None
                continue
            count = min(end - position, HASH_STEP)
            self.claimed = position + count
            step = sinks + [part] if self.kind == "parts" else sinks
            fed = await loop.run_in_executor(None, feed_region, self.fd, position, count, step)
            if self.again:
                return None
            if fed != count:
                raise HCPError(f"temporary file ended at {position + fed} while hashing")
            position += count
            if self.kind == "parts" and position == start + length:
                parts.append(f'"{part.hexdigest()}"')
                part = hashlib.md5()
        if self.kind == "none":
            return None
        if self.kind == "whole":
            return f'"{whole.hexdigest()}"'
        return multipart_etag(parts)
