"""The data plane: PUT and GET on presigned URLs, straight to S3, on aiohttp.

Chosen by measurement (client CPU per presigned 10 KB PUT: aiohttp ~340 us vs httpx ~850 us;
streaming GET: 0.66 s/GB vs 2.0 s/GB). Every transfer of file bytes in the SDK goes through this
module, so the choice of HTTP library lives here only.

Presigned URLs are already percent-encoded and signed: they are passed on as
``yarl.URL(url, encoded=True)`` so aiohttp neither re-encodes nor normalises them. Errors name
``what`` (``bucket/key``), never the URL or its signature.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from time import perf_counter
from typing import Any, TypeVar

import aiohttp
from yarl import URL

from .errors import HCPError, PresignedTransferError
from .redaction import redact_text
from .retry import backoff_delay, parse_retry_after

logger = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_CHUNK = 1 << 20
SYNC_READ_LIMIT = 256 * 1024
"""Reads up to this size happen on the event loop; larger ones in a worker thread."""

RETRYABLE_STATUSES = frozenset({408, 425, 429})
"""Retried on the data plane, together with every 5xx."""

TRANSPORT_ERRORS = (aiohttp.ClientError, asyncio.TimeoutError, ConnectionError)
DISCONNECTS = (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)
"""A connection closed under a request (often a stale keep-alive one): the first retry is
immediate, as aiohttp's own hidden retry was, but goes through the counted retry loop.
(A refused connection, ``ClientConnectorError``, backs off as usual.)"""
FATAL_TRANSPORT_ERRORS = (aiohttp.InvalidURL, aiohttp.ClientConnectorCertificateError)
"""Transport errors another try cannot fix: raised at once."""

_S3_CODE = re.compile(rb"<Code>([A-Za-z0-9.]{1,64})</Code>")


def _is_retryable(status: int) -> bool:
    return status in RETRYABLE_STATUSES or status >= 500


class _Retry(Exception):
    """Internal: this attempt failed in a way worth another try."""

    def __init__(self, reason: str, status: int = 0, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.retry_after = retry_after


class _FileSlice:
    """``length`` bytes of ``path`` from ``offset``, read in ``chunk_size`` pieces as they are sent.

    The file is opened when iteration starts, so each retry reads it afresh. A file that turns out
    shorter than promised raises ``HCPError`` (also kept in ``error``, since aiohttp wraps
    exceptions raised while it writes a body).
    """

    def __init__(self, path: Path, offset: int, length: int, chunk_size: int, what: str) -> None:
        self.path = path
        self.offset = offset
        self.length = length
        self.chunk_size = chunk_size
        self.what = what
        self.error: HCPError | None = None

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[bytes]:
        # Read on the event loop: a chunk is at most ``chunk_size`` (1 MiB by default) of a local
        # file, which the page cache serves in well under a millisecond, while handing each read
        # to a worker thread cost about 0.3 s of CPU per GB in thread switches (measured here).
        with open(self.path, "rb") as handle:
            if self.offset:
                handle.seek(self.offset)
            remaining = self.length
            while remaining > 0:
                chunk = handle.read(min(self.chunk_size, remaining))
                if not chunk:
                    self.error = _changed_size(self.path, self.what)
                    raise self.error
                remaining -= len(chunk)
                yield chunk


def _changed_size(path: Path, what: str) -> HCPError:
    return HCPError(f"File {str(path)!r} changed size during upload of {what}")


class DataPlane:
    """Presigned transfers over one pooled keep-alive ``aiohttp`` session (created lazily).

    Retries 408/425/429/5xx and transport errors up to ``max_retries`` times with backoff; any
    other failure (403 included: the caller may presign again) raises ``PresignedTransferError``
    at once.
    """

    def __init__(
        self,
        *,
        timeout: float = 30.0,
        max_retries: int = 4,
        retry_base_delay: float = 1.0,
        verify_ssl: bool = True,
        max_connections: int = 100,
    ) -> None:
        self.timeout = timeout
        self.max_retries = max_retries
        self.retry_base_delay = retry_base_delay
        self.verify_ssl = verify_ssl
        self.max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
        self.retries = 0
        """Attempts repeated after a retryable failure, over this data plane's life (the bulk
        engine reports the increase during a run as ``TransferStats.retries``)."""

    @property
    def session(self) -> aiohttp.ClientSession:
        """The shared session; created on first use (inside the running event loop)."""
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=self.max_connections,
                limit_per_host=0,
                keepalive_timeout=30.0,
                ssl=True if self.verify_ssl else False,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(
                    total=None, sock_connect=self.timeout, sock_read=self.timeout
                ),
                auto_decompress=False,
                skip_auto_headers=("Accept-Encoding",),
            )
            # aiohttp silently resends an idempotent request (PUT, GET) once when the connection
            # drops: a retry outside max_retries that nobody counts. This loop owns retries.
            if hasattr(self._session, "_retry_connection"):
                self._session._retry_connection = False
        return self._session

    async def aclose(self) -> None:
        """Close the session and its pooled connections."""
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None

    # -- uploads ---------------------------------------------------------------------------

    async def put_file(
        self, url: str, path: Path, size: int, *, what: str, chunk_size: int = DEFAULT_CHUNK
    ) -> str:
        """PUT the whole file ``path`` (expected ``size`` bytes); return the ETag (quoted).

        Files up to ``chunk_size`` are read in one go, larger ones streamed from disk with an
        explicit ``Content-Length`` (S3 rejects chunked transfer encoding).
        """
        path = Path(path)

        async def body() -> tuple[Any, _FileSlice | None]:
            actual = os.stat(path).st_size
            if actual != size:
                raise _changed_size(path, what)
            return await _file_body(path, 0, size, chunk_size, what)

        return await self._put(url, body, size, what)

    async def put_bytes(self, url: str, data: bytes, *, what: str) -> str:
        """PUT ``data``; return the ETag (quoted)."""

        async def body() -> tuple[Any, _FileSlice | None]:
            return data, None

        return await self._put(url, body, len(data), what)

    async def put_part(
        self,
        url: str,
        path: Path,
        offset: int,
        length: int,
        *,
        what: str,
        chunk_size: int = DEFAULT_CHUNK,
    ) -> str:
        """PUT bytes ``[offset, offset + length)`` of ``path`` (one multipart part); return its ETag."""
        path = Path(path)

        async def body() -> tuple[Any, _FileSlice | None]:
            if os.stat(path).st_size < offset + length:
                raise _changed_size(path, what)
            return await _file_body(path, offset, length, chunk_size, what)

        return await self._put(url, body, length, what)

    async def _put(
        self,
        url: str,
        body: Callable[[], Awaitable[tuple[Any, _FileSlice | None]]],
        length: int,
        what: str,
    ) -> str:
        async def attempt() -> tuple[str, int]:
            data, source = await body()
            try:
                async with self.session.put(
                    URL(url, encoded=True),
                    data=data,
                    headers={"Content-Length": str(length)},
                ) as response:
                    await _check(response, what)
                    etag = response.headers.get("ETag")
                    await response.read()
            except TRANSPORT_ERRORS:
                if source is not None and source.error is not None:
                    raise source.error from None
                raise
            if not etag:
                raise PresignedTransferError(f"No ETag in the response for {what}", response.status)
            return etag, response.status

        return await self._retrying("PUT", what, attempt, length)

    # -- downloads -------------------------------------------------------------------------

    async def get_to_file(
        self, url: str, dest: Path, *, what: str, chunk_size: int = DEFAULT_CHUNK
    ) -> int:
        """Stream the object into ``dest`` (created or truncated); return the bytes written.

        The caller picks a temporary name and renames it when this returns. ``dest`` is only
        created once S3 answered 2xx, and it is removed again if the transfer fails.
        """
        dest = Path(dest)

        async def attempt() -> tuple[int, int]:
            async with self.session.get(URL(url, encoded=True)) as response:
                await _check(response, what)
                written = 0
                with open(dest, "wb") as handle:
                    async for chunk in response.content.iter_chunked(chunk_size):
                        handle.write(chunk)
                        written += len(chunk)
                expected = response.content_length
                if expected is not None and written != expected:
                    raise _Retry(f"short body ({written} of {expected} bytes)")
                return written, response.status

        try:
            return await self._retrying("GET", what, attempt)
        except BaseException:
            dest.unlink(missing_ok=True)
            raise

    async def get_bytes(self, url: str, *, what: str) -> bytes:
        """GET the whole object into memory."""

        async def attempt() -> tuple[bytes, int]:
            async with self.session.get(URL(url, encoded=True)) as response:
                await _check(response, what)
                return await response.read(), response.status

        return await self._retrying("GET", what, attempt)

    # -- retry loop ------------------------------------------------------------------------

    async def _retrying(
        self,
        method: str,
        what: str,
        attempt: Callable[[], Awaitable[tuple[T, int]]],
        size: int | None = None,
    ) -> T:
        """Run ``attempt`` (which returns its result and the HTTP status) with retries."""
        tries = 0
        while True:
            started = perf_counter()
            try:
                result, status = await attempt()
            except _Retry as failure:
                reason, status, retry_after = failure.reason, failure.status, failure.retry_after
            except FATAL_TRANSPORT_ERRORS as exc:
                logger.error("%s %s failed: %s", method, what, _describe(exc))
                raise PresignedTransferError(f"{_describe(exc)} for {what}") from None
            except TRANSPORT_ERRORS as exc:
                reason, status, retry_after = _describe(exc), 0, None
                if tries == 0 and _dropped(exc):
                    retry_after = 0.0
            else:
                if logger.isEnabledFor(logging.DEBUG):
                    logger.debug(
                        "%s %s -> %d (%.1f ms, %d bytes)",
                        method,
                        what,
                        status,
                        (perf_counter() - started) * 1000,
                        _byte_count(result, size),
                    )
                return result
            if tries >= self.max_retries:
                logger.debug(  # raised: the caller reports it (see _check)
                    "%s %s failed after %d attempts: %s",
                    method,
                    what,
                    tries + 1,
                    f"{status} {reason}" if status else reason,
                )
                raise PresignedTransferError(f"{reason} for {what}", status)
            delay = backoff_delay(tries, self.retry_base_delay, retry_after)
            tries += 1
            self.retries += 1
            logger.warning(
                "%s %s: %s; retry %d/%d in %.2f s",
                method,
                what,
                f"{status} {reason}" if status else reason,
                tries,
                self.max_retries,
                delay,
            )
            await asyncio.sleep(delay)


async def _file_body(
    path: Path, offset: int, length: int, chunk_size: int, what: str
) -> tuple[Any, _FileSlice | None]:
    """The request body for a file range: bytes when it fits one chunk, else a streaming slice."""
    if length > chunk_size:
        source = _FileSlice(path, offset, length, chunk_size, what)
        return source, source
    if length <= SYNC_READ_LIMIT:
        data = _read_range(path, offset, length)
    else:
        data = await asyncio.get_running_loop().run_in_executor(
            None, _read_range, path, offset, length
        )
    if len(data) != length:
        raise _changed_size(path, what)
    return data, None


def _read_range(path: Path, offset: int, length: int) -> bytes:
    with open(path, "rb") as handle:
        if offset:
            handle.seek(offset)
        return handle.read(length)


async def _check(response: aiohttp.ClientResponse, what: str) -> None:
    """Return on 2xx; raise ``_Retry`` for a retryable status, ``PresignedTransferError`` otherwise."""
    status = response.status
    if status < 300:
        return
    body = await response.read()
    code = _S3_CODE.search(body[:4096])
    reason = f"{response.reason or 'HTTP error'}"
    if code:
        reason += f" ({code.group(1).decode()})"
    if _is_retryable(status):
        raise _Retry(reason, status, parse_retry_after(response.headers.get("Retry-After")))
    # Not logged above DEBUG: the error is raised and its caller reports it (the bulk engine
    # once per run for the first failures, then as counts: never one line per file).
    logger.debug("%s %s -> %d %s", response.method, what, status, reason)
    raise PresignedTransferError(f"{reason} for {what}", status)


def _byte_count(result: object, size: int | None) -> int:
    """Bytes moved by a finished transfer, for the debug log."""
    if size is not None:
        return size
    if isinstance(result, (bytes, bytearray)):
        return len(result)
    return result if isinstance(result, int) else 0


def _dropped(exc: BaseException) -> bool:
    """Whether an established connection was closed under the request."""
    return isinstance(exc, DISCONNECTS) and not isinstance(exc, aiohttp.ClientConnectorError)


def _describe(exc: BaseException) -> str:
    """A transport error as text without any URL query (aiohttp messages may carry the URL)."""
    text = redact_text(str(exc))
    name = type(exc).__name__
    return f"{name}: {text}"[:200] if text else name
