"""The data plane: PUT and GET on presigned URLs, straight to S3, on aiohttp.

Chosen by measurement (client CPU per presigned 10 KB PUT: aiohttp ~340 us vs httpx ~850 us;
streaming GET: 0.66 s/GB vs 2.0 s/GB). Every transfer of file bytes in the SDK goes through this
module, so the choice of HTTP library lives here only.

Presigned URLs are already percent-encoded and signed: they are passed on as
``yarl.URL(url, encoded=True)`` so aiohttp neither re-encodes nor normalises them. Errors name
``what`` (``bucket/key``), never the URL or its signature.

Every PUT carries ``Content-MD5`` of its body, so S3 refuses damaged bytes (400 ``BadDigest``,
retried), and the returned ETag must equal that MD5, or the attempt is retried too. A body up to
``STREAM_BODY_LIMIT`` is read once into memory (under the data plane's byte budget), hashed in
that same pass (MD5, and SHA-256 of a whole file) and sent from there. A larger body (a large
file, a multipart part) is never held: its region of the file is hashed first (in a worker
thread, one block at a time), then streamed from disk with that ``Content-MD5`` (two reads from
the page cache). Should the file change in between, S3 refuses the bytes sent (they do not hash
to the ``Content-MD5``): what was hashed is what was stored, or nothing is.

Its parts: ``file_bodies`` (bodies read and hashed from a file), ``received`` (GET bodies
written and hashed one batch behind the network), ``presigned_answers`` (what an answer means:
done, another try, or an error), ``retry_loop`` (the retry loop every request goes through).
"""

from __future__ import annotations

import asyncio
import os
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
from yarl import URL

from rahcp_prefect import defaults

from .bandwidth import Bandwidth
from .buffers import DEFAULT_BUFFER_BUDGET, ByteBudget
from .digests import HASH_ON_LOOP_LIMIT, Hasher, Uploaded, bare_etag, content_md5, hash_into, md5_and_sha256
from .errors import PresignedTransferError
from .file_bodies import FileRegion, changed_size, hash_file_region, read_hashed
from .presigned_answers import _TryAgain, check_answer, check_range
from .received import receive
from .retry_loop import TRANSPORT_ERRORS, RetryLoop
from .safe_paths import create_file
from .stalls import UNWATCHED, StallWatch
from .tls import ssl_context

DEFAULT_CHUNK = defaults.CHUNK_SIZE

STREAM_BODY_LIMIT = 8 * 1024 * 1024
"""File bodies up to this size are read into memory and hashed in that read; larger ones are
hashed from disk first, then streamed from disk (memory: one chunk per transfer in flight)."""


