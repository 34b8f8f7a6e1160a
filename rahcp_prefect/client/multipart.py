"""Multipart upload over presigned part URLs: initiate, presign parts, PUT parts, complete.

``concurrency`` senders PUT the parts, each with the ``Content-MD5`` of its bytes, and check the
ETag S3 returns. A part of a file is never held in memory (above the data plane's
``STREAM_BODY_LIMIT``): its region is hashed from disk in a worker thread, then streamed from
disk with that MD5, so S3 stores exactly the bytes hashed or refuses them. Alongside, the whole
file is read in order for its SHA-256 (a block at a time, in worker-thread steps of 16 MiB). Memory is a few blocks
per part in flight, whatever the part size. Before the complete the file must still have the
size and mtime it had at the start (else the upload is aborted: the SHA-256 and the parts would
not be of one version of the file); after it, the object's ETag must be the MD5 of the part
digests with ``-N``. Any failure (or cancellation) before the complete aborts the upload; once
the complete was sent the upload is never aborted (it may be complete: see ``completion``). With
a ``PartStore`` (``resume``), every acknowledged part is recorded, and a later upload of the same
unchanged file continues the recorded upload, sending only the parts the server does not hold
as recorded (see ``resume``); the kept parts are not read again except by the SHA-256.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from time import perf_counter
from typing import TYPE_CHECKING

from rahcp_prefect import defaults

from .completion import CompletionUnknown, complete_upload
from .config import MAX_PART_SIZE, MAX_PARTS, MIB, MIN_PART_SIZE
from .digests import HASH_ON_LOOP_LIMIT, Uploaded, bare_etag, hash_file_steps, multipart_md5
from .errors import ChecksumMismatchError, HCPError, PresignedTransferError
from .keys import multipart_path
from .resume import PartStore, RecordedPart, abort_upload, plan_resume

if TYPE_CHECKING:
    from .client import HCPClient

logger = logging.getLogger(__name__)

PART_URL_EXPIRES = 3600
"""Lifetime of presigned part URLs; a 403 on a part presigns all parts again (once)."""


def part_size_for(size: int, chunk: int) -> int:
    """Part size for a ``size``-byte object: ``max(chunk, 5 MiB, ceil(size / 10000))`` rounded
    up to a whole MiB, so no object ever needs more than 10,000 parts."""
    if size < 0:
        raise ValueError(f"size must be >= 0, got {size}")
    needed = max(chunk, MIN_PART_SIZE, math.ceil(size / MAX_PARTS))
    part = math.ceil(needed / MIB) * MIB
    if part > MAX_PART_SIZE:
        raise ValueError(
            f"{size} bytes exceed the largest multipart upload ({MAX_PARTS} parts of 5 GiB)"
        )
    return part


@dataclass
class _PartUrls:
    """The presigned part URLs of one upload and how often they were renewed."""

    part_size: int
    urls: dict[int, str]
    generation: int = 0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class MultipartUpload:
    """One multipart upload of ``source`` (a file or bytes) to ``bucket/key``."""

    def __init__(
        self,
        client: HCPClient,
        bucket: str,
        key: str,
        source: Path | bytes | bytearray | memoryview,
        size: int,
        *,
        part_size: int,
        concurrency: int,
        chunk_size: int = defaults.CHUNK_SIZE,
        resume: PartStore | None = None,
    ) -> None:
        self.client = client
        self.bucket = bucket
        self.key = key
        self.source = source
        self.size = size
        self.part_size = part_size
        self.concurrency = max(1, concurrency)
        self.chunk_size = chunk_size
        self.what = f"{bucket}/{key}"
        self.upload_id: str | None = None
        self.part_md5s: dict[int, str] = {}
        """Hex MD5 of each part S3 acknowledged (its ETag), by part number."""
        self.completing = False
        """Set once a complete may have reached the store: from then on, never abort."""
        self.resume = resume if isinstance(source, Path) else None
        self.kept: dict[int, RecordedPart] = {}
        """Parts a resumed upload found on the server as recorded (the file unchanged since)."""
        self.reused = 0
        """Parts not sent because the server held them as recorded for this unchanged file."""
        self.stamp: tuple[int, int] | None = None
        """A file's size and mtime (ns) at the start."""

    async def run(self) -> Uploaded:
        """Upload every part and complete; abort on a failure before the complete. Returns the
        object's ETag and digests (``md5`` is the composite ``<md5 of part digests>-N``)."""
        started = perf_counter()
        await self._start()
        try:
            urls = await self._presign_parts()
            etags, sha256 = await self._put_parts(urls)
            self._check_unchanged()
            etag = await self._complete(etags)
            composite = multipart_md5(bytes.fromhex(self.part_md5s[n]) for n in sorted(etags))
            if bare_etag(etag) != composite:
                raise ChecksumMismatchError(
                    f"Multipart ETag of {self.what} is {bare_etag(etag)}, "
                    f"not the digest of the parts sent ({composite})"
                )
        except BaseException:
            if self.completing:
                logger.warning("Multipart upload of %s left open: its complete may have succeeded", self.what)
            else:
                await asyncio.shield(self._abort())
            raise
        if self.resume is not None:
            self.resume.forget_upload(self.bucket, self.key)
        logger.info(
            "Multipart upload of %s done: %d bytes in %d parts (%d kept from before), %.2f s",
            self.what,
            self.size,
            len(etags),
            self.reused,
            perf_counter() - started,
        )
        parts = tuple(self.part_md5s[n] for n in sorted(etags))
        return Uploaded(etag=etag, md5=composite, sha256=sha256, part_md5s=parts)

    def _check_unchanged(self) -> None:
        """A file must still have the size and mtime it had at the start: its parts and its
        SHA-256 were read separately, and must be of one version of the file."""
        if self.stamp is not None and _stamp(self.source) != self.stamp:  # type: ignore[arg-type]
            raise HCPError(f"File {str(self.source)!r} changed during upload of {self.what}")

    async def _start(self) -> None:
        """Continue the recorded upload of this file when it can be, else initiate one."""
        if isinstance(self.source, Path):
            self.stamp = _stamp(self.source)
        mtime_ns = self.stamp[1] if self.stamp is not None else 0
        if self.resume is not None:
            plan = await plan_resume(
                self.client, self.resume, self.bucket, self.key,
                part_size=self.part_size, size=self.size, mtime_ns=mtime_ns, path=self.source,  # type: ignore[arg-type]
            )
            if plan is not None:
                self.upload_id, self.kept = plan.upload_id, plan.kept
                return
        initiated = await self.client.request_json("POST", multipart_path(self.bucket, self.key))
        self.upload_id = initiated["upload_id"]
        if self.resume is not None:
            self.resume.record_upload(self.bucket, self.key, self.upload_id, self.part_size, self.size, mtime_ns)

    async def _presign_parts(self) -> _PartUrls:
        answer = await self.client.request_json(
            "POST",
            multipart_path(self.bucket, self.key, "/presign"),
            json={
                "upload_id": self.upload_id,
                "file_size": self.size,
                "part_size": self.part_size,
                "expires_in": PART_URL_EXPIRES,
            },
        )
        part_size = int(answer["part_size"])
        urls = {int(item["part_number"]): item["url"] for item in answer["urls"]}
        expected = math.ceil(self.size / part_size)
        if part_size < MIN_PART_SIZE or sorted(urls) != list(range(1, expected + 1)):
            raise HCPError(
                f"Presigned parts for {self.what} do not cover the file "
                f"({len(urls)} URLs, part size {part_size}, {self.size} bytes)"
            )
        return _PartUrls(part_size=part_size, urls=urls)

    async def _put_parts(self, parts: _PartUrls) -> tuple[dict[int, str], str]:
        """PUT every part not kept, ``concurrency`` at a time, while worker threads compute the
        whole source's SHA-256; the first failure cancels the rest. Returns the ETags by
        part number and the hex SHA-256 of the whole source."""
        etags: dict[int, str] = {}
        numbers = iter(sorted(parts.urls))

        async def send() -> None:
            for number in numbers:
                kept = self.kept.get(number)
                if kept is not None:
                    etags[number], self.part_md5s[number] = kept.etag, kept.md5
                    self.reused += 1
                    continue
                sent = await self._put_part(parts, number)
                etags[number] = sent.etag
                self.part_md5s[number] = sent.md5
                if self.resume is not None:
                    assert self.upload_id is not None
                    self.resume.record_part(self.bucket, self.key, self.upload_id, number, sent.etag, sent.md5)

        whole = asyncio.create_task(self._whole_sha256())
        tasks = [whole] + [asyncio.create_task(send()) for _ in range(min(self.concurrency, len(parts.urls)))]
        try:
            done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                if task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        return etags, whole.result()

    async def _whole_sha256(self) -> str:
        """Hex SHA-256 of the whole source, in worker threads (a file: read in order, one block
        at a time, in steps that leave the executor to the parts in between)."""
        digest = hashlib.sha256()
        if not isinstance(self.source, Path):
            view = memoryview(self.source)[: self.size]
            if self.size <= HASH_ON_LOOP_LIMIT:
                digest.update(view)
            else:
                await asyncio.get_running_loop().run_in_executor(None, digest.update, view)
            return digest.hexdigest()
        if await hash_file_steps(self.source, 0, self.size, [digest]) != self.size:
            raise HCPError(f"File {str(self.source)!r} changed size during upload of {self.what}")
        return digest.hexdigest()

    async def _put_part(self, parts: _PartUrls, number: int) -> Uploaded:
        """One part; on 403 (expired URL) the parts are presigned again once and it is retried."""
        generation = parts.generation
        try:
            return await self._send_part(parts.urls[number], number, parts.part_size)
        except PresignedTransferError as exc:
            if exc.status_code != 403:
                raise
            async with parts.lock:
                if parts.generation == generation:
                    if generation >= 1:
                        raise
                    logger.warning("403 on a part of %s: presigning the parts again", self.what)
                    fresh = await self._presign_parts()
                    parts.urls, parts.generation = fresh.urls, generation + 1
            return await self._send_part(parts.urls[number], number, parts.part_size)

    async def _send_part(self, url: str, number: int, part_size: int) -> Uploaded:
        """PUT one part's bytes with their ``Content-MD5`` (hashed here, in parallel with the
        other senders and the SHA-256): a file's part streamed from disk, a buffer's sliced."""
        what = f"{self.what} (part {number})"
        offset = (number - 1) * part_size
        length = min(part_size, self.size - offset)
        data = self.client.data
        if isinstance(self.source, Path):
            return await data.put_part(url, self.source, offset, length, what=what, chunk_size=self.chunk_size)
        view = memoryview(self.source)[offset : offset + length]
        return await data.put_bytes(url, view, what=what, whole=False, chunk_size=self.chunk_size)

    async def _complete(self, etags: dict[int, str]) -> str:
        assert self.upload_id is not None
        self.completing = True
        try:
            return await complete_upload(self.client, self.bucket, self.key, self.upload_id, etags, self.size)
        except HCPError as exc:
            if not isinstance(exc, CompletionUnknown):
                self.completing = False  # refused outright: nothing was completed
            raise

    async def _abort(self) -> None:
        """Best effort: a failed abort is logged, never raised over the original error."""
        await abort_upload(self.client, self.bucket, self.key, self.upload_id)
        if self.resume is not None:
            self.resume.forget_upload(self.bucket, self.key)


def _stamp(path: Path) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_size, st.st_mtime_ns
