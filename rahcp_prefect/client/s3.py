"""``S3Ops`` (``client.s3``): uploads, downloads, presigning, listing, metadata, delete, copy
and the staging pattern, over the HCP API (control plane) and presigned URLs (data plane).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from time import perf_counter
from typing import TYPE_CHECKING, Any, TypeVar

from rahcp_prefect import defaults
from rahcp_prefect.errors import on_bucket, on_object

from .concurrency import AdaptiveWindow, client_signals
from .digests import Uploaded, bare_etag
from .errors import (
    AuthenticationError,
    ChecksumMismatchError,
    ConflictError,
    HCPError,
    NotFoundError,
    ObjectChangedError,
    OverwriteRefusedError,
    PresignedTransferError,
    RetentionError,
    RetryableError,
)
from .gather import gather_all
from .keys import check_key, encode_bucket, multipart_path, object_path
from .multipart import MultipartUpload, part_size_for
from .overwrite import REPLACE_ATTEMPTS, REPLACE_DELAY, replace_by_delete, write_over
from .represign import presigned_transfer
from .resume import PartStore
from .tracing import span

if TYPE_CHECKING:
    from .client import HCPClient

logger = logging.getLogger(__name__)

T = TypeVar("T")

PRESIGN_EXPIRES = defaults.PRESIGN_EXPIRES
BATCH = 1000
"""Keys per bulk delete / bulk presign request and objects per listing page."""
COPY_CONCURRENCY = defaults.COMMIT_CONCURRENCY
"""Server-side copies in flight during ``commit_staging``, unless the caller says otherwise."""
Source = bytes | bytearray | memoryview | os.PathLike

PLACED, REPLACED, LEFT = "placed", "replaced", "left"
"""What ``move_staging``'s ``place`` did with one staged object: copied to its final key,
put there by a safe replace, or left out (its final object may not be replaced)."""
PlaceFn = Callable[[str, str, dict[str, Any]], Awaitable[str]]
"""``place(dest_bucket, dest_key, staged listing record)`` -> PLACED, REPLACED or LEFT."""


@dataclass
class StagingMoves:
    """What ``move_staging`` did: objects placed (``replaced`` of them by a safe replace),
    staged keys ``left`` out (their final object may not be replaced), staged keys ``kept``
    (placed or left, but staging may not be deleted: retention)."""

    moved: int = 0
    replaced: int = 0
    left: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    window: str = ""
    """The range of copies in flight (the adaptive window), e.g. ``8 to 64``."""


class S3Ops:
    """S3 operations through the HCP API; file bytes go straight to S3 on presigned URLs."""

    def __init__(self, client: HCPClient) -> None:
        self._client = client

    # -- uploads ---------------------------------------------------------------------------

    @on_object
    async def upload(self, bucket: str, key: str, data: Source, *, chunk_size: int = defaults.CHUNK_SIZE) -> str:
        """Upload bytes or a file; presigned PUT below ``multipart_threshold``, multipart at or
        above it. Returns the ETag (quoted, as S3 sends it). Onto an existing key an HCP
        namespace without versions or the overwrite option refuses it (409): ``write`` replaces."""
        check_key(key)
        source, size = _source(data)
        if size > 0 and size >= self._client.config.multipart_threshold:
            return await self.upload_multipart(bucket, key, source, chunk_size=chunk_size)
        what = f"{bucket}/{key}"
        started = perf_counter()
        with span("s3.upload", {"s3.bucket": bucket, "s3.key": key, "s3.bytes": size}):
            if isinstance(source, Path):

                async def transfer(url: str) -> Uploaded:
                    return await self._client.data.put_file(
                        url, source, size, what=what, chunk_size=chunk_size
                    )

            else:

                async def transfer(url: str) -> Uploaded:
                    return await self._client.data.put_bytes(
                        url, source, what=what, chunk_size=chunk_size  # type: ignore[arg-type]
                    )

            sent = await self._presigned(lambda: self.presign_put(bucket, key), transfer, what)
        logger.info("Uploaded %s: %d bytes in %.3f s", what, size, perf_counter() - started)
        return sent.etag

    @on_object
    async def upload_multipart(
        self,
        bucket: str,
        key: str,
        data: Source,
        *,
        concurrency: int | None = None,
        chunk_size: int = defaults.CHUNK_SIZE,
        resume: PartStore | None = None,
    ) -> str:
        """Multipart upload with ``concurrency`` parts in flight (default ``multipart_concurrency``).

        Part size is ``max(multipart_chunk, 5 MiB, ceil(size / 10000))`` rounded up to a MiB; the
        upload is aborted on any failure. An empty source falls back to a single PUT. Returns
        the ETag; ``upload_multipart_digests`` also returns what the parts hashed to.

        ``resume`` (a ``PartStore``, e.g. the tracker) records each part as it is acknowledged;
        a later call for the same unchanged file sends only the parts the server does not hold
        as recorded, then completes (files only; see ``client.resume``).
        """
        sent = await self.upload_multipart_digests(
            bucket, key, data, concurrency=concurrency, chunk_size=chunk_size, resume=resume
        )
        return sent.etag

    @on_object
    async def upload_multipart_digests(
        self,
        bucket: str,
        key: str,
        data: Source,
        *,
        concurrency: int | None = None,
        chunk_size: int = defaults.CHUNK_SIZE,
        resume: PartStore | None = None,
    ) -> Uploaded:
        """``upload_multipart``, returning the ETag with the digests of the bytes sent (the
        whole file's SHA-256, each part's MD5). An object whose final ETag is not the digest of
        the parts sent is uploaded once more, then ``ChecksumMismatchError``."""
        check_key(key)
        source, size = _source(data)
        if size == 0:
            return await self._put_empty(bucket, key)
        config = self._client.config
        attributes = {"s3.bucket": bucket, "s3.key": key, "s3.bytes": size}
        for attempt in (1, 2):
            upload = MultipartUpload(
                self._client,
                bucket,
                key,
                source,
                size,
                part_size=part_size_for(size, config.multipart_chunk),
                concurrency=concurrency or config.multipart_concurrency,
                chunk_size=chunk_size,
                resume=resume,
            )
            with span("s3.upload_multipart", attributes):
                try:
                    return await upload.run()
                except ChecksumMismatchError as exc:
                    if attempt == 2:
                        raise
                    logger.warning("%s; uploading it again", exc)
        raise AssertionError("unreachable")

    async def _put_empty(self, bucket: str, key: str) -> Uploaded:
        what = f"{bucket}/{key}"

        async def transfer(url: str) -> Uploaded:
            return await self._client.data.put_bytes(url, b"", what=what)

        return await self._presigned(lambda: self.presign_put(bucket, key), transfer, what)

    # -- downloads -------------------------------------------------------------------------

    @on_object
    async def download(self, bucket: str, key: str, dest: os.PathLike | str, *, chunk_size: int = defaults.CHUNK_SIZE) -> int:
        """Stream an object to ``dest``; return its size in bytes.

        Bytes land in a temporary file in the same folder, renamed to ``dest`` only when complete;
        on failure the temporary file is removed and ``dest`` is left as it was.
        """
        check_key(key)
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        temp = dest.with_name(f".{dest.name[:200]}.{secrets.token_hex(4)}.part")
        what = f"{bucket}/{key}"
        started = perf_counter()
        with span("s3.download", {"s3.bucket": bucket, "s3.key": key}) as current:
            try:

                async def transfer(url: str) -> int:
                    return await self._client.data.get_to_file(url, temp, what=what, chunk_size=chunk_size)

                size = await self._presigned(lambda: self.presign_get(bucket, key), transfer, what)
                os.replace(temp, dest)
            finally:
                temp.unlink(missing_ok=True)
            current.set_attribute("s3.bytes", size)
        logger.info("Downloaded %s: %d bytes in %.3f s", what, size, perf_counter() - started)
        return size

    @on_object
    async def download_bytes(self, bucket: str, key: str) -> bytes:
        """The whole object in memory."""
        check_key(key)
        what = f"{bucket}/{key}"
        with span("s3.download", {"s3.bucket": bucket, "s3.key": key}) as current:

            async def transfer(url: str) -> bytes:
                return await self._client.data.get_bytes(url, what=what)

            data = await self._presigned(lambda: self.presign_get(bucket, key), transfer, what)
            current.set_attribute("s3.bytes", len(data))
        return data

    async def _presigned(
        self,
        presign: Callable[[], Awaitable[str]],
        transfer: Callable[[str], Awaitable[T]],
        what: str,
    ) -> T:
        """Presign and transfer; a 403 (e.g. an expired URL) presigns once more and retries.

        A 404 from S3 becomes ``NotFoundError``.
        """
        try:
            return await presigned_transfer(presign, transfer)
        except PresignedTransferError as exc:
            if exc.status_code == 404:
                raise NotFoundError(f"{what}: The specified key does not exist.", 404) from exc
            raise

    # -- presigned URLs --------------------------------------------------------------------

    @on_object
    async def presign_get(self, bucket: str, key: str, expires: int = PRESIGN_EXPIRES) -> str:
        """A presigned GET URL (a secret: it grants access until it expires)."""
        return await self._presign(bucket, key, "get_object", expires)

    @on_object
    async def presign_put(self, bucket: str, key: str, expires: int = PRESIGN_EXPIRES) -> str:
        """A presigned PUT URL (a secret: it grants access until it expires)."""
        return await self._presign(bucket, key, "put_object", expires)

    async def _presign(self, bucket: str, key: str, method: str, expires: int) -> str:
        check_key(key)
        answer = await self._client.request_json(
            "POST",
            "/presign",
            json={"bucket": bucket, "key": key, "method": method, "expires_in": expires},
        )
        return answer["url"]

    @on_bucket
    async def presign_bulk(
        self,
        bucket: str,
        keys: Sequence[str],
        method: str = "get_object",
        expires: int = PRESIGN_EXPIRES,
    ) -> dict[str, str]:
        """Presign many keys, ``{key: url}``, 1000 per request; keys the server left out are
        presigned one by one with ``/presign``."""
        for key in keys:
            check_key(key)
        urls: dict[str, str] = {}
        path = f"/buckets/{encode_bucket(bucket)}/objects/presign"
        for start in range(0, len(keys), BATCH):
            batch = list(keys[start : start + BATCH])
            answer = await self._client.request_json(
                "POST", path, json={"keys": batch, "method": method, "expires_in": expires}
            )
            urls.update({item["key"]: item["url"] for item in answer.get("urls", [])})
        missing = [key for key in dict.fromkeys(keys) if key not in urls]
        if missing:
            logger.info("Bulk presign left out %d key(s) of %s: presigning one by one", len(missing), bucket)
            for key in missing:
                urls[key] = await self._presign(bucket, key, method, expires)
        return urls

    # -- buckets, listing, metadata --------------------------------------------------------

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
        self, bucket: str, prefix: str = "", page_size: int = 1000
    ) -> AsyncIterator[dict[str, Any]]:
        """Every object under ``prefix`` (dicts with ``Key``, ``Size``, ``ETag``...), page by page.

        The next page is requested once the caller is half-way through a page, so its latency
        overlaps the work on the rest (one page ahead at most).
        """
        pending: asyncio.Future[dict[str, Any]] | None = asyncio.ensure_future(
            self.list_objects(bucket, prefix, max_keys=page_size)
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

    @on_object
    async def head(self, bucket: str, key: str) -> dict[str, str]:
        """Object metadata: the response headers with lower-case names
        (``content-length``, ``content-type``, ``etag``, ``last-modified``)."""
        response = await self._client.request("HEAD", object_path(bucket, key))
        return {name.lower(): value for name, value in response.headers.items()}

    # -- delete and copy -------------------------------------------------------------------

    @on_object
    async def delete(self, bucket: str, key: str) -> dict[str, Any]:
        """Delete one object (a missing key is not an error); ``RetentionError`` on a 403 (an
        object under retention or on hold)."""
        try:
            return await self._client.request_json("DELETE", object_path(bucket, key))
        except AuthenticationError as exc:
            raise _refused(exc, bucket, key, "deleted") from None

    @on_bucket
    async def delete_bulk(self, bucket: str, keys: Sequence[str]) -> dict[str, Any]:
        """Delete many keys, 1000 per request: ``{"status", "deleted": int, "errors": [...]}``."""
        for key in keys:
            check_key(key)
        path = f"/buckets/{encode_bucket(bucket)}/objects/delete"
        deleted = 0
        errors: list[dict[str, Any]] = []
        for start in range(0, len(keys), BATCH):
            answer = await self._client.request_json(
                "POST", path, json={"keys": list(keys[start : start + BATCH])}
            )
            deleted += int(answer.get("deleted", 0))
            errors.extend(answer.get("errors") or [])
        return {"status": "deleted", "deleted": deleted, "errors": errors}

    @on_object
    async def copy(self, dest_bucket: str, dest_key: str, src_bucket: str, src_key: str) -> dict[str, Any]:
        """Server-side copy of ``src_bucket/src_key`` to ``dest_bucket/dest_key``."""
        check_key(src_key)
        try:
            return await self._client.request_json(
                "POST",
                object_path(dest_bucket, dest_key, "/copy"),
                json={"source_bucket": src_bucket, "source_key": src_key},
            )
        except ConflictError as exc:
            raise OverwriteRefusedError(
                f"{dest_bucket}/{dest_key} exists and the namespace refused to overwrite it: it keeps no "
                "versions and its overwrite option is off (turn versioning or the overwrite option on, or "
                f"replace it by delete + copy); {exc.message}",
                exc.status_code,
            ) from None
        except AuthenticationError as exc:
            raise _refused(exc, dest_bucket, dest_key, "overwritten") from None

    @on_object
    async def replace(
        self,
        dest_bucket: str,
        dest_key: str,
        src_bucket: str,
        src_key: str,
        etag: str,
        *,
        size: int | None = None,
        check: bool = True,
        attempts: int = REPLACE_ATTEMPTS,
        base_delay: float = REPLACE_DELAY,
    ) -> None:
        """The safe replace, for a namespace that refuses overwrites: delete ``dest``, copy
        ``src`` onto it, then check that ``dest`` has ``etag`` (the source's).

        The source is untouched, so a process killed between the delete and the copy loses
        nothing: calling this again (or a plain copy) finishes. HCP may still refuse the copy
        (409) or be busy for a moment after the delete: the copy is retried with backoff,
        ``attempts`` times in all. ``check=False`` leaves the ETag check (a HEAD) to the caller
        (the job's final check lists every ETag anyway). ``RetentionError`` when ``dest`` may not be deleted;
        ``ObjectChangedError`` when ``dest`` does not end up with ``etag`` (and ``size``).
        """
        await replace_by_delete(
            lambda: self.copy(dest_bucket, dest_key, src_bucket, src_key),
            lambda: self.delete(dest_bucket, dest_key),
            f"{dest_bucket}/{dest_key}",
            attempts=attempts, base_delay=base_delay,
        )
        if check and not await self.holds(dest_bucket, dest_key, etag, size):
            raise ObjectChangedError(f"{dest_bucket}/{dest_key}: not the staged object after the replace (ETag {etag})")

    async def place(
        self, dest_bucket: str, dest_key: str, src_bucket: str, item: dict[str, Any], *, check: bool = True
    ) -> str:
        """Put one object (``item``: its listing record; without an ``ETag`` it is read with a
        HEAD when needed) on ``dest_key``, whatever the namespace allows: a copy (a versioned
        namespace stores a new version, one with the overwrite option replaces); where the copy
        is refused (409: no versions, no overwrite, HCP's default) the safe replace (``replace``;
        ``check``: its ETag HEAD). A refused copy onto these very bytes (a commit resumed after
        a kill) is replaced the same way: the source stays until then. Returns ``PLACED`` or
        ``REPLACED``; ``RetentionError`` when the final object is retained or on hold. A changed
        file costs three requests (the refused copy, the delete, the copy), a new one a single copy."""
        source = item["Key"]
        try:
            await self.copy(dest_bucket, dest_key, src_bucket, source)
            return PLACED
        except OverwriteRefusedError:
            pass  # replaced below, the source kept until it is in place
        if "ETag" not in item:
            found = await self.head(src_bucket, source)
            item = {**item, "ETag": found.get("etag", ""), "Size": int(found.get("content-length", 0))}
        etag, size = str(item.get("ETag") or ""), int(item.get("Size", 0) or 0)
        await self.replace(dest_bucket, dest_key, src_bucket, source, etag, size=size, check=check)
        return REPLACED

    @on_object
    async def copy_over(self, dest_bucket: str, dest_key: str, src_bucket: str, src_key: str) -> str:
        """Server-side copy of ``src_bucket/src_key`` onto ``dest_bucket/dest_key`` whatever the
        namespace allows (``place``): ``PLACED`` (a copy) or ``REPLACED`` (the safe replace
        where the namespace refuses overwrites); ``RetentionError`` when ``dest`` is retained
        or on hold."""
        return await self.place(dest_bucket, dest_key, src_bucket, {"Key": src_key})

    @on_object
    async def write(
        self,
        bucket: str,
        key: str,
        data: Source,
        *,
        chunk_size: int = defaults.CHUNK_SIZE,
        multipart: bool = False,
        exists: bool = False,
    ) -> str:
        """Upload bytes or a file onto ``key`` whatever the namespace allows (``upload``, or
        ``upload_multipart`` when ``multipart``): a new object, a new version, an overwrite
        where the option is on; where the namespace refuses (409: HCP's default) the old object
        is deleted and the bytes sent again (``overwrite.write_over``; the source is local, so
        a kill in between loses nothing). ``exists`` (a listing just showed the object): the
        delete comes first, sparing the refused PUT. Returns the ETag; ``RetentionError``
        naming the object when it is retained or on hold."""
        send = self.upload_multipart if multipart else self.upload

        async def put() -> str:
            return await send(bucket, key, data, chunk_size=chunk_size)

        async def delete() -> None:
            await self.delete(bucket, key)

        try:
            if exists:
                etag = await replace_by_delete(put, delete, f"{bucket}/{key}")
            else:
                etag, _ = await write_over(put, delete, f"{bucket}/{key}")
        except (AuthenticationError, PresignedTransferError) as exc:
            raise _refused(exc, bucket, key, "overwritten") from None
        return etag

    @on_object
    async def holds(self, bucket: str, key: str, etag: str, size: int | None = None) -> bool:
        """Whether ``bucket/key`` is there with ``etag`` (and ``size`` when given). An ETag of
        another form (a multipart ``-N`` against a plain MD5: a copy may rewrite it) is judged
        by the size alone."""
        try:
            found = await self.head(bucket, key)
        except NotFoundError:
            return False
        if size is not None and int(found.get("content-length", -1)) != size:
            return False
        theirs, ours = bare_etag(found.get("etag", "")), bare_etag(etag)
        if ("-" in theirs) != ("-" in ours):
            return size is not None
        return theirs == ours

    # -- staging ---------------------------------------------------------------------------

    @on_bucket
    async def commit_staging(
        self,
        bucket: str,
        staging_prefix: str,
        dest_prefix: str,
        concurrency: int = COPY_CONCURRENCY,
        on_progress: Callable[[int, int], Any] | None = None,
        max_concurrency: int = defaults.MAX_WORKERS,
    ) -> int:
        """Move every object under ``staging_prefix`` to ``dest_prefix``; return how many moved.

        ``move_staging`` with plain copies; see there.
        """
        moves = await self.move_staging(
            bucket, staging_prefix, dest_prefix, concurrency, on_progress, max_concurrency=max_concurrency
        )
        return moves.moved

    @on_bucket
    async def move_staging(
        self,
        bucket: str,
        staging_prefix: str,
        dest_prefix: str,
        concurrency: int = COPY_CONCURRENCY,
        on_progress: Callable[[int, int], Any] | None = None,
        *,
        dest_bucket: str | None = None,
        place: PlaceFn | None = None,
        max_concurrency: int = defaults.MAX_WORKERS,
    ) -> StagingMoves:
        """Move every object under ``bucket/staging_prefix`` to ``dest_bucket/dest_prefix``
        (default: the same bucket) and say what happened to each.

        Each page of the staging listing is placed, and only then the sources of that page
        deleted. The copies in flight follow an adaptive window (``concurrency`` at first, up to
        ``max_concurrency`` while copies per second rise with it, fewer while the API throttles
        or fails; ``max_concurrency <= concurrency``: fixed); its range is in ``window``. ``place(dest_bucket, dest_key, item)`` puts one staged
        object (``item``: its listing record) in place and returns ``PLACED``, ``REPLACED`` or
        ``LEFT`` (its final object may not be replaced: the staged copy is deleted all the same,
        the caller records why); default: ``place`` (a copy, or the safe replace where the
        namespace refuses overwrites; a retained final object raises ``RetentionError``). Re-running after a crash half-way
        finishes the job: what was moved is gone from staging, what was placed but not deleted
        is placed again (same bytes). A staged object that may not be deleted (403: a default
        retention) stays and is listed in ``kept``; the moves go on.
        ``on_progress(objects placed, bytes placed)`` is called after every object (a commit of
        a million objects takes hours: the caller throttles what it shows); a failing callback
        is logged, never allowed to stop the commit.
        """
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        if not staging_prefix:
            raise ValueError("staging_prefix must not be empty (it would move the whole bucket)")
        target = dest_bucket or bucket
        if target == bucket and dest_prefix.startswith(staging_prefix):
            raise ValueError(
                f"dest_prefix {dest_prefix!r} lies inside staging_prefix {staging_prefix!r}"
            )

        async def copy_over(dest_bucket: str, dest_key: str, item: dict[str, Any]) -> str:
            return await self.place(dest_bucket, dest_key, bucket, item, check=True)

        placer = place or copy_over
        moves = StagingMoves()
        copied_bytes = 0
        started = perf_counter()
        window = AdaptiveWindow(concurrency, client_signals(self._client, data_plane=False), cap=max_concurrency)

        async def place_one(item: dict[str, Any]) -> None:
            nonlocal copied_bytes
            key = item["Key"]
            outcome = await window.run(lambda: placer(target, dest_prefix + key[len(staging_prefix) :], item))
            if outcome == LEFT:
                moves.left.append(key)
            else:
                moves.moved += 1
                moves.replaced += outcome == REPLACED
            copied_bytes += int(item.get("Size", 0) or 0)
            if on_progress is not None:
                try:
                    on_progress(moves.moved + len(moves.left), copied_bytes)
                except Exception:
                    logger.exception("commit on_progress callback failed")

        async for page in self.pages(bucket, staging_prefix):
            items = page.get("objects", [])
            if items:
                await gather_all(place_one(item) for item in items)
                moves.kept.extend(await self._delete_staged(bucket, [item["Key"] for item in items]))
        moves.window = window.range_text()
        logger.info(
            "Committed %d object(s) %s%s -> %s/%s in %.2f s (%d replaced, %d left, %d kept in staging;"
            " copies in flight %s)",
            moves.moved,
            bucket + "/",
            staging_prefix,
            target,
            dest_prefix,
            perf_counter() - started,
            moves.replaced,
            len(moves.left),
            len(moves.kept),
            moves.window,
        )
        return moves

    async def _delete_staged(self, bucket: str, keys: list[str]) -> list[str]:
        """Delete staged objects; returns those kept by retention (403 AccessDenied), raises
        on any other failure."""
        try:
            result = await self.delete_bulk(bucket, keys)
        except AuthenticationError as exc:
            if exc.status_code != 403:
                raise
            logger.warning("Staging of %s may not be deleted (retention or hold): %d object(s) stay", bucket, len(keys))
            return list(keys)
        errors = result.get("errors") or []
        kept = [str(e.get("Key")) for e in errors if e.get("Code") == "AccessDenied"]
        raise_on_delete_errors({"errors": [e for e in errors if e.get("Code") != "AccessDenied"]}, bucket)
        return kept

    @on_bucket
    async def cleanup_staging(
        self,
        bucket: str,
        staging_prefix: str,
        before_delete: Callable[[list[str]], object] | None = None,
        kept: list[str] | None = None,
    ) -> int:
        """Delete every object under ``staging_prefix`` (bulk, 1000 at a time); return the count.

        ``before_delete(keys)`` is called with each page's keys before they are deleted (a
        rollback forgets their tracker marks there). Objects that may not be deleted (403: a
        default retention) stay, are appended to ``kept`` when given and not counted; any other
        delete failure raises.
        """
        if not staging_prefix:
            raise ValueError("staging_prefix must not be empty (it would empty the whole bucket)")
        # Open multipart uploads first: one completing later would put an object back.
        await self.abort_multipart_uploads(bucket, staging_prefix)
        removed = 0
        async for page in self.pages(bucket, staging_prefix):
            keys = [item["Key"] for item in page.get("objects", [])]
            if keys:
                if before_delete is not None:
                    before_delete(keys)
                stayed = await self._delete_staged(bucket, keys)
                removed += len(keys) - len(stayed)
                if kept is not None:
                    kept.extend(stayed)
        logger.info("Cleaned up %d staged object(s) under %s/%s", removed, bucket, staging_prefix)
        return removed

    # -- multipart uploads left open ---------------------------------------------------------

    @on_bucket
    async def list_multipart_uploads(
        self, bucket: str, prefix: str = "", max_uploads: int = BATCH
    ) -> dict[str, Any]:
        """The open (neither completed nor aborted) multipart uploads under ``prefix``, one page:
        ``{"bucket", "uploads": [{"Key", "UploadId", "Initiated", "StorageClass"}], "is_truncated"}``.

        The API takes no marker, so this is always the first ``max_uploads`` (at most 1,000)
        in key order; ``abort_multipart_uploads`` gets past them by aborting.
        """
        params: dict[str, Any] = {"max_uploads": max_uploads}
        if prefix:
            params["prefix"] = prefix
        return await self._client.request_json("GET", f"/buckets/{encode_bucket(bucket)}/uploads", params=params)

    @on_object
    async def abort_multipart_upload(self, bucket: str, key: str, upload_id: str) -> bool:
        """Abort one multipart upload; False when it was already gone (completed or aborted)."""
        try:
            await self._client.request_json("POST", multipart_path(bucket, key, "/abort"), json={"upload_id": upload_id})
        except NotFoundError:
            return False
        return True

    @on_bucket
    async def abort_multipart_uploads(
        self,
        bucket: str,
        prefix: str,
        *,
        keep: Callable[[dict[str, Any]], bool] | None = None,
        page_size: int = BATCH,
    ) -> list[dict[str, Any]]:
        """Abort every open multipart upload under ``prefix`` except those ``keep(upload)``
        spares (e.g. too young, or of a live job); returns the uploads aborted.

        Pages are listed again after each round of aborts (the API has no marker): a page that
        holds only spared uploads ends the search, and past 1,000 spared ones the rest stay.
        """
        if not prefix:
            raise ValueError("prefix must not be empty (it would abort every upload of the bucket)")
        aborted: list[dict[str, Any]] = []
        while True:
            page = await self.list_multipart_uploads(bucket, prefix, page_size)
            targets = [u for u in page.get("uploads", []) if keep is None or not keep(u)]
            for upload in targets:
                if await self.abort_multipart_upload(bucket, upload["Key"], upload["UploadId"]):
                    aborted.append(upload)
            if not targets or not page.get("is_truncated"):
                break
        if aborted:
            logger.info("Aborted %d open multipart upload(s) under %s/%s", len(aborted), bucket, prefix)
        return aborted

    async def iter_prefixes(
        self, bucket: str, prefix: str = "", delimiter: str = "/", page_size: int = BATCH
    ) -> AsyncIterator[str]:
        """The common prefixes one level below ``prefix`` (``dir/`` "folders"), every page."""
        async for page in self.pages(bucket, prefix, page_size, delimiter):
            for common in page.get("common_prefixes", []):
                yield common

    async def pages(
        self, bucket: str, prefix: str = "", page_size: int = BATCH, delimiter: str | None = None
    ) -> AsyncIterator[dict[str, Any]]:
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


def _source(data: Source) -> tuple[Path | bytes | bytearray | memoryview, int]:
    """The upload source and its size; ``str`` is refused (content or path? say which)."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        return data, len(data)
    if isinstance(data, str):
        raise TypeError("upload data must be bytes or a pathlib.Path, not str (wrap a path in Path())")
    if isinstance(data, os.PathLike):
        path = Path(data)
        return path, path.stat().st_size
    raise TypeError(f"upload data must be bytes or a pathlib.Path, got {type(data).__name__}")


def _refused(exc: HCPError, bucket: str, key: str, what: str) -> HCPError:
    """A 403 on a delete or an overwrite: the object's retention or hold, not the login."""
    if exc.status_code != 403:
        return exc
    return RetentionError(
        f"{bucket}/{key} cannot be {what}: it is under retention or on hold (or the user may not "
        f"delete objects there); {exc.message}",
        403,
    )


def raise_on_delete_errors(result: dict[str, Any], bucket: str) -> None:
    """Raise for the keys a bulk delete (``delete_bulk``'s answer) did not delete:
    ``RetentionError`` naming them when every one was refused as retained or held
    (AccessDenied), else ``HCPError`` naming the first."""
    errors = result.get("errors") or []
    if not errors:
        return
    keys = [str(e.get("Key")) for e in errors]
    if all(e.get("Code") == "AccessDenied" for e in errors):
        shown = ", ".join(f"{bucket}/{key}" for key in keys[:5]) + (f" and {len(keys) - 5} more" if len(keys) > 5 else "")
        raise RetentionError(f"{shown} cannot be deleted: under retention or on hold (AccessDenied)", 403)
    first = errors[0]
    raise HCPError(
        f"{len(errors)} object(s) of {bucket} could not be deleted, e.g. {first.get('Key')!r}: {first.get('Code')}"
    )
