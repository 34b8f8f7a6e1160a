"""The data plane's retry loop: one presigned request tried again until it goes through, the
retry budget runs out, or the failure is one another try cannot fix.

Retried: 408/425/5xx and transport errors up to ``max_retries`` times with backoff, throttling
(429, 503, ``SlowDown``) until ``retry_deadline``; a dropped keep-alive connection is retried
at once the first time. ``DataPlane`` (``dataplane``) takes it as a base class, so a request
pays no coroutine layer for it beyond the loop itself. Its log lines are the data plane's
(logger ``rahcp_prefect.client.dataplane``), as they were before the loop had a module.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from time import monotonic
from typing import TYPE_CHECKING, TypeVar

import aiohttp

from .errors import PresignedTransferError
from .presigned_answers import _TryAgain
from .redaction import redact_text
from .retry import RetryBudget
from .tls import certificate_error, certificate_problem

if TYPE_CHECKING:
    from .bandwidth import Bandwidth

logger = logging.getLogger("rahcp_prefect.client.dataplane")

T = TypeVar("T")

TRANSPORT_ERRORS = (aiohttp.ClientError, asyncio.TimeoutError, ConnectionError)
DISCONNECTS = (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)
"""A connection closed under a request (often a stale keep-alive one): the first retry is
immediate, as aiohttp's own hidden retry was, but goes through the counted retry loop.
(A refused connection, ``ClientConnectorError``, backs off as usual.)"""
FATAL_TRANSPORT_ERRORS = (aiohttp.InvalidURL, aiohttp.ClientConnectorCertificateError)
"""Transport errors another try cannot fix: raised at once."""


class RetryLoop:
    """``_retrying``: the loop every request of a data plane goes through; the data plane sets
    the attributes below and reads the two counters."""

    max_retries: int
    retry_base_delay: float
    retry_deadline: float
    bandwidth: Bandwidth | None
    retries: int
    throttled: int

    async def _retrying(
        self,
        method: str,
        what: str,
        attempt: Callable[[], Awaitable[tuple[T, int]]],
        size: int | None = None,
    ) -> T:
        """Run ``attempt`` (which returns its result and the HTTP status) with retries.

        The retry budget is made at the first failure, counted from the first attempt's start:
        a request that goes through (nearly all) pays one clock read, not a budget."""
        budget: RetryBudget | None = None
        first = monotonic()
        started = first
        while True:
            throttled = False
            try:
                result, status = await attempt()
            except _TryAgain as failure:
                reason, status, retry_after = failure.reason, failure.status, failure.retry_after
                throttled = failure.throttled
            except FATAL_TRANSPORT_ERRORS as exc:
                problem = certificate_problem(exc)
                if problem is not None:
                    host = f"{exc.host}:{exc.port}" if isinstance(exc, aiohttp.ClientConnectorError) else "S3"
                    raise certificate_error(host, problem, f"presigned URLs, {what}") from None
                logger.error("%s %s failed: %s", method, what, _describe(exc))
                raise PresignedTransferError(f"{_describe(exc)} for {what}") from None
            except TRANSPORT_ERRORS as exc:
                reason, status, retry_after = _describe(exc), 0, None
                if budget is None and _dropped(exc):  # the first retry of a dropped connection
                    retry_after = 0.0
            else:
                if method == "GET" and self.bandwidth is not None:
                    await self.bandwidth.take(_byte_count(result, size))
                if logger.isEnabledFor(logging.DEBUG):
                    logger.debug(
                        "%s %s -> %d (%.1f ms, %d bytes)",
                        method,
                        what,
                        status,
                        (monotonic() - started) * 1000,
                        _byte_count(result, size),
                    )
                return result
            if budget is None:
                budget = RetryBudget(self.max_retries, self.retry_base_delay, self.retry_deadline, started=first)
            if throttled:
                self.throttled += 1
            delay = budget.next_delay(throttled, retry_after)
            if delay is None:
                logger.debug(  # raised: the caller reports it (see _check)
                    "%s %s failed after %d attempts: %s",
                    method,
                    what,
                    budget.tries + 1,
                    f"{status} {reason}" if status else reason,
                )
                raise PresignedTransferError(f"{reason} for {what}", status)
            self.retries += 1
            logger.warning(
                "%s %s: %s; retry %s in %.2f s",
                method,
                what,
                f"{status} {reason}" if status else reason,
                f"{budget.tries} (throttled)" if throttled else f"{budget.tries}/{self.max_retries}",
                delay,
            )
            await asyncio.sleep(delay)
            started = monotonic()


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
