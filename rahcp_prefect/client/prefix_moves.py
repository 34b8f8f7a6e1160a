"""Every object under a prefix moved or deleted, one listing page at a time.

The SDK's staging pattern (``S3Ops.commit_staging``, ``S3Ops.cleanup_staging``) and the job's
commit (``job.commit.move_staged``) share these two object operations. ``move_prefix`` deletes a
page's sources only once every object of that page is placed, so a crash half-way leaves each
object under the source prefix, or placed, or both: running it again finishes. The pages flow
without a pause between them: the next page is listed while one is placed, and a page's copies
start while the tail of the one before is still in flight and its sources are being deleted
(one window of copies across both). How one object is placed is the caller's ``place``; this
module counts what it answers. Memory: three pages (3,000 objects) at most, whatever the prefix
holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from time import perf_counter
from typing import TYPE_CHECKING, Any

from rahcp_prefect import defaults

from .concurrency import AdaptiveWindow, client_signals
from .errors import AuthenticationError
from .gather import gather_all
from .listing import BATCH
from .refusals import raise_on_delete_errors

if TYPE_CHECKING:
    from .client import HCPClient

logger = logging.getLogger(__name__)

COPY_CONCURRENCY = defaults.COMMIT_CONCURRENCY
"""Server-side copies in flight at first, unless the caller says otherwise."""

PAGES_PLACED_AT_ONCE = 2
"""Pages whose copies may be in flight together: the next page's copies queue behind the tail
of the one before, so the window does not drain at each page's end."""

Place = Callable[[str, str, dict[str, Any]], Awaitable[str]]
"""``place(dest_bucket, dest_key, source listing record)`` puts one object on its new key and
says how (e.g. ``S3Ops.place``'s ``PLACED`` or ``REPLACED``); its answers are counted."""


@dataclass
class PrefixMoves:
    """What ``move_prefix`` did: how many objects each answer of ``place`` was given for
    (``outcomes``), the bytes they hold, the sources that may not be deleted (``kept``: 403,
    a retention or hold) and the range of copies in flight (``window``, e.g. ``8 to 64``)."""

    outcomes: Counter[str] = field(default_factory=Counter)
    bytes: int = 0
    kept: int = 0
    window: str = ""

    @property
    def objects(self) -> int:
        """Objects handed to ``place``."""
        return sum(self.outcomes.values())


async def move_prefix(
    client: HCPClient,
    bucket: str,
    prefix: str,
    dest_prefix: str,
    place: Place | None = None,
    *,
    dest_bucket: str | None = None,
    concurrency: int = COPY_CONCURRENCY,
    max_concurrency: int = defaults.MAX_WORKERS,
    on_progress: Callable[[int, int], Any] | None = None,
    page_size: int = BATCH,
) -> PrefixMoves:
    """Move every object under ``bucket/prefix`` to ``dest_bucket/dest_prefix`` (default: the
    same bucket), each by ``place`` (default: ``S3Ops.place``, a copy or the safe replace where
    the namespace refuses overwrites; a retained destination raises ``RetentionError``); the
    sources of a page are deleted once all of it is placed.

    The copies in flight follow an adaptive window (``concurrency`` at first, up to
    ``max_concurrency`` while copies per second rise with it, fewer while the API throttles or
    fails; ``max_concurrency <= concurrency``: fixed). A source that may not be deleted (403: a
    default retention) stays, counted in ``kept``; the moves go on. ``on_progress(objects,
    bytes)`` is called after every object (a move of a million objects takes hours: the caller
    throttles what it shows); a failing callback is logged, never allowed to stop the moves.
    """
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, got {concurrency}")
    if not prefix:
        raise ValueError("the prefix to move must not be empty (it would move the whole bucket)")
    target = dest_bucket or bucket
    if target == bucket and dest_prefix.startswith(prefix):
        raise ValueError(f"dest_prefix {dest_prefix!r} lies inside the prefix to move, {prefix!r}")
    placer = place or partial(_place, client, bucket)
    moves = PrefixMoves()
    started = perf_counter()
    window = AdaptiveWindow(concurrency, client_signals(client, data_plane=False), cap=max_concurrency)

    async def place_one(item: dict[str, Any]) -> None:
        key = item["Key"]
        outcome = await window.run(lambda: placer(target, dest_prefix + key[len(prefix) :], item))
        moves.outcomes[outcome] += 1
        moves.bytes += int(item.get("Size", 0) or 0)
        if on_progress is not None:
            try:
                on_progress(moves.objects, moves.bytes)
            except Exception:
                logger.exception("commit on_progress callback failed")

    async def move_page(items: list[dict[str, Any]]) -> None:
        await gather_all(place_one(item) for item in items)  # the window lets them in in order
        moves.kept += len(await delete_unless_retained(client, bucket, [item["Key"] for item in items]))

    moving: deque[asyncio.Task[None]] = deque()
    try:
        async with contextlib.aclosing(client.s3.pages_ahead(bucket, prefix, page_size)) as pages:
            async for page in pages:
                items = page.get("objects", [])
                if not items:
                    continue
                if len(moving) == PAGES_PLACED_AT_ONCE:
                    await _first_done(moving)
                moving.append(asyncio.ensure_future(move_page(items)))
        while moving:
            await _first_done(moving)
    finally:
        for task in moving:
            task.cancel()
        await asyncio.gather(*moving, return_exceptions=True)
    moves.window = window.range_text()
    logger.info(
        "Moved %d object(s) %s/%s -> %s/%s in %.2f s (%s; %d kept at the source; copies in flight %s)",
        moves.objects, bucket, prefix, target, dest_prefix, perf_counter() - started,
        ", ".join(f"{count} {outcome}" for outcome, count in sorted(moves.outcomes.items())) or "none",
        moves.kept, moves.window,
    )
    return moves