class DataPlane(RetryLoop):
    """Presigned transfers over one pooled keep-alive ``aiohttp`` session (created lazily).

    Retries 408/425/5xx and transport errors up to ``max_retries`` times with backoff, and
    throttling (429, 503, ``SlowDown``) for up to ``retry_deadline`` seconds; any other failure
    (403 included: the caller may presign again) raises ``PresignedTransferError`` at once.
    ``max_bandwidth`` (bytes/s, 0: none) caps all its transfers together, both directions.
    """

    def __init__(
        self,
        *,
        timeout: float = 30.0,
        max_retries: int = 4,
        retry_base_delay: float = 1.0,
        ssl_context: ssl.SSLContext | None = None,
        max_connections: int = 100,
        buffer_budget: int = DEFAULT_BUFFER_BUDGET,
        retry_deadline: float = defaults.RETRY_DEADLINE,
        max_bandwidth: int = defaults.MAX_BANDWIDTH,
    ) -> None:
        self.timeout = timeout
        self.max_retries = max_retries
        self.retry_base_delay = retry_base_delay
        self.retry_deadline = retry_deadline
        self.bandwidth = Bandwidth(max_bandwidth) if max_bandwidth else None
        """The shared cap on bytes per second (None: none)."""
        self.ssl_context = ssl_context if ssl_context is not None else default_context()
        """The TLS context (the client's: ``verify_ssl`` and ``ca_bundle``)."""
        self.max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
        self._streaming_timeout = aiohttp.ClientTimeout(total=None, sock_connect=timeout, sock_read=timeout)
        """Connecting, and each read of an answer, within ``timeout`` (a stream may take long)."""
        self._one_write_timeout = aiohttp.ClientTimeout(total=None, sock_connect=timeout)
        """A request sent in one write: its answer's deadline is ``stalls``' instead."""
        self.stalls = StallWatch(timeout)
        """Fails a request sent in one write that has no answer ``timeout`` s after it started."""
        self.buffers = ByteBudget(buffer_budget)
        """Bounds the request bodies all uploads of this data plane hold in memory at once."""
        self.retries = 0
        """Attempts repeated after a retryable failure, over this data plane's life (the bulk
        engine reports the increase during a run as ``TransferStats.retries``)."""
        self.throttled = 0
        """Answers that said the store is overloaded (429, 503, ``SlowDown``), over this data
        plane's life (the engine reports the increase as ``TransferStats.throttled`` and cuts
        the transfers in flight when it grows)."""

    @property
    def session(self) -> aiohttp.ClientSession:
        """The shared session; created on first use (inside the running event loop)."""
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=self.max_connections,
                limit_per_host=0,
                keepalive_timeout=30.0,
                ssl=self.ssl_context,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=self._streaming_timeout,
                auto_decompress=False,
                # Bytes as stored, never compressed on the way (set once here: a per-request
                # skip_auto_headers costs aiohttp a header dict built for every request).
                headers={"Accept-Encoding": "identity"},
            )
            # aiohttp silently resends an idempotent request (PUT, GET) once when the connection
            # drops: a retry outside max_retries that nobody counts. This loop owns retries.
            if hasattr(self._session, "_retry_connection"):
                self._session._retry_connection = False
        return self._session

    async def aclose(self) -> None:
        """Close the session and its pooled connections."""
        self.stalls.close()
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None

    # -- uploads ---------------------------------------------------------------------------

    async def put_file(
        self, url: str, path: Path, size: int, *, what: str, chunk_size: int = DEFAULT_CHUNK
    ) -> Uploaded:
        """PUT the whole file ``path`` (expected ``size`` bytes) with its ``Content-MD5``.

        Up to ``STREAM_BODY_LIMIT`` the file is read once into memory (in a worker thread
        above ``SYNC_READ_LIMIT``) and hashed in that read (MD5 and SHA-256); a larger one is
        hashed from disk, then streamed from disk. The body is written in ``chunk_size`` pieces
        with an explicit ``Content-Length`` (S3 rejects chunked transfer encoding).
        """
        path = Path(path)
        if os.stat(path).st_size != size:
            raise changed_size(path, what)
        return await self._put_range(url, path, 0, size, what=what, whole=True, chunk_size=chunk_size)

    def put_bytes(
        self,
        url: str,
        data: bytes | bytearray | memoryview,
        *,
        what: str,
        whole: bool = True,
        chunk_size: int = DEFAULT_CHUNK,
    ) -> Awaitable[Uploaded]:
        """PUT ``data`` with its ``Content-MD5`` (await the result); ``whole=False`` (a part of
        a larger object) skips the SHA-256, which only means something for a whole object.

        A buffer up to ``HASH_ON_LOOP_LIMIT`` is hashed here, on the loop, and the PUT is the
        awaitable handed back (no coroutine of its own for a small file); a larger one is
        hashed in a worker thread first."""
        if len(data) <= HASH_ON_LOOP_LIMIT:
            md5, sha256 = md5_and_sha256(data, sha256=whole)
            return self._put(url, data, md5, what, sha256=sha256, chunk_size=chunk_size)
        return self._put_hashed_aside(url, data, what=what, whole=whole, chunk_size=chunk_size)

    async def _put_hashed_aside(
        self, url: str, data: bytes | bytearray | memoryview, *, what: str, whole: bool, chunk_size: int
    ) -> Uploaded:
        md5, sha256 = await asyncio.get_running_loop().run_in_executor(
            None, lambda: md5_and_sha256(data, sha256=whole)
        )
        return await self._put(url, data, md5, what, sha256=sha256, chunk_size=chunk_size)

    async def put_part(
        self,
        url: str,
        path: Path,
        offset: int,
        length: int,
        *,
        what: str,
        chunk_size: int = DEFAULT_CHUNK,
    ) -> Uploaded:
        """PUT bytes ``[offset, offset + length)`` of ``path`` (one multipart part) with its
        ``Content-MD5``; read and hashed like ``put_file``."""
        path = Path(path)
        if os.stat(path).st_size < offset + length:
            raise changed_size(path, what)
        return await self._put_range(
            url, path, offset, length, what=what, whole=False, chunk_size=chunk_size
        )

    async def _put_range(
        self, url: str, path: Path, offset: int, length: int, *, what: str, whole: bool, chunk_size: int
    ) -> Uploaded:
        """PUT ``length`` bytes of ``path`` from ``offset``, with their MD5 (and SHA-256 when
        they are the ``whole`` file). Up to ``STREAM_BODY_LIMIT``: read into memory (under the
        budget) and hashed in that read; above it: hashed from disk, then streamed from disk."""
        if length <= STREAM_BODY_LIMIT:
            async with self.buffers.hold(length):
                data, md5, sha256 = await read_hashed(path, offset, length, what, sha256=whole)
                return await self._put(url, data, md5, what, sha256=sha256, chunk_size=chunk_size)
        md5, sha256 = await hash_file_region(path, offset, length, what, sha256=whole)
        region = FileRegion(path, offset, length, what)
        return await self._put(url, region, md5, what, sha256=sha256, chunk_size=chunk_size)

    async def _put(
        self,
        url: str,
        data: bytes | bytearray | memoryview | FileRegion,
        md5: bytes,
        what: str,
        *,
        sha256: str | None,
        chunk_size: int,
    ) -> Uploaded:
        """PUT ``data`` (a buffer, or a region of a file streamed from disk on each attempt)
        with retries; the answer's ETag must be ``md5`` (else retried)."""
        headers = {"Content-Length": str(len(data)), "Content-MD5": content_md5(md5)}
        expected = md5.hex()
        as_sent = f'"{expected}"'  # how S3 quotes it: matched without a call on the usual path

        bandwidth = self.bandwidth
        # A body that goes out in one write is watched by ``stalls`` (no timer of its own);
        # a streamed one keeps the per-read timeout, which follows its progress.
        one_write = not isinstance(data, FileRegion) and len(data) <= chunk_size
        timeout = self._one_write_timeout if one_write else self._streaming_timeout
        stalls = self.stalls

        async def attempt() -> tuple[str, int]:
            if bandwidth is not None:
                await bandwidth.take(len(data))
            body: Any
            if one_write:
                body = data
            elif isinstance(data, FileRegion):
                body = data.pieces(chunk_size)
            else:
                body = _pieces(data, chunk_size)
            try:
                with stalls.watching() if one_write else UNWATCHED:
                    async with self.session.put(
                        URL(url, encoded=True), data=body, headers=headers, timeout=timeout
                    ) as response:
                        await check_answer(response, what)
                        etag = response.headers.get("ETag")
                        await response.read()
            except TRANSPORT_ERRORS:
                if isinstance(data, FileRegion) and data.error is not None:
                    raise data.error from None  # the file, not the network: not retried
                raise
            if not etag:
                raise PresignedTransferError(f"No ETag in the response for {what}", response.status)
            if etag != as_sent and bare_etag(etag) != expected:
                raise _TryAgain(f"ETag {bare_etag(etag)} is not the MD5 of the bytes sent ({expected})")
            return etag, response.status

        etag = await self._retrying("PUT", what, attempt, len(data))
        return Uploaded(etag=etag, md5=expected, sha256=sha256)

    # -- downloads -------------------------------------------------------------------------

    async def get_to_file(
        self,
        url: str,
        dest: Path,
        *,
        what: str,
        chunk_size: int = DEFAULT_CHUNK,
        hasher: Hasher | None = None,
    ) -> int:
        """Stream the object into ``dest`` (created or truncated); return the bytes written.

        The caller picks a temporary name and renames it when this returns. ``dest`` is only
        created once S3 answered 2xx, and it is removed again if the transfer fails. A
        ``hasher`` is fed every byte as it streams (reset on each retry); writing and hashing run
        in a worker thread, one batch behind the network, so the loop keeps reading.
        """
        dest = Path(dest)

        async def attempt() -> tuple[int, int]:
            async with self.session.get(URL(url, encoded=True)) as response:
                await check_answer(response, what)
                with os.fdopen(create_file(str(dest), None), "wb") as handle:  # never through a link
                    written = await receive(response, handle, hasher, chunk_size)
                return written, response.status

        try:
            return await self._retrying("GET", what, attempt)
        except BaseException:
            dest.unlink(missing_ok=True)
            raise

    async def get_range_into(
        self,
        url: str,
        fd: int,
        offset: int,
        length: int,
        *,
        what: str,
        total: int | None = None,
        chunk_size: int = DEFAULT_CHUNK,
        progress: Callable[[int], None] | None = None,
    ) -> int:
        """GET bytes ``[offset, offset + length)`` of the object and write them at the same
        offsets of the open file ``fd`` (``pwrite``; memory: one chunk). Returns ``length``.
        ``progress`` is told the bytes written from ``offset`` so far (0 when an attempt starts,
        then after each chunk).

        A retry writes the range again from its start (same bytes, same place). A server that
        ignores ``Range`` (200 for a partial range) or sends another range is an error; so is
        an object whose size is not ``total`` (``ObjectChangedError``).
        """
        header = {"Range": f"bytes={offset}-{offset + length - 1}"}

        async def attempt() -> tuple[int, int]:
            async with self.session.get(URL(url, encoded=True), headers=header) as response:
                await check_answer(response, what)
                check_range(response, offset, length, total, what)
                position = offset
                if progress is not None:
                    progress(0)
                async for chunk in response.content.iter_chunked(chunk_size):
                    view = memoryview(chunk)
                    while view:
                        count = os.pwrite(fd, view, position)
                        position += count
                        view = view[count:]
                    if progress is not None:
                        progress(position - offset)
                written = position - offset
                if written != length:
                    raise _TryAgain(f"short body ({written} of {length} bytes)")
                return written, response.status

        return await self._retrying("GET", what, attempt, length)

    async def get_hashed(self, url: str, *, what: str, hasher: Hasher, chunk_size: int = DEFAULT_CHUNK) -> int:
        """Stream the object through ``hasher`` and discard the bytes (an audit); returns the
        size. Hashing runs in a worker thread, one batch behind the network."""

        async def attempt() -> tuple[int, int]:
            async with self.session.get(URL(url, encoded=True)) as response:
                await check_answer(response, what)
                return await receive(response, None, hasher, chunk_size), response.status

        return await self._retrying("GET", what, attempt)

    async def get_bytes(
        self, url: str, *, what: str, hasher: Hasher | None = None, size: int | None = None,
        chunk_size: int = DEFAULT_CHUNK,
    ) -> bytes:
        """GET the whole object into memory; a ``hasher`` is fed the body (in a worker thread
        when it is large). ``size``: the bytes expected (a listing's); an answer of at most
        ``chunk_size`` is watched by ``stalls`` from the request's start, as a PUT sent in one
        write is, instead of arming a timer on each read."""
        small = size is not None and size <= chunk_size
        timeout = self._one_write_timeout if small else self._streaming_timeout
        stalls = self.stalls

        async def attempt() -> tuple[bytes, int]:
            with stalls.watching() if small else UNWATCHED:
                async with self.session.get(URL(url, encoded=True), timeout=timeout) as response:
                    await check_answer(response, what)
                    data = await response.read()
            return data, response.status

        data = await self._retrying("GET", what, attempt)
        if hasher is not None:
            hasher.reset()
            await hash_into(hasher, data)
        return data


def default_context() -> ssl.SSLContext:
    """The context of a data plane made without one: verified, with the default CA stores."""
    return ssl_context(True, None)


async def _pieces(data: bytes | bytearray | memoryview, size: int) -> AsyncIterator[memoryview]:
    """``data`` in ``size`` slices, so the transport buffers one piece at a time, not the body."""
    view = memoryview(data)
    for start in range(0, len(view), size):
        yield view[start : start + size]
