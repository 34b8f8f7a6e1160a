"""``S3Ops`` (``client.s3``): uploads, downloads, delete, copy and placement whatever the
namespace allows, and the SDK's staging pattern, over the HCP API (control plane) and presigned
URLs (data plane). Its other parts have modules of their own: ``listing`` (buckets, listings,
metadata), ``presigning``, ``open_uploads`` (multipart uploads left open); the staging
pattern's page-by-page moves and deletes are ``prefix_moves``.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from time import perf_counter
from typing import TYPE_CHECKING, Any, TypeVar

from rahcp_prefect import defaults
from rahcp_prefect.errors import on_bucket, on_object

from .digests import Uploaded, bare_etag
from .errors import (
    AuthenticationError,
    ChecksumMismatchError,
    ConflictError,
    NotFoundError,
    ObjectChangedError,
    OverwriteRefusedError,
    PresignedTransferError,
)
from .keys import check_key, encode_bucket, object_path
from .listing import BATCH, Listing
from .multipart import MultipartUpload, part_size_for
from .open_uploads import OpenUploads
from .overwrite import REPLACE_ATTEMPTS, REPLACE_DELAY, replace_by_delete, write_over
from .prefix_moves import COPY_CONCURRENCY, delete_prefix, move_prefix
from .presigning import Presigning
from .refusals import refused
from .represign import presigned_transfer
from .resume import PartStore
from .tracing import span

if TYPE_CHECKING:
    from .client import HCPClient

logger = logging.getLogger(__name__)

T = TypeVar("T")

__all__ = ["BATCH", "COPY_CONCURRENCY", "PLACED", "REPLACED", "S3Ops", "Source"]

Source = bytes | bytearray | memoryview | os.PathLike

PLACED, REPLACED = "placed", "replaced"
"""What ``place`` did with one object: copied onto its key, or put there by the safe replace."""


class S3Ops(Listing, Presigning, OpenUploads):
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

    # -- delete and copy -------------------------------------------------------------------

    @on_object
    async def delete(self, bucket: str, key: str) -> dict[str, Any]:
        """Delete one object (a missing key is not an error); ``RetentionError`` on a 403 (an
        object under retention or on hold)."""
        try:
            return await self._client.request_json("DELETE", object_path(bucket, key))
        except AuthenticationError as exc:
            raise refused(exc, bucket, key, "deleted") from None

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
            raise refused(exc, dest_bucket, dest_key, "overwritten") from None

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
            raise refused(exc, bucket, key, "overwritten") from None
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
    # -- the staging pattern -----------------------------------------------------------------

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

        Each object is placed by ``place`` (a copy, or the safe replace where the namespace
        refuses overwrites; a retained final object raises ``RetentionError``), a listing page
        at a time, and the page's staged objects deleted once it is placed
        (``prefix_moves.move_prefix``: the adaptive window of ``concurrency`` to
        ``max_concurrency`` copies in flight, ``on_progress(objects, bytes)`` after each).
        Re-running after a crash half-way finishes the job: what was moved is gone from
        staging, what was placed but not deleted is placed again (same bytes). A staged object
        that may not be deleted (403: a default retention) stays; the moves go on.
        """
        moves = await move_prefix(
            self._client, bucket, staging_prefix, dest_prefix,
            concurrency=concurrency, max_concurrency=max_concurrency, on_progress=on_progress,
        )
        return moves.objects

    @on_bucket
    async def cleanup_staging(
        self,
        bucket: str,
        staging_prefix: str,
        before_delete: Callable[[list[str]], object] | None = None,
        kept: list[str] | None = None,
    ) -> int:
        """Delete every object under ``staging_prefix`` (bulk, 1000 at a time), open multipart
        uploads aborted first; return the count (``prefix_moves.delete_prefix``).

        ``before_delete(keys)`` is called with each page's keys before they are deleted (a
        rollback forgets their tracker marks there). Objects that may not be deleted (403: a
        default retention) stay, are appended to ``kept`` when given and not counted; any other
        delete failure raises.
        """
        return await delete_prefix(self._client, bucket, staging_prefix, before_delete, kept)



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