async def _first_done(moving: deque[asyncio.Task[None]]) -> None:
    """Wait until the oldest page is moved, and raise at once when any page fails."""
    oldest = moving[0]
    while not oldest.done():
        await asyncio.wait([task for task in moving if not task.done()], return_when=asyncio.FIRST_COMPLETED)
        for task in moving:
            if task.done():
                task.result()  # a failed page stops the moves now, not when its turn comes
    moving.popleft().result()  # also when it had failed before this call: never passed over


async def _place(client: HCPClient, bucket: str, dest_bucket: str, dest_key: str, item: dict[str, Any]) -> str:
    """``move_prefix``'s default ``place``: ``S3Ops.place`` from ``bucket``."""
    return await client.s3.place(dest_bucket, dest_key, bucket, item)


async def delete_prefix(
    client: HCPClient,
    bucket: str,
    prefix: str,
    before_delete: Callable[[list[str]], object] | None = None,
    kept: list[str] | None = None,
) -> int:
    """Delete every object under ``prefix`` (bulk, 1000 at a time) after aborting its open
    multipart uploads; return the count deleted.

    ``before_delete(keys)`` is called with each page's keys before they are deleted. Objects
    that may not be deleted (403: a default retention) stay, are appended to ``kept`` when
    given and not counted; any other delete failure raises.
    """
    if not prefix:
        raise ValueError("the prefix to delete must not be empty (it would empty the whole bucket)")
    # Open multipart uploads first: one completing later would put an object back.
    await client.s3.abort_multipart_uploads(bucket, prefix)
    removed = 0
    async for page in client.s3.pages(bucket, prefix):
        keys = [item["Key"] for item in page.get("objects", [])]
        if keys:
            if before_delete is not None:
                before_delete(keys)
            stayed = await delete_unless_retained(client, bucket, keys)
            removed += len(keys) - len(stayed)
            if kept is not None:
                kept.extend(stayed)
    logger.info("Cleaned up %d object(s) under %s/%s", removed, bucket, prefix)
    return removed


async def delete_unless_retained(client: HCPClient, bucket: str, keys: list[str]) -> list[str]:
    """Delete ``keys`` in bulk; returns those the namespace refused to delete (403
    AccessDenied: a retention or hold), raises on any other failure."""
    try:
        result = await client.s3.delete_bulk(bucket, keys)
    except AuthenticationError as exc:
        if exc.status_code != 403:
            raise
        logger.warning("Objects of %s may not be deleted (retention or hold): %d object(s) stay", bucket, len(keys))
        return list(keys)
    errors = result.get("errors") or []
    refused = [str(e.get("Key")) for e in errors if e.get("Code") == "AccessDenied"]
    raise_on_delete_errors({"errors": [e for e in errors if e.get("Code") != "AccessDenied"]}, bucket)
    return refused
