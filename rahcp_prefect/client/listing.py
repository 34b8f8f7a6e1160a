"""Buckets and what they hold (``client.s3``'s part that reads): buckets created, deleted and
listed, object listings one page or every page (the next one asked for ahead, by object or by
page), an object's metadata (HEAD). ``S3Ops`` is built on it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator
from typing import TYPE_CHECKING, Any

from rahcp_prefect.errors import on_bucket, on_object

from .keys import encode_bucket, object_path

if TYPE_CHECKING:
    from .client import HCPClient

BATCH = 1000
"""Keys per bulk delete / bulk presign request and objects per listing page."""


class Listing:
    """Buckets, listings and metadata through the HCP API."""

    _client: HCPClient

    async def list_buckets(self) -> dict[str, Any]:
        """``{"buckets": [{"Name", "CreationDate"}], "owner": {...}}``."""
        return await self._client.request_json("GET", "/buckets")

    @on_bucket
    async def create_bucket(self, bucket: str) -> dict[str, Any]:
        """Create a bucket (409 ``ConflictError`` when it exists on real S3)."""
        return await self._client.request_json("POST", "/buckets", json={"bucket": bucket})

    @on_bucket
    async def delete_bucket(self, bucket: str, *, force: bool = False) -> dict[str, Any]:
        """Delete a bucket; ``force`` deletes its objects first."""
        params = {"force": "true"} if force else None
        return await self._client.request_json("DELETE", f"/buckets/{encode_bucket(bucket)}", params=params)

    @on_bucket
    async def list_objects(
        self,
        bucket: str,
        prefix: str = "",
        max_keys: int = 1000,
        delimiter: str | None = None,
        continuation_token: str | None = None,
    ) -> dict[str, Any]:
        """One page: ``{"objects": [{"Key", "Size", "ETag", ...}], "common_prefixes",
        "is_truncated", "next_continuation_token", "key_count"}``."""
        params: dict[str, Any] = {"max_keys": max_keys}
        if prefix:
            params["prefix"] = prefix
        if delimiter:
            params["delimiter"] = delimiter
        if continuation_token:
            params["continuation_token"] = continuation_token
        return await self._client.request_json(
            "GET", f"/buckets/{encode_bucket(bucket)}/objects", params=params
        )

    async def iter_objects(
        self, bucket: str, prefix: str = "", page_size: int = 1000, first_page: int | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        """Every object under ``prefix`` (dicts with ``Key``, ``Size``, ``ETag``...), page by page.

        The next page is requested once the caller is half-way through a page, so its latency
        overlaps the work on the rest (one page ahead at most). ``first_page`` (when smaller
        than ``page_size``) is the first page's size: a store answers a short page sooner, so
        a caller that starts work on the first keys (a download's GETs) starts it sooner.
        """
        first = min(first_page, page_size) if first_page else page_size
        pending: asyncio.Future[dict[str, Any]] | None = asyncio.ensure_future(
            self.list_objects(bucket, prefix, max_keys=first)
        )
        try:
            while pending is not None:
                page = await pending
                pending = None
                token = page.get("next_continuation_token")
                objects = page.get("objects", [])
                ask_at = len(objects) // 2 if page.get("is_truncated") and token else -1
                for index, item in enumerate(objects):
                    if index == ask_at:
                        pending = asyncio.ensure_future(
                            self.list_objects(bucket, prefix, max_keys=page_size, continuation_token=token)
                        )
                    yield item
                if ask_at >= 0 and pending is None:  # a truncated page without objects
                    pending = asyncio.ensure_future(
                        self.list_objects(bucket, prefix, max_keys=page_size, continuation_token=token)
                    )
        finally:
            if pending is not None:  # the caller stopped early: drop the page asked for ahead
                pending.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await pending

    async def pages_ahead(
        self, bucket: str, prefix: str = "", page_size: int = BATCH
    ) -> AsyncGenerator[dict[str, Any], None]:
        """``pages``, the next one asked for as soon as one is handed out, so its listing
        overlaps the caller's work on this one. It lists the keys after the page handed out:
        the caller may still delete what a page lists (earlier keys change nothing). Close it
        (``contextlib.aclosing``) when stopping early: that drops the page asked for ahead."""
        source = self.pages(bucket, prefix, page_size)
        pending: asyncio.Future[dict[str, Any]] = asyncio.ensure_future(anext(source))
        try:
            while True:
                try:
                    page = await pending
                except StopAsyncIteration:
                    return
                pending = asyncio.ensure_future(anext(source))
                yield page
        finally:
            pending.cancel()
            await asyncio.gather(pending, return_exceptions=True)
            await source.aclose()

    @on_object
    async def head(self, bucket: str, key: str) -> dict[str, str]:
        """Object metadata: the response headers with lower-case names
        (``content-length``, ``content-type``, ``etag``, ``last-modified``)."""
        response = await self._client.request("HEAD", object_path(bucket, key))
        return {name.lower(): value for name, value in response.headers.items()}

    async def iter_prefixes(
        self, bucket: str, prefix: str = "", delimiter: str = "/", page_size: int = BATCH
    ) -> AsyncIterator[str]:
        """The common prefixes one level below ``prefix`` (``dir/`` "folders"), every page."""
        async for page in self.pages(bucket, prefix, page_size, delimiter):
            for common in page.get("common_prefixes", []):
                yield common

    async def pages(
        self, bucket: str, prefix: str = "", page_size: int = BATCH, delimiter: str | None = None
    ) -> AsyncGenerator[dict[str, Any], None]:
        """Every listing page under ``prefix``, one after the other (``list_objects`` answers):
        the caller may delete what a page lists before it asks for the next."""
        token: str | None = None
        while True:
            page = await self.list_objects(
                bucket, prefix, max_keys=page_size, delimiter=delimiter, continuation_token=token
            )
            yield page
            token = page.get("next_continuation_token")
            if not page.get("is_truncated") or not token:
                return
