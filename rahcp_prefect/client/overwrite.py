"""Writing onto a name the namespace may refuse: the one rule every write of one object follows.

HCP decides per namespace (``hcp-api.md`` section 11): a PUT, a copy or a multipart complete
onto an existing key is stored (a new version, or the overwrite option replaces it) or refused
with 409 (versioning and the overwrite option off, HCP's default). Where it is refused the old
object is deleted and the write made again, retried with backoff while HCP still refuses the
name for a moment just after the delete; an object under retention or on hold is never deleted
(``RetentionError``). The SDK's ``S3Ops.write`` / ``place`` / ``replace``, the engine's resend
and the job's tag files all go through here, so the rule lives in one place.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from .errors import HCPError, RetryableError
from .retry import backoff_delay

logger = logging.getLogger(__name__)

T = TypeVar("T")

REPLACE_ATTEMPTS = 6
REPLACE_DELAY = 0.5
"""A write just after a delete (a safe replace's copy, the engine's resend): attempts in all,
and the first backoff (seconds)."""


def overwrite_refused(exc: BaseException) -> bool:
    """A write refused because the name is taken and the namespace keeps no versions and has
    its overwrite option off: 409 from a presigned PUT, a copy or a multipart complete."""
    return isinstance(exc, HCPError) and exc.status_code == 409


def refused_for_a_moment(exc: BaseException) -> bool:
    """What HCP may answer a write for a moment after the object was deleted: 409 (the name
    not yet free) or busy (retryable statuses that outlasted the client's own retries)."""
    return isinstance(exc, RetryableError) or overwrite_refused(exc)


async def write_after_delete(
    write: Callable[[], Awaitable[T]], what: str, *, attempts: int = REPLACE_ATTEMPTS, base_delay: float = REPLACE_DELAY
) -> T:
    """``write`` onto a name just deleted, retried with backoff while HCP refuses it for a
    moment (``refused_for_a_moment``), ``attempts`` times in all; other errors pass at once."""
    for attempt in range(attempts):
        try:
            return await write()
        except HCPError as exc:
            if not refused_for_a_moment(exc) or attempt + 1 >= attempts:
                raise
            logger.info("Write of %s after its delete refused (%s), retrying", what, exc)
            await asyncio.sleep(backoff_delay(attempt, base_delay))
    raise AssertionError("unreachable: attempts must be at least 1")


async def replace_by_delete(
    write: Callable[[], Awaitable[T]],
    delete: Callable[[], Awaitable[Any]],
    what: str,
    *,
    attempts: int = REPLACE_ATTEMPTS,
    base_delay: float = REPLACE_DELAY,
) -> T:
    """The replace for a namespace that refuses overwrites: ``delete()`` the old object (it
    raises ``RetentionError`` when the object is retained or held), then ``write()`` with
    ``write_after_delete``. The write's source must outlive a kill in between (a local file,
    a staged object): calling this again finishes."""
    await delete()
    return await write_after_delete(write, what, attempts=attempts, base_delay=base_delay)


async def write_over(
    write: Callable[[], Awaitable[T]], delete: Callable[[], Awaitable[Any]], what: str
) -> tuple[T, bool]:
    """``write()`` wherever the namespace allows it, else (``overwrite_refused``) the replace
    (``replace_by_delete``). Returns what the write returned and whether it replaced."""
    try:
        return await write(), False
    except HCPError as exc:
        if not overwrite_refused(exc):
            raise
        logger.info("%s exists and the namespace refused the overwrite: replacing it", what)
    return await replace_by_delete(write, delete, what), True
