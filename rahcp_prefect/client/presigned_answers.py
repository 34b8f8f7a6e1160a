"""What an S3 answer on a presigned URL means: done, worth another try, or an error naming the
object (never the URL). The data plane's retry loop (``dataplane.DataPlane``) acts on it.
"""

from __future__ import annotations

import logging
import re

import aiohttp

from .errors import ObjectChangedError, PresignedTransferError
from .retry import THROTTLE_CODES, THROTTLE_STATUSES, parse_retry_after

logger = logging.getLogger(__name__)

RETRYABLE_STATUSES = frozenset({408, 425, 429})
"""Retried on the data plane, together with every 5xx."""

RETRYABLE_CODES = frozenset({b"BadDigest"})
"""S3 error codes retried whatever their status: ``BadDigest`` (400) means the body S3
received does not hash to the ``Content-MD5`` sent, i.e. it was damaged on the way."""

_S3_CODE = re.compile(rb"<Code>([A-Za-z0-9.]{1,64})</Code>")


def is_retryable(status: int) -> bool:
    """Whether a data plane answer of ``status`` is worth another try (whatever its S3 code)."""
    return status in RETRYABLE_STATUSES or status >= 500


class _TryAgain(Exception):
    """Internal to the data plane: this attempt failed in a way worth another try."""

    def __init__(
        self, reason: str, status: int = 0, retry_after: float | None = None, throttled: bool = False
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.retry_after = retry_after
        self.throttled = throttled
        """The store said it is overloaded (429, 503, ``SlowDown``): retried until the deadline."""


async def check_answer(response: aiohttp.ClientResponse, what: str) -> None:
    """Return on 2xx; raise ``_TryAgain`` for a retryable status, ``PresignedTransferError`` otherwise."""
    status = response.status
    if status < 300:
        return
    body = await response.read()
    code = _S3_CODE.search(body[:4096])
    reason = f"{response.reason or 'HTTP error'}"
    if code:
        reason += f" ({code.group(1).decode()})"
    name = code.group(1) if code is not None else None
    throttled = status in THROTTLE_STATUSES or name in THROTTLE_CODES
    if throttled or is_retryable(status) or name in RETRYABLE_CODES:
        raise _TryAgain(reason, status, parse_retry_after(response.headers.get("Retry-After")), throttled)
    # Not logged above DEBUG: the error is raised and its caller reports it (the bulk engine
    # once per run for the first failures, then as counts: never one line per file).
    logger.debug("%s %s -> %d %s", response.method, what, status, reason)
    raise PresignedTransferError(f"{reason} for {what}", status)


def check_range(
    response: aiohttp.ClientResponse, offset: int, length: int, total: int | None, what: str
) -> None:
    """The answer must be the range asked for (206 with a matching ``Content-Range``) of an
    object of ``total`` bytes (when given)."""
    answered = response.headers.get("Content-Range", "")
    size = answered.rpartition("/")[2]
    if total is not None and response.status == 206 and size.isdigit() and int(size) != total:
        raise ObjectChangedError(f"{what} is {size} bytes, expected {total}")
    wanted = f"bytes {offset}-{offset + length - 1}/"
    if response.status != 206 or not answered.startswith(wanted):
        raise PresignedTransferError(
            f"Range {offset}-{offset + length - 1} of {what} answered {response.status} "
            f"{response.headers.get('Content-Range', 'without Content-Range')}",
            response.status,
        )
